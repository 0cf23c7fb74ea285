"""`openrlhf-distill sft` and `train-rm`: OpenRLHF's train_sft and our train_rm (OpenRLHF's, with the distilled
trainer), launched through the adapter with deepspeed on GPUs or in one patched process on the CPU. Every flag
these commands do not own goes to OpenRLHF unchanged."""

from __future__ import annotations

from dataclasses import dataclass

from .compat.flags import TRAIN_DISTILL_RM, TRAIN_SFT, parsed_value
from .contract import Input, Output
from .model_folders import looks_local
from .records import RM_POINT, RecordError, Schema, read_records, text_or_messages
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
    inputs = [Input(cli["model"][2:], "model", openrlhf=True)]
    inputs += [Input(cli[name][2:], "either", openrlhf=True) for name in ("dataset", "eval_dataset")]
    if "points" in cli.flags:
        inputs.append(Input(cli["points"][2:], "file", openrlhf=True))
    output = Output(cli["output_dir"][2:], "folder", openrlhf=True, openrlhf_default="./ckpt", resumable=("*",))
    return (*inputs, output)


PATHS = {command: _paths(cli) for command, cli in TRAINERS.items()}


def add_arguments(p) -> None:
    add_flags(p, TrainerLaunch)


@dataclass(frozen=True)
class CheckedTrainer:
    """What `check` found: the launch (its command and engine) and OpenRLHF's parsed arguments."""

    launch: object  # compat.launch.Launch
    parsed: object

    @property
    def engine(self) -> str:
        return self.launch.engine


def check(args, openrlhf_argv: list[str]) -> CheckedTrainer:
    """The launch (command and engine), its flags accepted by the trainer's own parser and post-parse checks
    (OpenRLHF's, run in this process up to training: ``compat.rehearsal``). Reads no input."""
    from .compat import launch, rehearsal

    cli, how = TRAINERS[args.command], from_args(args, TrainerLaunch)
    planned = launch.plan(cli, openrlhf_argv, engine=how.engine, launcher=launch.launcher_argv(how.launcher))
    return CheckedTrainer(
        planned, rehearsal.check_trainer(cli, planned.command[planned.command.index(cli.module) + 1 :])
    )


DATA_FILES = (".jsonl", ".json")  # a name ending so is a file of ours, never a Hub data set


def _keys(parsed, *names: str) -> dict:
    """The record fields the trainer reads (OpenRLHF's --data.*_key settings), each a prompt or response."""
    return {key: text_or_messages for name in names if (key := parsed_value(parsed, f"data.{name}"))}


def check_datasets(cli, parsed) -> None:
    """Every local data file the trainer will read, read whole now (seconds) rather than by the trainer (after
    its start-up, inside a traceback): present, not empty, each record holding the fields it reads. A Hub data
    set or a mixture ("a,b") is left to OpenRLHF."""
    rm = "chosen_key" in cli.flags
    files = {
        "data.dataset": Schema(
            "training",
            _keys(parsed, *(("prompt_key", "chosen_key", "rejected_key") if rm else ("input_key", "output_key"))),
        )
    }
    files["eval.dataset"] = files["data.dataset"]
    if "points" in cli.flags:
        files["distill.rm.points"] = RM_POINT
    for flag, schema in files.items():
        path = parsed_value(parsed, flag)
        if not path or "," in path or not (looks_local(path) or path.endswith(DATA_FILES)):
            continue
        if not any(True for _ in read_records(path, schema)):
            raise RecordError(path, None, None, f"--{flag}: the file holds no records")


def run(args, openrlhf_argv: list[str], checked: CheckedTrainer | None = None) -> int:
    from .compat import launch

    cli, how = TRAINERS[args.command], from_args(args, TrainerLaunch)
    checked = checked or check(args, openrlhf_argv)
    if how.dry_run:
        print(" ".join(checked.launch.command))
        return 0
    check_datasets(cli, checked.parsed)  # the data exist now: read before the trainer starts
    launch.run(cli, openrlhf_argv, engine=how.engine, log_path=how.log, launcher=launch.launcher_argv(how.launcher))
    return 0
