"""`openrlhf-distill run`: every stage of the method in order, resumably, ending in the results table.

:mod:`.config` reads the YAML config and overrides, :mod:`.stages` turns it into ``openrlhf-distill``
commands, :mod:`.preflight` checks every one of them before the first runs, :mod:`.runner` runs those not
already done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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


def add_arguments(p) -> None:
    add_flags(p, RunSettings)


def run(args, overrides: list[str]) -> int:
    wanted = from_args(args, RunSettings)
    config = load_config(wanted.config, overrides)
    check_inputs(config)
    # Commands carry absolute paths (Ray workers on other nodes do not share this working folder); fingerprints
    # and run.json keep the config's own spelling.
    absolute_config, written = with_absolute_paths(config)
    stages, forced = select(plan(absolute_config), wanted.from_stage, wanted.until_stage)
    run_dir = absolute_config["run_dir"]
    from ..cli import check_command

    checked = check_stages(stages, check_command)  # every stage's command, before the first runs
    cluster_lines = check_live_cluster(stages, checked)
    if wanted.dry_run:
        gpus = describe_gpus(stages, checked, config)
        print(f"# run {run_dir}: {len(stages)} stages (states: done = skipped, new / stale / resume / rerun = run)")
        print("\n".join(describe(stages, run_dir, forced, written, gpus)))
        print("# every stage's command accepted (OpenRLHF's parsers and checks for sft, rm and ppo)")
        print("\n".join([*cluster_lines, estimate_size(stages, absolute_config)]))
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


__all__ = ["ConfigError", "PreflightError", "StageFailed", "add_arguments", "load_config", "plan", "run"]
