"""`openrlhf-distill`: one subcommand per pipeline stage, plus set-up helpers.

Each subcommand lives beside its stage, in one shape: the module named in ``COMMANDS`` declares its paths
(``PATHS``, `contract.py`) and its settings dataclass (named in the table), from which its flags are made (or has
its own ``add_arguments(parser)``); it has ``run(args)`` (``run(args, openrlhf_argv, checked)`` for the commands
that pass OpenRLHF's own flags through unchanged), and may have ``check`` with the same arguments: what can be
judged before its inputs exist, run before any work by :func:`main`, and by :func:`check_command` for every stage
of a pipeline before the first one starts. This file is only the table and what is common to all.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass

DEBUG_ENV = "OPENRLHF_DISTILL_DEBUG"  # set: an unexpected error shows its traceback
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
        _add_arguments(name, command, p)
    return parser


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one command alone (``openrlhf-distill NAME``'s flags), for callers that run it in-process."""
    parser = argparse.ArgumentParser(prog=f"openrlhf-distill {name}", allow_abbrev=not COMMANDS[name].openrlhf_flags)
    _add_arguments(name, COMMANDS[name], parser)
    return parser


def _add_arguments(name: str, command: Command, parser: argparse.ArgumentParser) -> None:
    """The module's own ``add_arguments``, or else the flags made from what it declares: its paths (``PATHS``),
    any flags of its own (``add_own_arguments``), its settings dataclass."""
    from . import contract, settings

    module = _module(command)
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
        return
    contract.add_paths(parser, declared_paths(name))
    if hasattr(module, "add_own_arguments"):
        module.add_own_arguments(parser)
    settings.add_flags(parser, getattr(module, command.settings), command.settings_group)


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
    return check_command_args(args.command, args, rest)


def check_command_args(name: str, args: argparse.Namespace, rest: list[str]) -> Checked:
    """The command's own ``check`` (if its module has one) of arguments already parsed."""
    command = COMMANDS[name]
    if vars(args).get("task"):  # every command that takes --task: an unknown name is refused before any work
        from .tasks import get_task

        get_task(args.task)
    check = getattr(_module(command), "check", None)
    if check is None:
        return Checked(args)
    return Checked(args, check(args, rest) if command.openrlhf_flags else check(args))


def declared_paths(name: str) -> tuple:
    """The inputs and outputs command ``name`` declares (its module's ``PATHS``; per command where a module has
    two)."""
    paths = getattr(_module(COMMANDS[name]), "PATHS", ())
    return paths.get(name, ()) if isinstance(paths, dict) else paths


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause and fix: printed as one line, exit 2. Everything else is a bug."""
    from .compat.launch import OpenRLHFRunError
    from .compat.version import OpenRLHFNotSupported
    from .generation.backend import BackendError
    from .pipeline import StageFailed
    from .records import RecordError
    from .rewards.server import RewardServerError

    return (
        OpenRLHFNotSupported,
        OpenRLHFRunError,
        RecordError,
        BackendError,
        RewardServerError,
        StageFailed,
        ValueError,
        OSError,
    )


def _run_command(name: str, args, rest: list[str]) -> int:
    """The command under the output contract (`contract.py`): its outputs checked, locked and recorded as ours."""
    from . import contract

    command, paths = COMMANDS[name], declared_paths(name)
    module = _module(command)
    checked = check_command_args(name, args, rest)  # its settings (and OpenRLHF's parser), before any output

    def work() -> int:  # a command passing OpenRLHF's flags on gets what its check found (a plan)
        return module.run(args, rest, checked.result) if command.openrlhf_flags else module.run(args)

    if vars(args).get("dry_run"):  # prints what would run: checked, nothing claimed
        contract.check(name, contract.resolve(paths, args, rest), args, rest)
        return work()
    with contract.claim(name, paths, args, rest) as outcome:
        outcome["code"] = work()
    return outcome["code"]


def _report_bug(name: str, error: BaseException) -> int:
    """An exception nobody expected: one line that says so, the traceback kept in a file (or shown, debugging)."""
    import tempfile
    import time
    import traceback

    if os.environ.get(DEBUG_ENV):
        raise error
    log = os.path.join(
        tempfile.gettempdir(), f"openrlhf-distill-{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    )
    with open(log, "w", encoding="utf-8") as f:
        traceback.print_exception(error, file=f)
    print(
        f"openrlhf-distill {name}: internal error (a bug, not your input): {type(error).__name__}: {error}; the "
        f"traceback is in {log} (or rerun with {DEBUG_ENV}=1 to see it here); please report it",
        file=sys.stderr,
    )
    return 1


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
    expected = _expected_errors()
    try:
        return _run_command(args.command, args, rest)
    except expected as error:
        from .pipeline import StageFailed  # its report names the stage's command and log, a line each

        message = str(error) if isinstance(error, StageFailed) else _one_line(error)
        print(f"openrlhf-distill {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"openrlhf-distill {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 (the one place every other exception ends)
        return _report_bug(args.command, error)


def _one_line(error: BaseException) -> str:
    """An expected error's message; an OSError's as the system words it, naming the file."""
    if isinstance(error, OSError) and error.filename and not str(error).startswith(str(error.filename)):
        return f"{error.filename}: {error.strerror or error}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) if len(lines) <= 1 else lines[0] + " (" + " ".join(lines[1:]) + ")"


if __name__ == "__main__":
    sys.exit(main())
