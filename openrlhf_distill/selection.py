"""Choosing a model without gold: by how often its greedy answers agree with the teacher's pseudo-labels on dev
questions (questions the vote labelled and no stage trained on; ``build --dev.questions N`` writes them).

A user without gold answers has this, and nothing better, to stop RL before it over-optimises its reward, or to
pick SFT's learning rate. Two commands use it:

- ``ppo --distill.select.dev DEV``: OpenRLHF saves the actor as an HF model every ``--ckpt.save_steps`` steps
  (``--ckpt.save_hf``, added for the run); after the run every saved actor and the starting one (step 0) is
  scored, and the best becomes the run's model in ``--ckpt.output_dir``. The last actor is kept beside it in
  ``distill_ppo/last_model/``; the per-step ``*_hf`` folders are removed unless ``--ckpt.save_hf`` was asked for.
- ``select --candidates A,B,... --dev DEV --out CHOSEN``: the same choice among finished models (the SFT runs of
  a learning-rate sweep); the best is copied to CHOSEN.

Both write ``selection.json``: every candidate with its agreement and, when a measure set with gold is given
(``--distill.select.measure`` / ``--measure``), its gold accuracy, which the report shows beside the choice and
the choice never reads. Ties go to the earliest candidate (the fewest RL steps, the first sweep setting).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from .argtypes import int_at_least
from .contract import Input, Output
from .records import DEV_QUESTION, OUTPUT_MARKER, RecordError, read_all_records, write_json_atomic
from .settings import from_args, setting

SELECTION_FILE = "selection.json"
_HF_CHECKPOINT = re.compile(r"^global_step(\d+)_hf$")
# OpenRLHF's save_model writes the weights, then config.json, then the tokenizer: a step folder without the
# tokenizer's config is a save a kill cut short (a killed run resumed from that step's DeepSpeed state).
_WRITTEN_LAST = "tokenizer_config.json"


@dataclass(frozen=True)
class SelectSettings:
    """How candidates are scored, greedy as the pipeline's evaluation decodes: `select`'s flags, and `ppo`'s
    ``--distill.select.*`` (which take ``task`` from the run and keep the work in the run's own folder)."""

    dev: str = setting(help="dev questions with pseudo-labels (build --dev.questions writes them); no gold is read")
    task: str = setting(help="the task that reads the candidates' answers")
    measure: str | None = setting(None, "prompt records with gold: each candidate's accuracy, reported, never read")
    max_new_tokens: int = setting(
        512, "tokens per answer at most", check=int_at_least(1), aliases=("--max-new-tokens",)
    )
    backend: str = setting("auto", "the backend that decodes them", choices=("auto", "hf", "vllm"))
    batch_size: int = setting(
        64, "hf backend: sequences per generate call", check=int_at_least(1), aliases=("--batch-size",)
    )
    work_dir: str = setting(".", flag=False)  # where each candidate's evaluation files go


def read_dev_questions(path: str) -> list[dict]:
    """The dev questions as evaluation records whose reference answer is the pseudo-label.

    ``evaluation`` compares answers with a record's ``gold`` field; here that field holds the teacher's
    pseudo-label, in memory only, so the "accuracy" it reports is agreement with the vote.
    """
    rows = read_all_records(path, DEV_QUESTION)
    return [{"id": r["id"], "prompt": r["prompt"], "task": r.get("task"), "gold": r["pseudo_label"]} for r in rows]


def _greedy_accuracy(model: str, prompts, out: str, settings: SelectSettings) -> float:
    from .evaluation import EvalSettings, evaluate, samples_dir_for

    # Never resumed: a candidate folder of the same name may hold another model than when it was last scored (a
    # sweep rerun with new data, a PPO stage rerun), and an evaluation reuses the samples it finds.
    shutil.rmtree(samples_dir_for(out), ignore_errors=True)
    result = evaluate(
        model,
        prompts,
        settings.task,
        out,
        EvalSettings(k=1, max_new_tokens=settings.max_new_tokens),
        backend=settings.backend,
        backend_options={"batch_size": settings.batch_size} if settings.backend == "hf" else None,
        progress=False,
    )
    return result["accuracy"]


def score(candidates: list[dict], settings: SelectSettings) -> list[dict]:
    """Each candidate ({"name", "path", ...}) with ``dev_agreement`` and, with a measure set, ``gold_accuracy``."""
    dev = read_dev_questions(settings.dev)
    scored = []
    for candidate in candidates:
        where = os.path.join(settings.work_dir, candidate["name"])
        entry = {**candidate, "dev_agreement": _greedy_accuracy(candidate["path"], dev, where + "_dev.json", settings)}
        if settings.measure:
            entry["gold_accuracy"] = _greedy_accuracy(
                candidate["path"], settings.measure, where + "_gold.json", settings
            )
        scored.append(entry)
    return scored


def choose(scored: list[dict]) -> int:
    """The index of the candidate with the highest dev agreement; the earliest on a tie. Reads nothing else.

    >>> choose([{"dev_agreement": 0.5, "gold_accuracy": 0.9}, {"dev_agreement": 0.7, "gold_accuracy": 0.1}])
    1
    >>> choose([{"dev_agreement": 0.7}, {"dev_agreement": 0.7}])
    0
    """
    if not scored:
        raise ValueError("no candidate models to choose from")
    best = max(entry["dev_agreement"] for entry in scored)
    return next(i for i, entry in enumerate(scored) if entry["dev_agreement"] == best)


def _model_files(folder: str) -> list[str]:
    """The files of a saved HF model folder (weights, config, tokenizer): its top-level files but our marker."""
    return sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)) and n != OUTPUT_MARKER)


# --- RL: the actor saved every N steps ---------------------------------------------------------------------------


