"""`openrlhf-distill`: one subcommand per pipeline stage, plus set-up helpers.

Each subcommand lives beside its stage, in one shape: the module named in ``COMMANDS`` has
``add_arguments(parser)`` and ``run(args)`` (``run(args, openrlhf_argv)`` for the commands that pass OpenRLHF's
own flags through unchanged), and may have ``check`` with the same arguments: what can be judged before its inputs
exist, run by :func:`check_command` for every stage of a pipeline before the first one starts. This file is only
the table and what is common to all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

_TRAINER_EXAMPLE = "--model.model_name_or_path M --data.dataset data.jsonl --ckpt.output_dir out/."


@dataclass(frozen=True)
class Command:
    module: str  # the module with add_arguments(parser) and run(args[, openrlhf_argv])
    help: str
    description: str | None = None
    openrlhf_flags: bool = False  # flags it does not own go to OpenRLHF (run(args, openrlhf_argv))
    # The settings dataclass in its module its flags are made from (`settings.py`), and the run config's section
    # made from the same fields, if the pipeline sets any of them.
    settings: str | None = None
    settings_group: str = ""  # the settings' flags are --GROUP.field
    config_section: str | None = None


# In pipeline order (docs/architecture.md): set-up, sample, label (vote or judge), build the sets, SFT, RM,
# evaluate the RM, RL, evaluate, report; then the whole pipeline and the toy helpers.
COMMANDS = {
    "doctor": Command(
        "doctor", "report installed components, the OpenRLHF version check and the engine", settings="DoctorSettings"
    ),
    "prepare-data": Command(
        "prepare_data",
        "GSM8K / MMLU-Pro (datasets, or a local copy) as prompt records",
        settings="PrepareDataSettings",
    ),
    "split": Command(
        "split",
        "cut the training questions into the teacher's (labelled) and unlabelled RL prompts",
        settings="SplitSettings",
    ),
    "generate": Command(
        "generation.generate",
        "sample the teacher or the student: several temperatures, resumable shards",
        settings="SamplingConfig",
        config_section="teacher",  # and `student`, the same fields with the student's own count and temperature
    ),
    "label": Command(
        "label",
        "majority vote over teacher answers, 0/1 labels for teacher and student samples",
        settings="VoteRule",
        settings_group="vote",
        config_section="vote",
    ),
    "judge": Command(
        "judge",
        "teacher as judge: 1-10 scores for open-ended samples, labels = score / 10",
        settings="JudgeSettings",
        settings_group="judge",
    ),
    "build": Command(
        "build",
        "SFT, RM-pair, RM-point and RL-prompt sets in OpenRLHF's formats",
        settings="BuildConfig",
        config_section="build",
    ),
    "sft": Command(
        "trainers",
        "SFT warm-up: OpenRLHF's train_sft (deepspeed on GPUs, the CPU adapter elsewhere)",
        f"Every flag not listed here goes to openrlhf.cli.train_sft unchanged, e.g. {_TRAINER_EXAMPLE}",
        openrlhf_flags=True,
        settings="TrainerLaunch",
        config_section="sft",
    ),
    "train-rm": Command(
        "trainers",
        "reward model: OpenRLHF's train_rm with the pairwise + pointwise loss (deepspeed on GPUs, the CPU adapter "
        "elsewhere)",
        f"Every flag not listed here goes to openrlhf_distill.reward_model.train (OpenRLHF's train_rm) unchanged, "
        f"e.g. {_TRAINER_EXAMPLE}",
        openrlhf_flags=True,
        settings="TrainerLaunch",
        config_section="rm",
    ),
    "eval-rm": Command(
        "reward_model.eval_rm",
        "reward model on held-out data: pseudo and gold pairs, AUC, ECE, best-of-N",
        settings="EvalRMSettings",
    ),
    "ppo": Command(
        "ppo",
        "RL: OpenRLHF's train_ppo_ray with the reward scheme of --reward.scheme (Ray + vLLM; CPU adapter)",
        "Every flag not listed here goes to openrlhf.cli.train_ppo_ray unchanged, e.g. --actor.model_name_or_path "
        "SFT_DIR --reward.model_name_or_path RM_DIR --data.prompt_dataset rl_prompts.jsonl --ckpt.output_dir out/.",
        openrlhf_flags=True,
        settings="PPOOptions",
    ),
    "select": Command(
        "selection",
        "choose among models by agreement with dev pseudo-labels (no gold): the best is copied",
        settings="SelectSettings",
    ),
    "serve-rm": Command(
        "rewards.server",
        "serve a reward model over HTTP, batching concurrent requests (hybrid)",
        settings="ServerSettings",
    ),
    "eval": Command(
        "evaluation",
        "greedy accuracy, maj@k and pass@k with 95%% intervals (one JSON per model)",
        settings="EvalSettings",
        config_section="eval",
    ),
    "report": Command("report", "results.json, report.md and plots/ of a run directory", settings="ReportSettings"),
    "run": Command(
        "pipeline",
        "the whole method: every stage in order, resumable, ending in results.json / report.md",
        "Settings come from --config and then from dotted overrides (--teacher.temperatures 0.3,1.0; "
        "--ppo.actor.adam.lr 1e-6 sets an OpenRLHF flag of the ppo stage).",
        openrlhf_flags=True,  # the dotted overrides: read by the pipeline's config, not by argparse
        settings="RunSettings",
    ),
    "toy-world": Command(
        "toy.world",
        "the CPU toy world: arithmetic data, a teacher and a student pretrained here",
        settings="WorldSettings",  # and ArithmeticSpec's; every flag defaults to the --preset's value
    ),
    "tiny-model": Command(
        "toy.tiny_model",
        "build a tiny random causal LM + tokenizer offline (tests, toy runs)",
        settings="TinyModelSpec",
    ),
}


def _module(command: Command):
    return importlib.import_module(f"{__package__}.{command.module}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openrlhf-distill",
        description="Distill not only data but also rewards (arXiv 2502.19557) on OpenRLHF.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        # a command that passes flags on must not take `--data` for OpenRLHF's `--data.dataset` (abbreviation)
        p = sub.add_parser(
            name, help=command.help, description=command.description, allow_abbrev=not command.openrlhf_flags
        )
        _module(command).add_arguments(p)
    return parser


@dataclass
class Checked:
    """A command line :func:`check_command` accepted: its parsed arguments, and what the command's check gave."""

    args: argparse.Namespace
    result: object = None


