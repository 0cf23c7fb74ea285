"""`openrlhf-distill sft` and `train-rm`: OpenRLHF's train_sft and our train_rm (OpenRLHF's, with the distilled
trainer), launched through the adapter with deepspeed on GPUs or in one patched process on the CPU. Every flag
these commands do not own goes to OpenRLHF unchanged."""

from __future__ import annotations

from .compat.flags import TRAIN_DISTILL_RM, TRAIN_SFT

# subcommand -> the OpenRLHF CLI it runs
TRAINERS = {"sft": TRAIN_SFT, "train-rm": TRAIN_DISTILL_RM}


def add_arguments(p) -> None:
    p.add_argument("--engine", choices=["auto", "gpu", "cpu"], default="auto", help="auto: gpu when CUDA is found")
    p.add_argument("--log", default=None, help="also write the trainer's output to this file")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument(
        "--launcher",
        action="append",
        default=[],
        metavar="FLAG[=VALUE]",
        help="GPU engine: a flag for the deepspeed launcher, before --module (repeatable), e.g. "
        "--launcher hostfile=/job/hostfile --launcher num_nodes=2 for a multi-node run",
    )


def check(args, openrlhf_argv: list[str]):
    """The launch (command and engine), its flags accepted by the trainer's own parser and post-parse checks
    (OpenRLHF's, run in this process up to training: ``compat.rehearsal``). Reads no input."""
    from .compat import launch, rehearsal

    cli = TRAINERS[args.command]
    planned = launch.plan(cli, openrlhf_argv, engine=args.engine, launcher=launch.launcher_argv(args.launcher))
    rehearsal.check_trainer(cli, planned.command[planned.command.index(cli.module) + 1 :])
    return planned


def run(args, openrlhf_argv: list[str]) -> int:
    from .compat import launch
    from .compat.flags import flag_value
    from .model_folders import check_model_folder

    cli = TRAINERS[args.command]
    model = flag_value(openrlhf_argv, cli["model"])
    if model:  # at once, not after the trainer's imports
        check_model_folder(model, cli["model"])
    if args.dry_run:
        print(" ".join(check(args, openrlhf_argv).command))
        return 0
    # not rehearsed here: the trainer's own process parses the same flags within seconds of starting
    launch.run(cli, openrlhf_argv, engine=args.engine, log_path=args.log, launcher=launch.launcher_argv(args.launcher))
    return 0
