"""`openrlhf-distill eval`: a model's accuracy on a benchmark split, with confidence intervals.

    openrlhf-distill eval --model DIR --task gsm8k --split test --out runs/x/eval/sft.json
        [--prompts FILE | --source FILE] [--name sft] [--seed 0] [--k 8] [--n-samples N] [--temperature 0.7]
        [--limit N] [--max-new-tokens 512] [--prompt-style zero_shot_cot] [--stop STR ...]
        [backend flags: --backend, --hf.*, --vllm.*, --openai.*]

What is measured, each question's answer read by the task layer (``task.extract``) and compared with its gold
answer by ``task.is_equivalent`` (gold is read here: this is measurement, not training):

- **greedy accuracy**: one greedy (temperature 0) sample per question. ``no_answer_rate``: the share of greedy
  samples from which no answer could be read (counted wrong).
- **maj@k** (``--k`` > 1): a plurality vote over the answers of the question's first k samples at
  ``--temperature`` (``voting.majority_vote`` with the task's equivalence and no threshold). Unreadable answers
  do not vote; a tie for first place, or no readable answer, gives no answer, which counts as wrong.
- **pass@k** (``--k`` > 1): the chance that at least one of k samples is correct. From n = ``--n-samples``
  samples per question (default k) with c correct, the unbiased estimator of Chen et al. (2021),
  ``1 - C(n - c, k) / C(n, k)``, averaged over questions; with n = k it is simply "any of the k is correct".
- **per category** (records with ``meta.category``, e.g. MMLU-Pro): greedy accuracy per category.
- **styles** (tasks whose responses have styles, ``task.styles_of_responses``, e.g. the toy world's arithmetic:
  "worked" steps or the "direct" answer alone): for the greedy samples and, when k > 1, for all the sampled ones,
  each style's count, its share of the samples and the accuracy of the samples of that style (null when none
  has it). Each sample's style is read by ``task.response_style``.

95% confidence intervals: the Wilson score interval for every plain proportion (greedy accuracy, maj@k,
per-category accuracy, pass@k when n = k); for pass@k with n > k (per-question values between 0 and 1) a
percentile bootstrap over questions, ``--bootstrap-resamples`` resamples (2000) seeded with ``--seed``. Each
metric names its method.

Samples are made by the generation stage (``generation.generate.generate_samples``: resumable shards, derived
seeds), into a folder beside the result: ``RESULT.json`` -> ``RESULT_samples/`` holding ``prompts.jsonl`` (the
questions evaluated), ``greedy/`` and, when k > 1, ``sampled/``. A killed evaluation rerun with the same command
resumes from the shards it left, and a finished one is rescored without loading the model. The scoring step
alone is :func:`score_sample_files` (folders or files of sample records, e.g. written by hand) or
:func:`score_samples` (records in memory).

The result, one JSON file per model, written atomically (the report reads it)::

    {
      "name": "sft",                      # --name, default: the result file's name without .json
      "seed": 0,                          # generation seed (and the bootstrap's)
      "model": "runs/x/student_sft",      # as given
      "task": "gsm8k",
      "split": "test",
      "decoding": "greedy",               # what "accuracy" is measured on
      "n": 1319,                          # questions
      "accuracy": 0.712,                  # greedy, in [0, 1]
      "ci95": [0.687, 0.736],
      "ci_method": "wilson",
      "maj_at_k": {"k": 8, "n": 1319, "accuracy": 0.75, "ci95": [lo, hi], "ci_method": "wilson",
                   "temperature": 0.7} | null,                                    # null when k = 1
      "pass_at_k": {"k": 8, "n": 1319, "accuracy": 0.9, "ci95": [lo, hi], "ci_method": "wilson" |
                    "percentile_bootstrap", "temperature": 0.7, "samples_per_question": 8} | null,
      "per_category": {"law": {"n": 551, "accuracy": 0.3, "ci95": [lo, hi]}, ...} | null,  # null: no categories
      "styles": {                         # only for tasks whose responses have styles (absent for the others)
        "greedy": {"worked": {"n": 12, "share": 0.04, "accuracy": 0.92}, "direct": {...}},  # every style listed
        "sampled": {...} | null           # the same over every sampled answer (n = questions x samples); null: k = 1
      },                                  # "accuracy": null for a style no sample has
      "no_answer_rate": 0.02,             # greedy samples with no readable answer
      "tokens_generated": 401234,         # all samples in samples_dir (greedy + sampled)
      "wall_seconds": 812.4,              # this run (a resumed run counts only its own time)
      "samples_dir": "runs/x/eval/sft_samples",
      "settings": {"prompt_style", "max_new_tokens", "backend", "role", "bootstrap_resamples", "stop"}
    }

The keys "ci_method" and "temperature" inside maj_at_k / pass_at_k, "samples_per_question" inside pass_at_k,
and "settings" are additions to the fields the report needs; the report reads "styles" when it is there.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .argtypes import int_at_least, number_in
from .contract import Input, Output, add_paths
from .generation.backend import TEMPERATURE_RANGE, Backend
from .questions import question_key
from .records import PROMPT, SAMPLE, RecordError, jsonl_files, read_records, write_json_atomic, write_jsonl_atomic
from .settings import add_flags, from_args, refuse_bad_fields, setting
from .stats import BOOTSTRAP, WILSON, bootstrap_mean_interval, pass_at_k, wilson_interval
from .tasks import Task, get_task
from .voting import PLURALITY, majority_vote

GREEDY_DIR = "greedy"
SAMPLED_DIR = "sampled"
PROMPTS_FILE = "prompts.jsonl"
DEFAULT_BOOTSTRAP_RESAMPLES = 2000


def samples_dir_for(out: str) -> str:
    """``RESULT.json`` -> ``RESULT_samples``."""
    stem = out[: -len(".json")] if out.endswith(".json") else out
    return f"{stem}_samples"


def _interval(successes: int, n: int) -> list[float]:
    return [round(x, 6) for x in wilson_interval(successes, n)]


def _proportion(successes: int, n: int) -> dict:
    return {"n": n, "accuracy": successes / n, "ci95": _interval(successes, n)}


def style_shares(styles: Iterable[str], graded: Iterable[tuple[str, bool]]) -> dict:
    """Per style: ``n`` samples, their ``share`` of all, and the ``accuracy`` among them (None when n = 0).
    ``styles``: the task's styles, listed even when no sample has them, in that order (a style outside them,
    which the task would not give, comes after, by name). ``graded``: (style, correct) per sample, at least one."""
    counts: dict[str, list[int]] = {style: [0, 0] for style in styles}
    extra: dict[str, list[int]] = {}
    total = 0
    for style, right in graded:
        count = counts.get(style) or extra.setdefault(style, [0, 0])
        count[0] += 1
        count[1] += bool(right)
        total += 1
    if not total:
        raise ValueError("style shares of no samples")
    counts.update(sorted(extra.items()))
    return {
        style: {"n": n, "share": n / total, "accuracy": right / n if n else None}
        for style, (n, right) in counts.items()
    }


# --- prompt records with gold ---------------------------------------------------------------------------------


def check_eval_records(records: Iterable[tuple[int, dict]], where: str, task: Task) -> list[dict]:
    """Prompt records for evaluation: the prompt schema, one task, unique ids, and a readable gold answer each.
    ``records`` are (line, record) pairs; errors name ``where``, the line and the field."""
    checked, seen = [], {}
    for line, record in records:
        PROMPT.check(record, where, line)
        if record.get("task") is None:
            record = {**record, "task": task.name}
        elif record["task"] != task.name:
            raise RecordError(where, line, "task", f"{record['task']!r}, but this evaluation is of task {task.name!r}")
        key = question_key(record["id"])
        if key in seen:
            raise RecordError(where, line, "id", f"question id {record['id']!r} repeats line {seen[key]}")
        seen[key] = line
        if record.get("gold") is None:
            raise RecordError(where, line, "gold", "missing: evaluation needs the gold answer of every question")
        try:
            task.parse_gold(record)
        except ValueError as error:
            raise RecordError(where, line, "gold", str(error)) from None
        checked.append(record)
    if not checked:
        raise RecordError(where, None, None, "no prompts to evaluate")
    return checked


def read_eval_records(path: str, task: Task) -> list[dict]:
    return check_eval_records(read_records(path, PROMPT), path, task)


# --- scoring ------------------------------------------------------------------------------------------------


# One question's answers: (sample_index, answer or None, style or None), in index order.
Answers = list[tuple[int, str | None, str | None]]


def score_samples(
    records: list[dict],
    greedy: Iterable[dict],
    sampled: Iterable[dict] | None = None,
    *,
    task: str | Task,
    k: int = 1,
    seed: int = 0,
    bootstrap_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    where: str = "samples",
) -> dict:
    """The metrics of the result JSON from sample records (``id``, ``sample_index``, ``response``; answers are
    re-read from ``response`` by the task): ``n``, ``accuracy``, ``ci95``, ``ci_method``, ``maj_at_k``,
    ``pass_at_k``, ``per_category``, ``no_answer_rate``.

    ``records`` are prompt records with gold (see :func:`check_eval_records`). ``greedy``: exactly one sample
    per question. ``sampled``: the same number n >= k of samples per question, numbered by ``sample_index``;
    maj@k votes over the k lowest indices, pass@k uses all n. With ``sampled`` None, both are null.
    A task whose responses have styles (``styles_of_responses``) also gets ``styles`` (see the module docstring):
    the greedy samples' styles, and all n sampled ones'; other tasks get no ``styles`` key.
    """
    task = get_task(task) if isinstance(task, str) else task
    if k < 1:
        raise ValueError(f"--k must be >= 1, got {k}")
    golds = {question_key(r["id"]): task.parse_gold(r) for r in records}
    if len(golds) != len(records):
        raise ValueError("prompt records repeat a question id")
    styles = getattr(task, "styles_of_responses", None)

    greedy_answers = _read_answers(greedy, "greedy", golds, task, where)
    correct = _greedy_correct(greedy_answers, golds, task, where)
    n = len(records)
    no_answer = sum(found[0][1] is None for found in greedy_answers.values())
    result = {
        "n": n,
        **{name: value for name, value in _proportion(sum(correct.values()), n).items() if name != "n"},
        "ci_method": WILSON,
        "maj_at_k": None,
        "pass_at_k": None,
        "per_category": _per_category(records, correct),
        "no_answer_rate": no_answer / n,
    }
    if styles:
        greedy_styles = style_shares(styles, ((found[0][2], correct[key]) for key, found in greedy_answers.items()))
        result["styles"] = {"greedy": greedy_styles, "sampled": None}
    if sampled is not None:
        sampled_answers = _read_answers(sampled, "sampled", golds, task, where)
        result["maj_at_k"], result["pass_at_k"], graded = _sampled_metrics(
            sampled_answers, golds, task, k, where, seed=seed, bootstrap_resamples=bootstrap_resamples
        )
        if styles:
            result["styles"]["sampled"] = style_shares(styles, graded)
    return result


def _read_answers(samples: Iterable[dict], what: str, golds: dict, task: Task, where: str) -> dict[str, Answers]:
    """Question key -> its answers, each read from the response by the task; every question evaluated has at
    least one sample, no sample is of another question and no sample_index repeats."""
    styles = getattr(task, "styles_of_responses", None)
    answers: dict[str, Answers] = defaultdict(list)
    for sample in samples:
        key = question_key(sample["id"])
        if key not in golds:
            raise RecordError(
                where,
                None,
                "id",
                f"{what} sample of question {sample['id']!r}, which is not among the prompts evaluated",
            )
        style = task.response_style(sample["response"]) if styles else None
        answer = task.extract(sample["response"], finish_reason=sample.get("finish_reason")).answer
        answers[key].append((sample["sample_index"], answer, style))
    for key, found in answers.items():
        indices = [item[0] for item in found]
        if len(set(indices)) != len(indices):
            raise RecordError(where, None, "sample_index", f"question {key!r} repeats a {what} sample_index")
        found.sort(key=lambda item: item[0])
    missing = [key for key in golds if key not in answers]
    if missing:
        raise RecordError(where, None, "id", f"{len(missing)} questions have no {what} sample, e.g. {missing[0]!r}")
    return answers


def _greedy_correct(greedy_answers: dict[str, Answers], golds: dict, task: Task, where: str) -> dict[str, bool]:
    """Question key -> whether its one greedy answer is right (no answer is wrong)."""
    correct = {}
    for key, found in greedy_answers.items():
        if len(found) != 1:
            raise RecordError(where, None, "id", f"question {key!r} has {len(found)} greedy samples; one expected")
        correct[key] = task.is_equivalent(found[0][1], golds[key])
    return correct


def _per_category(records: list[dict], correct: dict[str, bool]) -> dict | None:
    """Greedy accuracy per ``meta.category`` ("(none)" for records without one); None when no record has one."""
    categories = {question_key(r["id"]): (r.get("meta") or {}).get("category") for r in records}
    if all(category is None for category in categories.values()):
        return None
    groups: dict[str, list[bool]] = defaultdict(list)
    for key, category in categories.items():
        groups[str(category) if category is not None else "(none)"].append(correct[key])
    return {c: _proportion(sum(v), len(v)) for c, v in sorted(groups.items())}


def _sampled_metrics(
    sampled_answers: dict[str, Answers],
    golds: dict,
    task: Task,
    k: int,
    where: str,
    *,
    seed: int,
    bootstrap_resamples: int,
) -> tuple[dict, dict, list[tuple[str | None, bool]]]:
    """maj@k and pass@k over the sampled answers, and (style, right) for every sampled answer."""
    counts = {len(found) for found in sampled_answers.values()}
    if len(counts) != 1:
        raise RecordError(
            where,
            None,
            "sample_index",
            f"questions have different numbers of sampled answers ({sorted(counts)}); every question needs the same n",
        )
    per_question = counts.pop()
    if per_question < k:
        raise ValueError(f"{where}: {per_question} sampled answers per question, fewer than k={k}")
    n = len(sampled_answers)
    majority_correct, pass_values, graded = 0, [], []
    for key, found in sampled_answers.items():
        answers = [answer for _, answer, _ in found]
        vote = majority_vote(answers[:k], PLURALITY, is_equivalent=task.is_equivalent)
        majority_correct += vote.pseudo_label is not None and task.is_equivalent(vote.pseudo_label, golds[key])
        rights = [task.is_equivalent(answer, golds[key]) for answer in answers]
        pass_values.append(pass_at_k(per_question, sum(rights), k))
        graded += [(style, right) for (_, _, style), right in zip(found, rights, strict=True)]
    maj_at_k = {"k": k, **_proportion(majority_correct, n), "ci_method": WILSON}
    if per_question == k:  # 0/1 per question: a plain proportion
        pass_ci, method = _interval(round(sum(pass_values)), n), WILSON
    else:
        interval = bootstrap_mean_interval(pass_values, resamples=bootstrap_resamples, seed=seed)
        pass_ci, method = [round(x, 6) for x in interval], BOOTSTRAP
    pass_at_k_result = {
        "k": k,
        "n": n,
        "accuracy": sum(pass_values) / n,
        "ci95": pass_ci,
        "ci_method": method,
        "samples_per_question": per_question,
    }
    return maj_at_k, pass_at_k_result, graded


def _read_sample_files(path: str, known: set[str]) -> Iterable[dict]:
    """Samples from a .jsonl file or a folder of shards, each checked, an unknown question located by line."""
    for file in jsonl_files(path):
        for line, sample in read_records(file, SAMPLE):
            if question_key(sample["id"]) not in known:
                raise RecordError(file, line, "id", f"question id {sample['id']!r} is not among the prompts evaluated")
            yield sample


def score_sample_files(
    prompts: str | list[dict],
    greedy: str,
    sampled: str | None = None,
    *,
    task: str | Task,
    k: int = 1,
    seed: int = 0,
    bootstrap_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
) -> dict:
    """:func:`score_samples` on files: ``prompts`` a prompt-records file (or checked records), ``greedy`` and
    ``sampled`` sample files or folders of ``*.jsonl`` shards (what ``generate`` writes)."""
    task = get_task(task) if isinstance(task, str) else task
    records = read_eval_records(prompts, task) if isinstance(prompts, str) else prompts
    known = {question_key(r["id"]) for r in records}
    return score_samples(
        records,
        _read_sample_files(greedy, known),
        _read_sample_files(sampled, known) if sampled is not None else None,
        task=task,
        k=k,
        seed=seed,
        bootstrap_resamples=bootstrap_resamples,
        where=greedy if sampled is None else f"{greedy} / {sampled}",
    )


# --- the evaluation: generate (resumable) then score --------------------------------------------------------


class _SharedBackend(Backend):
    """One engine for the greedy and the sampled pass: the stage closes its backend after each call, this
    wrapper leaves it open until :meth:`shutdown`, and starts it only when a shard is missing."""

    def __init__(self, start: Callable[[], Backend]):
        self._start, self._engine = start, None

    @property
    def engine(self) -> Backend:
        if self._engine is None:
            self._engine = self._start()
        return self._engine

    @property
    def info(self):
        return self.engine.info

    def generate(self, requests):
        return self.engine.generate(requests)

    def close(self) -> None:
        pass

    def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


@dataclass(frozen=True)
class EvalSettings:
    """How a model is evaluated: `eval`'s flags and the run config's `eval` section are made from these fields."""

    k: int = setting(1, "maj@k and pass@k over k samples (1: greedy accuracy only)", check=int_at_least(1))
    n_samples: int | None = setting(
        None,
        "samples per question for pass@k (>= k; default k); maj@k votes over the first k",
        aliases=("--n-samples",),
    )
    temperature: float = setting(0.7, "temperature of the k samples", check=number_in(0, 2))
    max_new_tokens: int = setting(
        512, "tokens per answer at most", check=int_at_least(1), aliases=("--max-new-tokens",)
    )
    prompt_style: str = setting("zero_shot_cot", "how the task formats its prompts", aliases=("--prompt-style",))
    stop: tuple[str, ...] = setting((), "a string that ends a sample (repeatable)")
    shard_size: int = setting(
        64, "prompts per shard; a killed run loses at most one shard", check=int_at_least(1), aliases=("--shard-size",)
    )
    limit: int | None = setting(None, "evaluate the first N questions", check=int_at_least(1))
    role: str = setting("student", "the `source` of the samples", choices=("teacher", "student"))
    seed: int = setting(0, "sampling seed, and the bootstrap's")
    bootstrap_resamples: int = setting(
        DEFAULT_BOOTSTRAP_RESAMPLES, "pass@k with n > k: bootstrap resamples", check=int_at_least(1),
        aliases=("--bootstrap-resamples",),
    )  # fmt: skip

    @property
    def samples_per_question(self) -> int:
        return self.k if self.n_samples is None else self.n_samples

    def check(self) -> None:
        """The fields' own ranges (as their flags check them), and what holds between fields."""
        refuse_bad_fields(self)
        if self.samples_per_question < self.k:
            raise ValueError(f"--n_samples ({self.n_samples}) must be >= --k ({self.k})")
        high = TEMPERATURE_RANGE[1]
        if self.k > 1 and not 0 < self.temperature <= high:
            raise ValueError(f"--temperature must be in (0, {high}] for maj@k / pass@k, got {self.temperature}")


