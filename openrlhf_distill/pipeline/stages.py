"""The stages of the method as commands: each stage is one ``openrlhf-distill`` subcommand with its inputs and the
output it makes, so ``run --dry_run`` can print exactly what runs, and every stage can also be run by hand.

Run directory (``run_dir``):

    world/ or data/            prompts_train.jsonl, prompts_test.jsonl (+ teacher/, student/ for the toy world)
    questions/                 0  with data.labelled_questions: labelled.jsonl (the teacher's), unlabelled.jsonl
    teacher_samples/           1  teacher sampling
    labels/                    2  vote over the teacher's answers (labeller: judge: the teacher's scores)
    sft_data/                  3  SFT data (teacher answers agreeing with the vote)
    seed<k>/student_sft/       4  SFT warm-up (OpenRLHF train_sft); with sft.sweep, the sweep's runs in
                                  seed<k>/sft_sweep/ and the one chosen by dev agreement copied here
    seed<k>/student_samples/   5  student sampling
    seed<k>/labels/            6  teacher + student samples labelled against the pseudo-labels
    seed<k>/data/              7  RM pairs / points, RL prompts (data_teacher_only/ for the ablation)
    seed<k>/rm/                8  distilled RM (OpenRLHF train_rm + our loss); rm_eval.json, rm_scores.jsonl
    seed<k>/rl_<scheme>/       9  PPO (OpenRLHF train_ppo_ray) with each reward scheme
    eval/<model>_seed<k>.json  10 evaluation on the test prompts; results.json, report.md, plots/
    stages/<stage>.json        what ran: fingerprint, wall time, samples and tokens
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field

from ..build import BuildConfig
from ..compat.flags import TRAIN_DISTILL_RM, TRAIN_PPO_RAY, TRAIN_SFT
from ..evaluation import samples_dir_for
from ..rewards.schemes import LABEL_SCHEMES
from ..selection import work_dir_for
from ..voting import VoteRule

CLI = [sys.executable, "-m", "openrlhf_distill.cli"]
STAGE_NAMES = (
    "world",
    "data",
    "split",
    "teacher_samples",
    "teacher_labels",
    "sft_data",
    "sft",
    "sft_select",
    "student_samples",
    "labels",
    "rm_data",
    "rm",
    "rm_eval",
    "rl",
    "eval",
    "report",
)


@dataclass
class Stage:
    name: str  # one of STAGE_NAMES
    key: str  # unique in the plan, e.g. "rl_rm@seed1"
    seed: int | None
    argv: list  # the openrlhf-distill subcommand and its flags
    output: str  # the file or folder the stage makes
    inputs: list = field(default_factory=list)  # files / folders it reads (upstream outputs or the user's)
    partial: bool = False  # a trainer: writes OUTPUT.partial, renamed to OUTPUT when it finishes
    # Folders the command keeps its work in beside OUTPUT (an evaluation's samples, from which it resumes): they
    # go with OUTPUT when the stage's settings or inputs change, or a resume would reuse another model's samples.
    work: list = field(default_factory=list)
    # What the command takes from defaults in our code that its flags do not spell (the toy world's preset): a
    # digest of it is part of the fingerprint, so a changed preset rebuilds the world.
    resolved: str | None = None

    @property
    def command(self) -> list[str]:
        return CLI + self.argv


def _world_settings(argv: list[str]) -> str:
    """The fingerprint of the world settings ``toy-world ARGV`` builds, read by its own parser."""
    import argparse

    from ..toy import world

    parser = argparse.ArgumentParser()
    world.add_arguments(parser)
    return world.settings_from_args(parser.parse_args(argv)).fingerprint()


def _flags(mapping: dict) -> list[str]:
    """OpenRLHF flags from a config mapping: ``{"train.max_epochs": 2, "ds.packing_samples": true}``."""
    out = []
    for name, value in mapping.items():
        if value is True:
            out.append(f"--{name}")
        elif value is False or value is None:
            continue
        else:
            out += [f"--{name}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return out


def _vote_flags(vote: dict) -> list[str]:
    """The pipeline's ``vote`` section as `label` / `generate --adaptive.*` flags."""
    names = [setting.name for setting in dataclasses.fields(VoteRule)]
    flags = [word for name in names for word in (f"--vote.{name}", str(vote[name]))]
    if vote["max_temperature"] is not None:
        flags += ["--vote.max_temperature", str(vote["max_temperature"])]
    return flags


