"""Every stage's command checked before the first stage runs (and by the dry run), so that no setting is first
judged after days of teacher sampling, SFT and RM training; and what each stage uses of the cluster.

Each command is parsed as ``openrlhf-distill`` parses it and checked by its own module (:func:`..cli.check_command`):
the OpenRLHF-bound stages through OpenRLHF's own parsers, post-parse checks and, for PPO, the layout asserts and
the GPU plan against ``cluster:``. The inputs earlier stages will write are not read here.
"""

from __future__ import annotations

from .stages import Stage

# Commands that sample with a backend (generate, judge, eval: --backend and its flags; select: --backend only).
_BACKEND_COMMANDS = ("generate", "judge", "eval")
_TRAINERS = ("sft", "train-rm")


class PreflightError(ValueError):
    """A stage's command is refused; the message names the stage and what is wrong."""


def check_stages(stages: list[Stage], check_command) -> dict[str, object]:
    """Checks every stage's command with ``check_command`` (the command line's own, :func:`..cli.check_command`,
    given by the caller: the command table sits above the stages it runs); returns {stage key: what it gave
    back}. Raises :class:`PreflightError` naming the first stage refused."""
    checked = {}
    for stage in stages:
        try:
            checked[stage.key] = check_command(stage.argv)
        except ValueError as error:
            raise PreflightError(f"stage {stage.key} would fail: {error}") from None
    return checked


def check_live_cluster(stages: list[Stage], checked: dict) -> list[str]:
    """The PPO stages that will join a Ray cluster answering now (``--ray.address``, ``RAY_ADDRESS`` or the one
    ``ray start`` set up here), their GPU plans checked against the GPUs its nodes declare, as their driver checks
    again when it joins; returns a line per cluster asked. A cluster not reachable from here is left to the driver;
    one that adds nodes on demand (``cluster.autoscaling``) is not checked."""
    from ..compat import gpu_plan, ray_driver
    from ..ppo import ray_cluster_address

    by_address: dict[str, list] = {}
    for stage in stages:
        if stage.argv[0] != "ppo":
            continue
        ppo_plan, _, placements = checked[stage.key].result
        if ppo_plan.options.cluster.autoscaling or (
            ppo_plan.launch.engine == "cpu" and not ppo_plan.options.ray_address
        ):
            continue  # nodes come on demand, or the CPU engine's own Ray declares what the run needs
        address = ray_cluster_address(ppo_plan.options)
        if address:
            by_address.setdefault(address, []).append((stage, placements))
    lines = []
    for address, runs in by_address.items():
        gpus = ray_driver.declared_gpus(address)
        if gpus is None:
            lines.append(f"# Ray cluster {address}: not reachable from here; each PPO driver checks it when it joins")
            continue
        for stage, placements in runs:
            try:
                gpu_plan.check_fits_ray(placements, gpus, address)
            except ValueError as error:
                raise PreflightError(f"stage {stage.key} would fail: {error}") from None
        lines.append(f"# Ray cluster {address}: {len(gpus)} node(s), {sum(gpus):g} GPUs; every PPO plan fits")
    return lines


def gpus_used(stage: Stage, checked, cluster: dict) -> int | None:
    """The GPUs a stage's command takes, from its parsed arguments (``checked``: what its check gave back);
    None where it runs on the CPU (building sets, voting, the report)."""
    from ..compat import gpu_plan

    command, args = stage.argv[0], checked.args
    if command == "ppo":
        return gpu_plan.total_gpus(checked.result[2])
    if command in _TRAINERS:
        if checked.result.engine != "gpu":
            return None
        # deepspeed's launcher takes every GPU of each node it is given, unless told a number
        launcher = dict(flag.partition("=")[::2] for flag in args.launcher)
        nodes = int(launcher.get("num_nodes") or 1)
        per_node = int(launcher.get("num_gpus") or cluster.get("gpus_per_node") or 1)
        return nodes * per_node
    if command in _BACKEND_COMMANDS:
        from ..generation.options import gpus_used as backend_gpus

        return backend_gpus(args)
    if command in ("select", "eval-rm"):
        return 1  # one model at a time, on one device
    return None


def describe_gpus(stages: list[Stage], checked: dict, config: dict) -> dict[str, str]:
    """{stage key: "GPUs: U of C"} for the stages that use GPUs (C: the cluster's, when ``cluster:`` says); none
    for a run on the CPU engine."""
    from ..compat.launch import detect_engine

    if (config["engine"] if config["engine"] != "auto" else detect_engine()) != "gpu":
        return {}
    cluster = config["cluster"]
    total = (cluster.get("nodes") or 0) * (cluster.get("gpus_per_node") or 0)
    out = {}
    for stage in stages:
        used = gpus_used(stage, checked[stage.key], cluster)
        if used:
            out[stage.key] = f"GPUs: {used} of {total}" if total else f"GPUs: {used}"
    return out


# Bytes per parameter: a bf16 model; a DeepSpeed checkpoint (bf16 weights, fp32 master weights and Adam's two
# moments); a PPO checkpoint holds the actor's and the critic's.
_MODEL_BYTES, _DEEPSPEED_BYTES = 2, 14


def estimate_size(stages: list[Stage], config: dict) -> str:
    """The run folder's size as models dominate it: one bf16 student per trainer stage (two for a PPO run that
    chooses its checkpoint: the chosen and the last actor), and what keeping DeepSpeed's checkpoints would add."""
    from ..model_folders import parameter_count

    params = parameter_count(config["student"]["model"] or "")
    if params is None:
        return "# run folder size: not estimated (the student's config.json does not give its shape)"
    trainers = [s for s in stages if s.partial]
    models = sum(2 if s.argv[0] == "ppo" and config["ppo"]["select_every"] else 1 for s in trainers)
    per_checkpoint = sum((2 if s.argv[0] == "ppo" else 1) * _DEEPSPEED_BYTES * params for s in trainers)
    gb = 1e9
    checkpoints = (
        f"keep_checkpoints: true keeps DeepSpeed's checkpoints, {per_checkpoint / gb:,.0f} GB more per saved step "
        "of every trainer stage (up to ckpt.max_num each)"
        if config["keep_checkpoints"]
        else f"DeepSpeed's checkpoints deleted as each stage finishes ({per_checkpoint / gb:,.0f} GB per saved step "
        "of every trainer stage while it runs)"
    )
    return (
        f"# run folder size, estimated: {models * _MODEL_BYTES * params / gb:,.1f} GB of models ({models} x "
        f"{_MODEL_BYTES * params / gb:,.1f} GB: a {params / 1e9:.2f}B-parameter student in bf16); {checkpoints}"
    )