def evaluate(
    model: str,
    prompts: str | list[dict],
    task: str,
    out: str,
    settings: EvalSettings = EvalSettings(),
    *,
    name: str | None = None,
    split: str = "test",
    backend: str = "auto",
    backend_options: dict | None = None,
    make_backend: Callable[[], Backend] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluates ``model`` on ``prompts`` (a prompt-records file, or records e.g. from ``prepare_data.load_split``)
    and writes the result JSON to ``out`` (schema: the module docstring); returns it.

    ``backend``: "auto", "hf", "vllm" or "openai", started with ``backend_options`` (e.g. ``batch_size`` for hf,
    ``openai_base_url``); or pass ``make_backend``, a callable returning a started backend (``backend`` then only
    names it in the samples' manifests). The model is loaded only if some samples are missing.
    """
    from .generation import choose_backend
    from .generation import make_backend as start_backend

    started = time.perf_counter()
    task_obj = get_task(task)
    settings.check()
    if isinstance(prompts, str):
        records = read_eval_records(prompts, task_obj)
    else:
        records = check_eval_records(enumerate(prompts, start=1), "prompt records (in memory)", task_obj)
    records = records[: settings.limit] if settings.limit is not None else records

    samples_dir = samples_dir_for(out)
    prompts_file = os.path.join(samples_dir, PROMPTS_FILE)
    write_jsonl_atomic(prompts_file, records)  # the same questions give the same file: generation resumes
    if make_backend is None:
        options = dict(backend_options or {})
        if backend == "auto":
            backend = choose_backend(model, options.get("openai_base_url"))
        name_ = backend
        make_backend = lambda: start_backend(name_, model, **options)
    # progress names the model evaluated (its samples' `source` is only the role the task formats them for)
    shown = f"{name or os.path.splitext(os.path.basename(out))[0]}" if progress else ""
    tokens = _sample(model, prompts_file, samples_dir, task, settings, backend, make_backend, overwrite, shown)

    k = settings.k
    metrics = score_sample_files(
        records,
        os.path.join(samples_dir, GREEDY_DIR),
        os.path.join(samples_dir, SAMPLED_DIR) if k > 1 else None,
        task=task_obj,
        k=k,
        seed=settings.seed,
        bootstrap_resamples=settings.bootstrap_resamples,
    )
    for key in ("maj_at_k", "pass_at_k"):
        if metrics[key] is not None:
            metrics[key]["temperature"] = settings.temperature
    base = os.path.basename(out)
    result = {
        "name": name or (base[: -len(".json")] if base.endswith(".json") else base),
        "seed": settings.seed,
        "model": model,
        "task": task,
        "split": split,
        "decoding": "greedy",
        **metrics,
        "tokens_generated": tokens,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "samples_dir": samples_dir,
        "settings": {
            "prompt_style": settings.prompt_style,
            "max_new_tokens": settings.max_new_tokens,
            "backend": backend,
            "role": settings.role,
            "bootstrap_resamples": settings.bootstrap_resamples,
            "stop": list(settings.stop),
        },
    }
    write_json_atomic(out, result)
    return result


def _sample(model, prompts_file, samples_dir, task, settings, backend, make_backend, overwrite, shown: str) -> int:
    """The greedy pass and, with k > 1, the sampled one, through the generation stage on one backend started
    at most once; returns the tokens both passes' samples hold."""
    from .generation.generate import SamplingConfig, generate_samples

    common = dict(
        role=settings.role,
        max_new_tokens=settings.max_new_tokens,
        seed=settings.seed,
        shard_size=settings.shard_size,
        prompt_style=settings.prompt_style,
        stop=tuple(settings.stop),
    )
    runs = [(GREEDY_DIR, SamplingConfig(temperatures=(0.0,), n_per_temperature=1, **common))]
    if settings.k > 1:
        sampled = SamplingConfig(
            temperatures=(settings.temperature,), n_per_temperature=settings.samples_per_question, **common
        )
        runs.append((SAMPLED_DIR, sampled))
    shared, tokens = _SharedBackend(make_backend), 0
    try:
        for folder, config in runs:
            summary = generate_samples(
                prompts_file,
                os.path.join(samples_dir, folder),
                model=model,
                backend=backend,
                config=config,
                make_backend=lambda: shared,
                default_task=task,
                overwrite=overwrite,
                progress=f"{shown}: {folder} samples" if shown else False,
            )
            tokens += summary["tokens"]
    finally:
        shared.shutdown()
    return tokens


# --- `openrlhf-distill eval` --------------------------------------------------------------------------------


def _samples_folder(args, rest) -> str | None:
    return samples_dir_for(args.out) if args.out else None


PATHS = (
    Input("prompts", "file", "prompt records with gold (JSON Lines) to evaluate on"),
    Input("model", "model", "model folder (hf, vllm) or served model name (openai)", required=True),
    Input("source", "either", flagless=True),
    Output("out", "file", "result JSON; samples go to RESULT_samples/ beside it", required=True),
    Output("samples", "folder", derived=_samples_folder, resumable=("prompts.jsonl", "greedy", "sampled", "*.tmp-*")),
)
_NOT_EVALS = ("task", "limit", "seed")  # prepare-data's settings eval has as its own (its --task, --limit, --seed)


def add_arguments(p) -> None:
    from .generation.options import add_backend_arguments
    from .prepare_data import PrepareDataSettings

    p.add_argument("--task", required=True, help="gsm8k, mmlu_pro, math, arithmetic, ...")
    # the benchmark's split as `prepare-data` loads it (its settings, but the seed: eval's --seed samples)
    add_flags(p, PrepareDataSettings, exclude=_NOT_EVALS + ("source",), defaults={"split": "test"})
    data = p.add_mutually_exclusive_group()
    add_paths(data, PATHS[:1])
    add_flags(
        data,
        PrepareDataSettings,
        exclude=tuple(f.name for f in dataclasses.fields(PrepareDataSettings) if f.name != "source"),
    )
    add_paths(p, PATHS[1:])
    p.add_argument("--name", default=None, help="row name in the report (default: the result file's name)")
    add_flags(p, EvalSettings)
    p.add_argument(
        "--split_seed",
        "--split-seed",
        dest="split_seed",
        type=int,
        default=0,
        help="mmlu_pro train/heldout: the split's seed (prepare-data's --seed)",
    )
    p.add_argument("--overwrite", action="store_true", help="discard samples made with other arguments")
    p.add_argument(
        "--no_progress", "--no-progress", dest="no_progress", action="store_true", help="no progress bar or lines"
    )
    add_backend_arguments(p)


def _percent(value: float, interval: list[float]) -> str:
    return f"{100 * value:.1f}% [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def _style_summary(name: str, entry: dict) -> str:
    accuracy = "-" if entry["accuracy"] is None else f"{100 * entry['accuracy']:.1f}%"
    return f"{name} {100 * entry['share']:.1f}% (accuracy {accuracy})"


def run(args) -> int:
    """Runs the evaluation and prints one summary; errors (ValueError, RecordError, BackendError) go to the
    caller, which prints them."""
    from .generation.options import backend_from_args
    from .prepare_data import PrepareDataSettings, load_split

    get_task(args.task)  # an unknown task fails before any data is loaded
    settings = from_args(args, EvalSettings)
    settings.check()  # before any data is loaded
    if args.prompts is not None:
        prompts = args.prompts
    else:
        wanted = from_args(args, PrepareDataSettings, task=args.task, limit=None, seed=args.split_seed)
        prompts = load_split(**dataclasses.asdict(wanted))
    name, start = backend_from_args(args)
    result = evaluate(
        args.model,
        prompts,
        args.task,
        args.out,
        settings,
        name=args.name,
        split=args.split,
        backend=name,
        make_backend=start,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    parts = [f"{result['name']}: greedy {_percent(result['accuracy'], result['ci95'])} (n={result['n']})"]
    for key, label in (("maj_at_k", "maj"), ("pass_at_k", "pass")):
        if result[key] is not None:
            parts.append(f"{label}@{result[key]['k']} {_percent(result[key]['accuracy'], result[key]['ci95'])}")
    parts.append(f"no answer {100 * result['no_answer_rate']:.1f}%")
    if result.get("styles"):
        parts.append(
            "greedy styles "
            + ", ".join(_style_summary(name, entry) for name, entry in result["styles"]["greedy"].items())
        )
    print(", ".join(parts) + f" -> {args.out}")
    return 0
