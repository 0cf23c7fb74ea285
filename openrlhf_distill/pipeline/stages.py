"""The stages of the method as commands: each stage is one ``openrlhf-distill`` subcommand with its inputs and the
output it makes, so ``run --dry-run`` can print exactly what runs, and every stage can also be run by hand.

Run directory (``run_dir``):

    world/ or data/            prompts_train.jsonl, prompts_test.jsonl (+ teacher/, student/ for the toy world)
    teacher_samples/           1  teacher sampling
    labels/                    2  vote over the teacher's answers (labeller: judge: the teacher's scores)
    sft_data/                  3  SFT data (teacher answers agreeing with the vote)
    seed<k>/student_sft/       4  SFT warm-up (OpenRLHF train_sft)
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

from ..compat.flags import TRAIN_DISTILL_RM, TRAIN_PPO_RAY, TRAIN_SFT
from ..evaluation import samples_dir_for
from ..voting import VoteRule

CLI = [sys.executable, "-m", "openrlhf_distill.cli"]
STAGE_NAMES = (
    "world",
    "data",
    "teacher_samples",
    "teacher_labels",
    "sft_data",
    "sft",
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


def _launcher(section: dict) -> list[str]:
    """A trainer section's deepspeed launcher flags as `--launcher FLAG=VALUE` words (none: nothing added)."""
    return [word for flag in section["launcher"] for word in ("--launcher", flag)]


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


