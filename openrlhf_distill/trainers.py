"""`openrlhf-distill sft` and `train-rm`: OpenRLHF's train_sft and our train_rm (OpenRLHF's, with the distilled
trainer), launched through the adapter with deepspeed on GPUs or in one patched process on the CPU. Every flag
these commands do not own goes to OpenRLHF unchanged."""

from __future__ import annotations

from dataclasses import dataclass

from .compat.flags import TRAIN_DISTILL_RM, TRAIN_SFT
from .contract import Input, Output
from .settings import add_flags, from_args, setting

# subcommand -> the OpenRLHF CLI it runs
TRAINERS = {"sft": TRAIN_SFT, "train-rm": TRAIN_DISTILL_RM}


@dataclass(frozen=True)
class TrainerLaunch:
    """How `sft` and `train-rm` start OpenRLHF's trainer (its own settings are its own flags, passed on)."""

    engine: str = setting("auto", "auto: gpu when CUDA is found", choices=("auto", "gpu", "cpu"))
    log: str | None = setting(None, "also write the trainer's output to this file")
    dry_run: bool = setting(False, "print the command instead of running it", aliases=("--dry-run",))
    launcher: tuple[str, ...] = setting(
        (),
        "GPU engine: a flag for the deepspeed launcher, before --module (repeatable), e.g. --launcher "
        "hostfile=/job/hostfile --launcher num_nodes=2 for a multi-node run",
    )


def _paths(cli) -> tuple:
    """The trainer's paths, as OpenRLHF's flags name them (its output folder filled by OpenRLHF as it trains)."""
    inputs = [Input(cli[name][2:], "either", openrlhf=True) for name in ("model", "dataset", "eval_dataset")]
    if "points" in cli.flags:
        inputs.append(Input(cli["points"][2:], "file", openrlhf=True))
    output = Output(cli["output_dir"][2:], "folder", openrlhf=True, openrlhf_default="./ckpt", resumable=("*",))
    return (*inputs, output)


PATHS = {command: _paths(cli) for command, cli in TRAINERS.items()}


def add_arguments(p) -> None:
    add_flags(p, TrainerLaunch)


def check(args, openrlhf_argv: list[str]):
    """The launch (command and engine), its flags accepted by the trainer's own parser and post-parse checks
    (OpenRLHF's, run in this process up to training: ``compat.rehearsal``). Reads no input."""
    from .compat import launch, rehearsal

    cli, how = TRAINERS[args.command], from_args(args, TrainerLaunch)
    planned = launch.plan(cli, openrlhf_argv, engine=how.engine, launcher=launch.launcher_argv(how.launcher))
    rehearsal.check_trainer(cli, planned.command[planned.command.index(cli.module) + 1 :])
    return planned


def run(args, openrlhf_argv: list[str], checked=None) -> int:
    from .compat import launch
    from .compat.flags import flag_value
    from .model_folders import check_model_folder

    cli, how = TRAINERS[args.command], from_args(args, TrainerLaunch)
    model = flag_value(openrlhf_argv, cli["model"])
    if model:  # at once, not after the trainer's imports
        check_model_folder(model, cli["model"])
    if how.dry_run:
        print(" ".join((checked or check(args, openrlhf_argv)).command))
        return 0
    launch.run(cli, openrlhf_argv, engine=how.engine, log_path=how.log, launcher=launch.launcher_argv(how.launcher))
    return 0