def ppo_candidates(initial_model: str, ckpt_path: str, output_dir: str, steps: int) -> list[dict]:
    """The starting actor (step 0), every HF checkpoint OpenRLHF saved whole under ``ckpt_path``, and the final actor
    in ``output_dir`` (step ``steps``), in step order; a checkpoint of the last step is the final actor itself."""
    saved = {}
    if os.path.isdir(ckpt_path):
        for name in os.listdir(ckpt_path):
            match = _HF_CHECKPOINT.match(name)
            complete = os.path.isfile(os.path.join(ckpt_path, name, _WRITTEN_LAST))
            if match and complete and int(match.group(1)) < steps:
                saved[int(match.group(1))] = os.path.join(ckpt_path, name)
    candidates = [{"name": "step0", "step": 0, "path": initial_model}]
    candidates += [{"name": f"step{step}", "step": step, "path": saved[step]} for step in sorted(saved)]
    return candidates + [{"name": f"step{steps}", "step": steps, "path": output_dir}]


def install_ppo_choice(chosen: dict, output_dir: str, last_model_dir: str) -> None:
    """Makes the chosen actor the run's model: the final actor's files move to ``last_model_dir`` and the chosen
    one's are copied into ``output_dir``. Nothing moves when the final actor was chosen."""
    if os.path.realpath(chosen["path"]) == os.path.realpath(output_dir):
        return
    os.makedirs(last_model_dir, exist_ok=True)
    for name in _model_files(output_dir):
        os.replace(os.path.join(output_dir, name), os.path.join(last_model_dir, name))
    for name in _model_files(chosen["path"]):
        shutil.copy2(os.path.join(chosen["path"], name), os.path.join(output_dir, name))


def select_ppo_checkpoint(
    settings: SelectSettings, *, initial_model: str, ckpt_path: str, output_dir: str, steps: int, keep_hf: bool
) -> dict:
    """Scores the run's actors, installs the best as the run's model, writes ``selection.json`` in
    ``settings.work_dir``; returns what it wrote."""
    scored = score(ppo_candidates(initial_model, ckpt_path, output_dir, steps), settings)
    index = choose(scored)
    last_model_dir = os.path.join(settings.work_dir, "last_model")
    selection = {
        "criterion": "dev_agreement",
        "dev": settings.dev,
        "measure": settings.measure,
        "candidates": scored,
        "chosen": scored[index]["name"],
        "chosen_step": scored[index]["step"],
        "last_step": steps,
        "last_model": last_model_dir if index != len(scored) - 1 else output_dir,
    }
    write_json_atomic(os.path.join(settings.work_dir, SELECTION_FILE), selection)
    install_ppo_choice(scored[index], output_dir, last_model_dir)
    if not keep_hf and os.path.isdir(ckpt_path):  # the step folders we asked OpenRLHF for; the chosen one is copied
        for name in os.listdir(ckpt_path):
            if _HF_CHECKPOINT.match(name):
                shutil.rmtree(os.path.join(ckpt_path, name), ignore_errors=True)
    return selection


# --- `openrlhf-distill select` -------------------------------------------------------------------------------------


def work_dir_for(out: str) -> str:
    """Where `select --out OUT` keeps its candidates' evaluations: ``OUT_selection/`` beside OUT."""
    return os.path.normpath(os.path.abspath(out)) + "_selection"


def select_model(candidates: list[str], out: str, settings: SelectSettings, names: list[str] | None = None) -> dict:
    """Scores finished model folders and copies the best to ``out`` (a new folder, written whole)."""
    from .records import atomic_output_dir, check_output_dir

    check_output_dir(out, "select", candidates + [settings.dev, settings.measure])
    for path in candidates:
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise RecordError(path, None, None, "--candidates: not a model folder (no config.json)")
    names = names or [os.path.basename(os.path.normpath(path)) for path in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"--candidates: two candidates share a name ({', '.join(names)}); pass --names")
    read_dev_questions(settings.dev)  # every input checked before anything is written
    if settings.measure:
        from .evaluation import read_eval_records
        from .tasks import get_task

        read_eval_records(settings.measure, get_task(settings.task))
    os.makedirs(settings.work_dir, exist_ok=True)
    scored = score([{"name": n, "path": p} for n, p in zip(names, candidates, strict=True)], settings)
    index = choose(scored)
    selection = {"criterion": "dev_agreement", "dev": settings.dev, "measure": settings.measure}
    selection |= {"candidates": scored, "chosen": scored[index]["name"], "chosen_path": scored[index]["path"]}
    with atomic_output_dir(out, "select") as partial:
        for name in _model_files(scored[index]["path"]):
            shutil.copy2(os.path.join(scored[index]["path"], name), os.path.join(partial, name))
        write_json_atomic(os.path.join(partial, SELECTION_FILE), selection)
    return selection


PATHS = (
    Input("candidates", "model", "model folders to choose from, comma-separated", required=True),
    Input("dev", "file", flagless=True),
    Input("measure", "file", flagless=True),
    Output("out", "folder", "folder the chosen model is copied to, with selection.json", required=True),
)


def add_own_arguments(p) -> None:
    """Its flags beside its paths and settings (those `cli` makes from PATHS and its settings)."""
    p.add_argument("--names", default=None, help="their names in selection.json (default: the folder names)")


def run(args) -> int:
    candidates = [c for c in args.candidates.split(",") if c]
    names = [n for n in args.names.split(",") if n] if args.names else None
    settings = from_args(args, SelectSettings, work_dir=work_dir_for(args.out))
    selection = select_model(candidates, args.out, settings, names)
    scores = ", ".join(f"{c['name']} {100 * c['dev_agreement']:.1f}%" for c in selection["candidates"])
    print(f"dev agreement: {scores}; chosen {selection['chosen']} -> {args.out}")
    return 0