def plan(config: dict) -> list[Stage]:
    """Every stage of the run, in order."""
    run = config["run_dir"]
    task, seeds, engine, backend = config["task"], config["seeds"], config["engine"], config["backend"]
    data, teacher, student = config["data"], config["teacher"], config["student"]
    stages: list[Stage] = []

    def add(stage: Stage) -> Stage:
        stages.append(stage)
        return stage

    # 0: the questions (and, for the toy world, the models)
    if data["source"] == "toy":
        world = os.path.join(run, "world")
        toy = data["toy"]
        argv = [
            "toy-world",
            world,
            "--preset",
            toy["preset"],
            "--seed",
            str(seeds[0]),
            "--n-train",
            str(toy["n_train"]),
            "--n-test",
            str(toy["n_test"]),
            *_flags(toy["flags"]),
        ]
        add(Stage("world", "world", None, argv, world, resolved=_world_settings(argv[1:])))
        train, test = os.path.join(world, "prompts_train.jsonl"), os.path.join(world, "prompts_test.jsonl")
        teacher_model = teacher["model"] or os.path.join(world, "teacher")
        student_model = student["model"] or os.path.join(world, "student")
        upstream = [world]
    elif data["source"] == "hf":
        folder = os.path.join(run, "data")
        train, test = os.path.join(folder, "prompts_train.jsonl"), os.path.join(folder, "prompts_test.jsonl")
        # MMLU-Pro has no train split: prepare-data cuts train / heldout out of its test set (split file in run).
        test_split = "heldout" if task == "mmlu_pro" else "test"
        for split, out, limit, local in (
            ("train", train, data["limit_train"], data["train"]),
            (test_split, test, data["limit_test"], data["test"]),
        ):
            argv = ["prepare-data", "--task", task, "--split", split, "--out", out, "--run-dir", run]
            argv += (["--limit", str(limit)] if limit else []) + (["--source", local] if local else [])
            add(Stage("data", f"data_{split}", None, argv, out, [local] if local else []))
        teacher_model, student_model = teacher["model"], student["model"]
        upstream = [train, test]
    else:
        train, test = data["train"], data["test"]
        teacher_model, student_model = teacher["model"], student["model"]
        upstream = [path for path in (train, test) if path]  # open-ended runs may have no test prompts
    external = [] if data["source"] == "toy" else [teacher_model, student_model]

    def sampling(model, role, prompts, out, settings, seed, inputs):
        argv = [
            "generate",
            "--model",
            model,
            "--role",
            role,
            "--prompts",
            prompts,
            "--out",
            out,
            "--task",
            task,
            "--temperatures",
            _csv(settings["temperatures"]),
            "--n-per-temperature",
            str(settings["n_per_temperature"]),
            "--max-new-tokens",
            str(settings["max_new_tokens"]),
            "--shard-size",
            str(settings["shard_size"]),
            "--seed",
            str(seed),
            "--backend",
            backend,
            *_flags(settings["backend_flags"]),
        ]
        return argv, inputs + [prompts]

    # 1-3: teacher samples, vote, SFT data (shared by every seed)
    teacher_samples = os.path.join(run, "teacher_samples")
    argv, inputs = sampling(teacher_model, "teacher", train, teacher_samples, teacher, seeds[0], upstream + external)
    if teacher["adaptive"]["rule"]:  # it stops on the vote the label stage takes: the same rule
        argv += [word for name, value in teacher["adaptive"].items() for word in (f"--adaptive.{name}", str(value))]
        argv += _vote_flags(config["vote"])
    add(Stage("teacher_samples", "teacher_samples", None, argv, teacher_samples, inputs))

    judge = config["judge"]
    judge_model = judge["model"] or teacher_model  # the teacher judges unless another model is named

    def labelling(out, student_samples=None):
        """`label` (the vote) or `judge` (the teacher scores every response) of the teacher's samples, and of a
        student's when given: both write the same labels folder."""
        argv = ["--prompts", train, "--teacher-samples", teacher_samples]
        argv += ["--student-samples", student_samples] if student_samples else []
        argv += ["--out", out, "--task", task]
        if config["labeller"] == "vote":
            return ["label", *argv, *_vote_flags(config["vote"])]
        flags = {**teacher["backend_flags"], **judge["flags"]} if judge_model == teacher_model else judge["flags"]
        return ["judge", *argv, "--model", judge_model, "--backend", backend, "--seed", str(seeds[0]), *_flags(flags)]

    labels = os.path.join(run, "labels")
    judge_inputs = [judge_model] if config["labeller"] == "judge" and judge_model != teacher_model else []
    add(
        Stage(
            "teacher_labels",
            "teacher_labels",
            None,
            labelling(labels),
            labels,
            [train, teacher_samples, *judge_inputs],
        )
    )
    # Each build stage is given only the settings of the files its consumers read: a change to the RM's pairs
    # does not make the SFT data, and with it every SFT run, stale.
    build = config["build"]
    rm_build_flags = ["--rm.pairs_per_question", str(build["pairs_per_question"])]
    rm_build_flags += ["--rm.pair_margin", str(build["pair_margin"])]
    sft_build_flags = []
    if build["sft_max_per_question"]:
        sft_build_flags += ["--sft.max_per_question", str(build["sft_max_per_question"])]
    if build["sft_min_label"] is not None:
        sft_build_flags += ["--sft.min_label", str(build["sft_min_label"])]
    sft_data = os.path.join(run, "sft_data")
    sft_data_argv = ["build", "--prompts", train, "--labels", labels, "--out", sft_data, "--task", task]
    add(Stage("sft_data", "sft_data", None, sft_data_argv + sft_build_flags, sft_data, [train, labels]))

    # 10 (seed-independent models): the teacher and the student before any training
    eval_dir = os.path.join(run, "eval")
    ev = config["eval"]

    def evaluation(name, model, seed, inputs, backend_flags=student["backend_flags"]):
        if not ev["enabled"]:
            return
        out = os.path.join(eval_dir, f"{name}_seed{seed}.json")
        argv = [
            "eval",
            "--model",
            model,
            "--task",
            task,
            "--prompts",
            test,
            "--out",
            out,
            "--name",
            name,
            "--seed",
            str(seed),
            "--k",
            str(ev["k"]),
            "--temperature",
            str(ev["temperature"]),
            "--max-new-tokens",
            str(ev["max_new_tokens"]),
            "--backend",
            backend,
            *_flags(backend_flags),
        ]
        add(Stage("eval", f"eval_{name}@seed{seed}", seed, argv, out, inputs + [test], work=[samples_dir_for(out)]))

    base_models = {"teacher": teacher_model, "student_base": student_model}
    for name in ev["models"]:
        flags = teacher["backend_flags"] if name == "teacher" else student["backend_flags"]
        evaluation(name, base_models[name], seeds[0], upstream + external, flags)

    # 4-10 per seed
    for seed in seeds:
        here = os.path.join(run, f"seed{seed}")
        sft = os.path.join(here, "student_sft")
        S = TRAIN_SFT
        sft_argv = [
            "sft",
            "--engine",
            engine,
            S["model"],
            student_model,
            S["dataset"],
            os.path.join(sft_data, "sft.jsonl"),
            S["input_key"],
            "input",
            S["output_key"],
            "output",
            S["apply_chat_template"],
            S["seed"],
            str(seed),
            *_launcher(config["sft"]),
            *_flags(config["sft"]["flags"]),
        ]
        add(Stage("sft", f"sft@seed{seed}", seed, sft_argv, sft, upstream + external + [sft_data], partial=True))
        samples = os.path.join(here, "student_samples")
        argv, inputs = sampling(sft, "student", train, samples, student, seed, [sft])
        add(Stage("student_samples", f"student_samples@seed{seed}", seed, argv, samples, inputs))
        seed_labels = os.path.join(here, "labels")
        add(
            Stage(
                "labels",
                f"labels@seed{seed}",
                seed,
                labelling(seed_labels, samples),
                seed_labels,
                [train, teacher_samples, samples, *judge_inputs],
            )
        )
        teacher_only = "teacher_only" in config["rm"]["ablations"]
        variants = [("", "teacher,student")] + [("_teacher_only", "teacher")] * teacher_only
        rms = {}
        for suffix, sources in variants:
            rm_data = os.path.join(here, f"data{suffix}")
            add(
                Stage(
                    "rm_data",
                    f"rm_data{suffix}@seed{seed}",
                    seed,
                    [
                        "build",
                        "--prompts",
                        train,
                        "--labels",
                        seed_labels,
                        "--out",
                        rm_data,
                        "--task",
                        task,
                        "--rm.sources",
                        sources,
                        "--seed",
                        str(seed),
                        *rm_build_flags,
                    ],
                    rm_data,
                    [train, seed_labels],
                )
            )
            rm = os.path.join(here, f"rm{suffix}")
            R = TRAIN_DISTILL_RM
            rm_argv = [
                "train-rm",
                "--engine",
                engine,
                R["model"],
                sft,
                R["dataset"],
                os.path.join(rm_data, "rm_pairs.jsonl"),
                R["prompt_key"],
                "prompt",
                R["chosen_key"],
                "chosen",
                R["rejected_key"],
                "rejected",
                R["apply_chat_template"],
                "--distill.rm.points",
                os.path.join(rm_data, "rm_points.jsonl"),
                R["seed"],
                str(seed),
                *_launcher(config["rm"]),
                *_flags(config["rm"]["flags"]),
            ]
            add(Stage("rm", f"rm{suffix}@seed{seed}", seed, rm_argv, rm, [sft, rm_data], partial=True))
            rms[suffix] = (rm, rm_data)
        rm, rm_data = rms[""]
        evaluation("sft", sft, seed, [sft])
        if ev["enabled"]:
            # The RM judged on held-out questions: the SFT student's evaluation samples (k per question for
            # best-of-N), which neither the RM nor the student trained on.
            sft_samples = os.path.join(samples_dir_for(stages[-1].output), "sampled" if ev["k"] > 1 else "greedy")
            rm_eval = os.path.join(here, "rm_eval.json")
            add(
                Stage(
                    "rm_eval",
                    f"rm_eval@seed{seed}",
                    seed,
                    [
                        "eval-rm",
                        "--model",
                        rm,
                        "--prompts",
                        test,
                        "--samples",
                        sft_samples,
                        "--out",
                        rm_eval,
                        "--scores-out",
                        os.path.join(here, "rm_scores.jsonl"),
                        "--seed",
                        str(seed),
                    ],
                    rm_eval,
                    [rm, test, stages[-1].output],
                )
            )
        runs = [(scheme, "") for scheme in config["ppo"]["schemes"]]
        runs += [("rm", "_teacher_only")] * teacher_only
        for scheme, suffix in runs:
            name = f"rl_{scheme}{suffix}"
            rl = os.path.join(here, name)
            rm_for, data_for = rms.get(suffix, rms[""])
            P = TRAIN_PPO_RAY
            ppo_argv = [
                "ppo",
                "--reward.scheme",
                scheme,
                "--task",
                task,
                "--engine",
                engine,
                P["actor_model"],
                sft,
                P["prompt_dataset"],
                os.path.join(data_for, "rl_prompts.jsonl"),
                P["input_key"],
                "input",
                P["apply_chat_template"],
                P["seed"],
                str(seed),
            ]
            inputs = [sft, data_for]
            if scheme in ("rm", "judge", "hybrid"):
                ppo_argv += [P["reward_model"], rm_for]
                inputs.append(rm_for)
            cluster = config["cluster"]
            if cluster["nodes"] and cluster["gpus_per_node"]:
                ppo_argv += [
                    "--distill.cluster.nodes",
                    str(cluster["nodes"]),
                    "--distill.cluster.gpus_per_node",
                    str(cluster["gpus_per_node"]),
                ]
            ppo_argv += _flags(config["ppo"]["flags"])
            add(Stage("rl", f"{name}@seed{seed}", seed, ppo_argv, rl, inputs, partial=True))
            evaluation(name, rl, seed, [rl])
    measured = [s.output for s in stages if s.name in ("eval", "rm_eval", "rl", "labels", "teacher_labels")]
    add(Stage("report", "report", None, ["report", run], os.path.join(run, "results.json"), measured))
    return stages


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