def rl_run_name(scheme: str, ablation: str = "", labelled_only: bool = False) -> str:
    """A PPO run's folder and report row: ``rl_<scheme>[<ablation>]``, ``_labelled`` added for a reward that reads
    pseudo-labels in a run that also has unlabelled prompts (it trains on the labelled ones only).

    >>> rl_run_name("rm", "_teacher_only"), rl_run_name("vote", labelled_only=True)
    ('rl_rm_teacher_only', 'rl_vote_labelled')
    """
    return f"rl_{scheme}{ablation}" + ("_labelled" if labelled_only else "")


def sweep_settings(sweep: dict) -> list[tuple[str, dict]]:
    """Every combination of an ``sft.sweep`` mapping (OpenRLHF flag -> values) as (folder name, flags), in order;
    none for an empty mapping.

    >>> [name for name, _ in sweep_settings({"adam.lr": [3e-5, 1e-4], "train.max_epochs": [1]})]
    ['adam.lr-3e-05_train.max_epochs-1', 'adam.lr-0.0001_train.max_epochs-1']
    """
    import itertools

    if not sweep:
        return []
    names = list(sweep)
    combos = itertools.product(*(sweep[name] for name in names))
    return [
        ("_".join(f"{n}-{v}" for n, v in zip(names, values, strict=True)), dict(zip(names, values, strict=True)))
        for values in combos
    ]


def _launcher(section: dict) -> list[str]:
    """A trainer section's deepspeed launcher flags as `--launcher FLAG=VALUE` words (none: nothing added)."""
    return [word for flag in section["launcher"] for word in ("--launcher", flag)]


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


def _words(flags: dict) -> list[str]:
    """Command-line words of ``{"--seed": 0, "--data.apply_chat_template": True}``: each flag with its value as
    text, a True value as the bare flag."""
    return [word for flag, value in flags.items() for word in ([flag] if value is True else [flag, str(value)])]


def _command(name: str, *positional: str, flags: dict | None = None, extra: list[str] = ()) -> list[str]:
    """``[name, *positional]``, the words of ``flags``, then ``extra`` unchanged."""
    return [name, *positional, *_words(flags or {}), *extra]


def plan(config: dict) -> list[Stage]:
    """Every stage of the run, in order."""
    return _Planner(config).stages


