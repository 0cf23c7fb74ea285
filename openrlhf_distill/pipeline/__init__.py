"""`openrlhf-distill run`: every stage of the method in order, resumably, ending in the results table.

:mod:`.config` reads the YAML config and overrides, :mod:`.stages` turns it into ``openrlhf-distill``
commands, :mod:`.preflight` checks every one of them before the first runs, :mod:`.runner` runs those not
already done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..contract import Input, Output
from ..records import write_json_atomic
from ..settings import add_flags, from_args, setting
from .config import ConfigError, check_inputs, load_config, with_absolute_paths
from .preflight import PreflightError, check_live_cluster, check_stages, describe_gpus, estimate_size
from .runner import StageFailed, describe, run_folder_lock, run_stages, select
from .stages import plan


@dataclass(frozen=True)
class RunSettings:
    """What `run` does with its config (the config's own settings: `config.DEFAULTS`)."""

    config: str | None = setting(None, "recipes/configs/NAME.yaml (settings over the defaults)")
    from_stage: str | None = setting(
        None, "rerun this stage (name, or key like rm@seed0) and all after", aliases=("--from-stage",)
    )
    until_stage: str | None = setting(None, "stop after this stage", aliases=("--until-stage",))
    dry_run: bool = setting(False, "print the plan: each stage, its state and its command", aliases=("--dry-run",))


def _absolute_config(args, overrides: list[str]) -> dict:
    return with_absolute_paths(load_config(args.config, overrides))[0]


def _run_dir(args, overrides: list[str]) -> str:
    return _absolute_config(args, overrides)["run_dir"]


def _run_entries(args, overrides: list[str]) -> set[str]:
    """The top-level names a run folder of this config holds: each stage's output, and the run's own files."""
    config = _absolute_config(args, overrides)
    names = {"run.json", "stages", "results.json", "report.md", "plots"}
    for stage in plan(config):
        for path in (stage.output, *stage.work):
            relative = os.path.relpath(path, config["run_dir"])
            if not relative.startswith(".."):
                names.add(relative.split(os.sep)[0])
    return names


PATHS = (
    Input("config", "file", flagless=True),
    Output("run_dir", "folder", derived=_run_dir, entries=_run_entries),
)


def add_arguments(p) -> None:
    add_flags(p, RunSettings)


@dataclass
class CheckedRun:
    """A run's plan once every stage's command was accepted (`check`): what `run` then runs."""

    config: dict  # as the user wrote it (fingerprints and run.json keep its spelling)
    absolute_config: dict  # commands carry absolute paths (Ray workers on other nodes share no working folder)
    written: dict
    stages: list
    forced: set
    checked: dict
    cluster_lines: list[str]


def check(args, overrides: list[str]) -> CheckedRun:
    """The config read and checked, its inputs, and every stage's command judged before the first runs."""
    wanted = from_args(args, RunSettings)
    config = load_config(wanted.config, overrides)
    check_inputs(config)
    absolute_config, written = with_absolute_paths(config)
    stages, forced = select(plan(absolute_config), wanted.from_stage, wanted.until_stage)
    from ..cli import check_command

    checked = check_stages(stages, check_command)
    return CheckedRun(config, absolute_config, written, stages, forced, checked, check_live_cluster(stages, checked))


def run(args, overrides: list[str], checked: CheckedRun | None = None) -> int:
    run_plan = checked or check(args, overrides)
    config, absolute_config, written = run_plan.config, run_plan.absolute_config, run_plan.written
    stages, forced = run_plan.stages, run_plan.forced
    run_dir = absolute_config["run_dir"]
    if from_args(args, RunSettings).dry_run:
        gpus = describe_gpus(stages, run_plan.checked, config)
        print(f"# run {run_dir}: {len(stages)} stages (states: done = skipped, new / stale / resume / rerun = run)")
        print("\n".join(describe(stages, run_dir, forced, written, gpus)))
        print("# every stage's command accepted (OpenRLHF's parsers and checks for sft, rm and ppo)")
        print("\n".join([*run_plan.cluster_lines, estimate_size(stages, absolute_config)]))
        return 0
    os.makedirs(run_dir, exist_ok=True)
    with run_folder_lock(run_dir):
        write_json_atomic(
            os.path.join(run_dir, "run.json"), {"task": config["task"], "seeds": config["seeds"], "config": config}
        )
        seen = run_stages(stages, run_dir, forced=forced, written=written, keep_checkpoints=config["keep_checkpoints"])
    results = os.path.join(run_dir, "results.json")
    if seen.get("report") == "done" and os.path.exists(results):  # the report stage prints it when it runs
        import json

        from ..report.markdown import main_table_lines

        with open(results) as f:
            print("\n".join(main_table_lines(json.load(f))))
    if stages[-1].name == "report":
        print(f"run {run_dir} complete: {os.path.join(run_dir, 'report.md')}")
    return 0


__all__ = ["ConfigError", "PreflightError", "StageFailed", "add_arguments", "check", "load_config", "plan", "run"]