def check_command(argv: list[str]) -> Checked:
    """``openrlhf-distill ARGV`` judged without running it: parsed as :func:`main` parses it, then the command's
    own ``check`` if its module has one. Raises ValueError with the parser's or the check's one-line reason."""
    import contextlib
    import io

    parser, errors = build_parser(), io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args, rest = parser.parse_known_args(argv)
    except SystemExit:
        raise ValueError((errors.getvalue().strip().splitlines() or ["cannot parse the command"])[-1]) from None
    command = COMMANDS[args.command]
    if rest and not command.openrlhf_flags:
        raise ValueError(f"openrlhf-distill {args.command}: unrecognized arguments: {' '.join(rest)}")
    check = getattr(_module(command), "check", None)
    if check is None:
        return Checked(args)
    return Checked(args, check(args, rest) if command.openrlhf_flags else check(args))


def main(argv: list[str] | None = None) -> int:
    from .compat.quiet import quiet_harmless_warnings

    quiet_harmless_warnings()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    command = COMMANDS[args.command]
    if rest and not command.openrlhf_flags:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    from .compat.launch import OpenRLHFRunError
    from .compat.version import OpenRLHFNotSupported
    from .generation.backend import BackendError
    from .pipeline import StageFailed
    from .records import RecordError
    from .rewards.server import RewardServerError

    run = _module(command).run
    try:
        return run(args, rest) if command.openrlhf_flags else run(args)
    except (
        OpenRLHFNotSupported,
        OpenRLHFRunError,
        RecordError,
        BackendError,
        RewardServerError,
        StageFailed,
        ValueError,
    ) as error:
        print(f"openrlhf-distill {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