class _Planner:
    """Lays the stages out in run order: the questions (0), the teacher's samples, labels and SFT data shared by
    every seed (1-3), the evaluations of the untrained models, then each seed's chain (4-10) and the report."""

    def __init__(self, config: dict):
        self.config, self.run = config, config["run_dir"]
        self.task, self.seeds = config["task"], config["seeds"]
        self.engine, self.backend = config["engine"], config["backend"]
        self.teacher, self.student, self.ev = config["teacher"], config["student"], config["eval"]
        self.stages: list[Stage] = []
        self._questions()
        self._teacher()
        for name in self.ev["models"]:
            model = {"teacher": self.teacher_model, "student_base": self.student_model}[name]
            flags = self.teacher["backend_flags"] if name == "teacher" else self.student["backend_flags"]
            self._evaluation(name, model, self.seeds[0], self.upstream + self.external, flags)
        for seed in self.seeds:
            self._seed(seed)
        measured = [s.output for s in self.stages if s.name in ("eval", "rm_eval", "rl", "labels", "teacher_labels")]
        # its other outputs are work: a stale report goes whole, never left for the new one to refuse as not ours
        written = [os.path.join(self.run, name) for name in ("report.md", "plots")]
        self._add(
            Stage(
                "report",
                "report",
                None,
                ["report", self.run],
                os.path.join(self.run, "results.json"),
                measured,
                work=written,
            )
        )

    def _add(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        return stage

    # --- 0: the questions (and, for the toy world, the models) ---------------------------------------------

    def _questions(self) -> None:
        data, run, task = self.config["data"], self.run, self.task
        self.teacher_model, self.student_model = self.teacher["model"], self.student["model"]
        if data["source"] == "toy":
            world, toy = os.path.join(run, "world"), data["toy"]
            argv = _command(
                "toy-world",
                world,
                flags={
                    "--preset": toy["preset"],
                    "--seed": self.seeds[0],
                    "--n_train": toy["n_train"],
                    "--n_test": toy["n_test"],
                },
                extra=_flags(toy["flags"]),
            )
            self._add(Stage("world", "world", None, argv, world, resolved=_world_settings(argv[1:])))
            self.train, self.test = (
                os.path.join(world, "prompts_train.jsonl"),
                os.path.join(world, "prompts_test.jsonl"),
            )
            self.teacher_model = self.teacher_model or os.path.join(world, "teacher")
            self.student_model = self.student_model or os.path.join(world, "student")
            self.upstream = [world]
        elif data["source"] == "hf":
            folder = os.path.join(run, "data")
            self.train, self.test = (
                os.path.join(folder, "prompts_train.jsonl"),
                os.path.join(folder, "prompts_test.jsonl"),
            )
            # MMLU-Pro has no train split: prepare-data cuts train / heldout out of its test set (split file in run).
            test_split = "heldout" if task == "mmlu_pro" else "test"
            for split, out, limit, local in (
                ("train", self.train, data["limit_train"], data["train"]),
                (test_split, self.test, data["limit_test"], data["test"]),
            ):
                argv = ["prepare-data", "--task", task, "--split", split, "--out", out, "--run_dir", run]
                argv += (["--limit", str(limit)] if limit else []) + (["--source", local] if local else [])
                self._add(Stage("data", f"data_{split}", None, argv, out, [local] if local else []))
            self.upstream = [self.train, self.test]
        else:
            self.train, self.test = data["train"], data["test"]
            self.upstream = [path for path in (self.train, self.test) if path]  # open-ended runs may have no test
        self.external = [] if data["source"] == "toy" else [self.teacher_model, self.student_model]
        self.unlabelled = None
        if data["labelled_questions"]:  # a teacher budget: the rest of the questions are unlabelled RL prompts
            folder = os.path.join(run, "questions")
            flags = {"--prompts": self.train, "--labelled": data["labelled_questions"], "--out": folder}
            self._add(Stage("split", "split", None, _command("split", flags=flags), folder, [self.train]))
            self.train = os.path.join(folder, "labelled.jsonl")
            self.unlabelled = os.path.join(folder, "unlabelled.jsonl")
            self.upstream = self.upstream + [folder]

    # --- 1-3: teacher samples, vote, SFT data (shared by every seed) ---------------------------------------

    def _sampling(self, model: str, role: str, out: str, settings: dict, seed: int) -> list[str]:
        flags = {
            "--model": model,
            "--role": role,
            "--prompts": self.train,
            "--out": out,
            "--task": self.task,
            "--temperatures": _csv(settings["temperatures"]),
            "--n_per_temperature": settings["n_per_temperature"],
            "--max_new_tokens": settings["max_new_tokens"],
            "--shard_size": settings["shard_size"],
            "--seed": seed,
            "--backend": self.backend,
        }
        return _command("generate", flags=flags, extra=_flags(settings["backend_flags"]))

    def _labelling(self, out: str, student_samples: str | None = None) -> list[str]:
        """`label` (the vote) or `judge` (the teacher scores every response) of the teacher's samples, and of a
        student's when given: both write the same labels folder."""
        flags = {"--prompts": self.train, "--teacher_samples": self.teacher_samples}
        flags |= {"--student_samples": student_samples} if student_samples else {}
        flags |= {"--out": out, "--task": self.task}
        if self.config["labeller"] == "vote":
            return _command("label", flags=flags, extra=_vote_flags(self.config["vote"]))
        judge = self.config["judge"]
        own = (
            {**self.teacher["backend_flags"], **judge["flags"]}
            if self.judge_model == self.teacher_model
            else judge["flags"]
        )
        flags |= {"--model": self.judge_model, "--backend": self.backend, "--seed": self.seeds[0]}
        return _command("judge", flags=flags, extra=_flags(own))

    def _teacher(self) -> None:
        run, config = self.run, self.config
        self.teacher_samples = os.path.join(run, "teacher_samples")
        argv = self._sampling(self.teacher_model, "teacher", self.teacher_samples, self.teacher, self.seeds[0])
        if self.teacher["adaptive"]["rule"]:  # it stops on the vote the label stage takes: the same rule
            argv += [
                word for name, value in self.teacher["adaptive"].items() for word in (f"--adaptive.{name}", str(value))
            ]
            argv += _vote_flags(config["vote"])
        inputs = self.upstream + self.external + [self.train]
        self._add(Stage("teacher_samples", "teacher_samples", None, argv, self.teacher_samples, inputs))

        self.judge_model = config["judge"]["model"] or self.teacher_model  # the teacher judges unless named
        judged_by_another = config["labeller"] == "judge" and self.judge_model != self.teacher_model
        self.judge_inputs = [self.judge_model] if judged_by_another else []
        self.labels = os.path.join(run, "labels")
        inputs = [self.train, self.teacher_samples, *self.judge_inputs]
        self._add(Stage("teacher_labels", "teacher_labels", None, self._labelling(self.labels), self.labels, inputs))

        # Each build stage is given only the settings of the files its consumers read: a change to the RM's pairs
        # does not make the SFT data, and with it every SFT run, stale.
        build = config["build"]
        self.dev_flags = {"--dev.questions": build["dev_questions"]} if build["dev_questions"] else {}
        rm_flags = {"--rm.pairs_per_question": build["pairs_per_question"], "--rm.pair_margin": build["pair_margin"]}
        rm_flags |= {"--rl.unlabelled": self.unlabelled} if self.unlabelled else {}
        self.rm_build_flags = _words(rm_flags | self.dev_flags)
        sft_flags = dict(self.dev_flags)
        if build["sft_max_per_question"]:
            sft_flags["--sft.max_per_question"] = build["sft_max_per_question"]
        if build["sft_min_label"] != BuildConfig.sft_min_label:  # build's own default left unsaid, as before
            sft_flags["--sft.min_label"] = build["sft_min_label"]
        self.sft_data = os.path.join(run, "sft_data")
        self.dev = os.path.join(self.sft_data, "dev.jsonl") if self.dev_flags else None
        flags = {"--prompts": self.train, "--labels": self.labels, "--out": self.sft_data, "--task": self.task}
        argv = _command("build", flags=flags | sft_flags)
        self._add(Stage("sft_data", "sft_data", None, argv, self.sft_data, [self.train, self.labels]))

    # --- 10: evaluation on the test prompts ----------------------------------------------------------------

    def _evaluation(self, name: str, model: str, seed: int, inputs: list, backend_flags: dict | None = None) -> None:
        if not self.ev["enabled"]:
            return
        out = os.path.join(self.run, "eval", f"{name}_seed{seed}.json")
        flags = {
            "--model": model,
            "--task": self.task,
            "--prompts": self.test,
            "--out": out,
            "--name": name,
            "--seed": seed,
            "--k": self.ev["k"],
            "--temperature": self.ev["temperature"],
            "--max_new_tokens": self.ev["max_new_tokens"],
            "--backend": self.backend,
        }
        backend_flags = self.student["backend_flags"] if backend_flags is None else backend_flags
        argv = _command("eval", flags=flags, extra=_flags(backend_flags))
        self._add(
            Stage(
                "eval", f"eval_{name}@seed{seed}", seed, argv, out, inputs + [self.test], work=[samples_dir_for(out)]
            )
        )

    # --- 4-10 per seed -------------------------------------------------------------------------------------

    def _sft_run(self, seed: int, out: str, key: str, setting: dict) -> None:
        """One SFT stage: OpenRLHF's train_sft on the SFT data, the config's flags with ``setting`` over them."""
        S, section = TRAIN_SFT, self.config["sft"]
        flags = {
            "--engine": self.engine,
            S["model"]: self.student_model,
            S["dataset"]: os.path.join(self.sft_data, "sft.jsonl"),
            S["input_key"]: "input",
            S["output_key"]: "output",
            S["apply_chat_template"]: True,
            S["seed"]: seed,
        }
        argv = _command("sft", flags=flags, extra=_launcher(section) + _flags({**section["flags"], **setting}))
        inputs = self.upstream + self.external + [self.sft_data]
        self._add(Stage("sft", key, seed, argv, out, inputs, partial=True))

    def _choice_settings(self) -> dict:
        """How a gold-free model choice (`select`, `ppo --distill.select.*`) decodes: as the evaluations do, on the
        student's batch size, so its greedy answers are the evaluations' own (an OpenAI endpoint serves no
        candidate folders: the local backend then)."""
        return {
            "max_new_tokens": self.ev["max_new_tokens"],
            "backend": "auto" if self.backend == "openai" else self.backend,
            "batch_size": self.student["backend_flags"].get("hf.batch_size", 64),
        }

    def _sft(self, seed: int, here: str) -> str:
        """SFT, or with ``sft.sweep`` one SFT run per setting and the one whose greedy answers agree most with the
        dev pseudo-labels copied to ``student_sft`` (`selection`): the same gold-free criterion RL's checkpoints
        are chosen by."""
        sft, sweep = os.path.join(here, "student_sft"), sweep_settings(self.config["sft"]["sweep"])
        if not sweep:
            self._sft_run(seed, sft, f"sft@seed{seed}", {})
            return sft
        candidates = []
        for name, setting in sweep:
            out = os.path.join(here, "sft_sweep", name)
            self._sft_run(seed, out, f"sft_{name}@seed{seed}", setting)
            candidates.append(out)
        flags = {
            "--candidates": ",".join(candidates),
            "--dev": self.dev,
            "--task": self.task,
            "--out": sft,
            **{f"--{name}": value for name, value in self._choice_settings().items()},
        }
        flags |= {"--measure": self.test} if self.ev["enabled"] else {}  # gold: reported beside, never chosen by
        inputs = candidates + [self.sft_data] + ([self.test] if self.ev["enabled"] else [])
        argv = _command("select", flags=flags)
        self._add(Stage("sft_select", f"sft_select@seed{seed}", seed, argv, sft, inputs, work=[work_dir_for(sft)]))
        return sft

    def _seed(self, seed: int) -> None:
        config, here, train = self.config, os.path.join(self.run, f"seed{seed}"), self.train
        sft = self._sft(seed, here)

        samples = os.path.join(here, "student_samples")
        argv = self._sampling(sft, "student", samples, self.student, seed)
        self._add(Stage("student_samples", f"student_samples@seed{seed}", seed, argv, samples, [sft, train]))
        labels = os.path.join(here, "labels")
        inputs = [train, self.teacher_samples, samples, *self.judge_inputs]
        self._add(Stage("labels", f"labels@seed{seed}", seed, self._labelling(labels, samples), labels, inputs))

        teacher_only = "teacher_only" in config["rm"]["ablations"]
        rms = {}
        for suffix, sources in [("", "teacher,student")] + [("_teacher_only", "teacher")] * teacher_only:
            rms[suffix] = self._reward_model(seed, here, sft, labels, suffix, sources)
        rm, _ = rms[""]
        self._evaluation("sft", sft, seed, [sft])
        if self.ev["enabled"]:
            self._rm_eval(seed, here, rm)
        runs = [(scheme, "") for scheme in config["ppo"]["schemes"]] + [("rm", "_teacher_only")] * teacher_only
        for scheme, suffix in runs:
            rl = self._ppo(seed, here, sft, scheme, suffix, *rms.get(suffix, rms[""]))
            self._evaluation(os.path.basename(rl), rl, seed, [rl])

    def _reward_model(self, seed: int, here: str, sft: str, labels: str, suffix: str, sources: str) -> tuple:
        """The RM-data and RM stages of one variant (``suffix``: "" or "_teacher_only"): (RM folder, its data)."""
        rm_data = os.path.join(here, f"data{suffix}")
        flags = {
            "--prompts": self.train,
            "--labels": labels,
            "--out": rm_data,
            "--task": self.task,
            "--rm.sources": sources,
            "--seed": seed,
        }
        argv = _command("build", flags=flags, extra=self.rm_build_flags)
        inputs = [self.train, labels] + ([self.unlabelled] if self.unlabelled else [])
        self._add(Stage("rm_data", f"rm_data{suffix}@seed{seed}", seed, argv, rm_data, inputs))
        rm, R = os.path.join(here, f"rm{suffix}"), TRAIN_DISTILL_RM
        flags = {
            "--engine": self.engine,
            R["model"]: sft,
            R["dataset"]: os.path.join(rm_data, "rm_pairs.jsonl"),
            R["prompt_key"]: "prompt",
            R["chosen_key"]: "chosen",
            R["rejected_key"]: "rejected",
            R["apply_chat_template"]: True,
            "--distill.rm.points": os.path.join(rm_data, "rm_points.jsonl"),
            R["seed"]: seed,
        }
        argv = _command(
            "train-rm", flags=flags, extra=_launcher(self.config["rm"]) + _flags(self.config["rm"]["flags"])
        )
        self._add(Stage("rm", f"rm{suffix}@seed{seed}", seed, argv, rm, [sft, rm_data], partial=True))
        return rm, rm_data

    def _rm_eval(self, seed: int, here: str, rm: str) -> None:
        """The RM judged on held-out questions: the SFT student's evaluation samples (k per question for
        best-of-N), which neither the RM nor the student trained on."""
        sft_eval = self.stages[-1].output
        sft_samples = os.path.join(samples_dir_for(sft_eval), "sampled" if self.ev["k"] > 1 else "greedy")
        rm_eval = os.path.join(here, "rm_eval.json")
        flags = {
            "--model": rm,
            "--prompts": self.test,
            "--samples": sft_samples,
            "--out": rm_eval,
            "--scores_out": os.path.join(here, "rm_scores.jsonl"),
            "--seed": seed,
        }
        self._add(
            Stage(
                "rm_eval",
                f"rm_eval@seed{seed}",
                seed,
                _command("eval-rm", flags=flags),
                rm_eval,
                [rm, self.test, sft_eval],
            )
        )

    def _ppo(self, seed: int, here: str, sft: str, scheme: str, suffix: str, rm: str, data: str) -> str:
        # With unlabelled prompts, the rewards that read a pseudo-label train on the labelled ones only, and their
        # run says so in its name; the others train on every prompt.
        labelled_only = self.unlabelled is not None and scheme in LABEL_SCHEMES
        name = rl_run_name(scheme, suffix, labelled_only)
        prompts = "rl_prompts.jsonl" if self.unlabelled is None or labelled_only else "rl_prompts_all.jsonl"
        rl, P, ppo = os.path.join(here, name), TRAIN_PPO_RAY, self.config["ppo"]
        flags = {
            "--reward.scheme": scheme,
            "--task": self.task,
            "--engine": self.engine,
            P["actor_model"]: sft,
            P["prompt_dataset"]: os.path.join(data, prompts),
            P["input_key"]: "input",
            P["apply_chat_template"]: True,
            P["seed"]: seed,
        }
        if ppo["steps"]:
            flags["--distill.steps"] = ppo["steps"]
        if ppo["select_every"]:  # the actor every N steps, the best by dev agreement kept (`selection`)
            flags |= {
                P["save_steps"]: ppo["select_every"],
                "--distill.select.dev": self.dev,
                **{f"--distill.select.{name}": value for name, value in self._choice_settings().items()},
            }
            flags |= {"--distill.select.measure": self.test} if self.ev["enabled"] else {}
        inputs = [sft, data]
        if scheme in ("rm", "judge", "hybrid"):
            flags[P["reward_model"]] = rm
            inputs.append(rm)
        cluster = self.config["cluster"]
        if cluster["nodes"] and cluster["gpus_per_node"]:
            flags |= {
                "--distill.cluster.nodes": cluster["nodes"],
                "--distill.cluster.gpus_per_node": cluster["gpus_per_node"],
            }
        if cluster["autoscaling"]:
            flags["--distill.cluster.autoscaling"] = True
        argv = _command("ppo", flags=flags, extra=_flags(self.config["ppo"]["flags"]))
        self._add(Stage("rl", f"{name}@seed{seed}", seed, argv, rl, inputs, partial=True))
        return rl


def checkpoint_dir(output: str) -> str:
    """Where a trainer stage's OpenRLHF checkpoints (DeepSpeed states, every ``ckpt.save_steps``) go."""
    return os.path.join(output, "ckpt")


def output_flags(output: str) -> list[str]:
    """Where a trainer stage writes: OpenRLHF's output folder, its DeepSpeed states inside it (the three trainer
    CLIs spell these two flags the same)."""
    return [TRAIN_SFT["output_dir"], output, TRAIN_SFT["ckpt_path"], checkpoint_dir(output)]


def resume_flags(output: str) -> list[str]:
    """`output_flags` plus the flag that makes the trainer continue from the latest checkpoint it saved there."""
    return [*output_flags(output), TRAIN_SFT["load_checkpoint"]]
