"""The driver of OpenRLHF's PPO loop: ``python -m openrlhf_distill.compat.ray_driver [train_ppo_ray flags]``.

It starts or joins Ray the way the run needs, then runs ``openrlhf.cli.train_ppo_ray`` as ``__main__`` with the
flags unchanged (train_ppo_ray skips its own ``ray.init`` when Ray is up):

- CPU engine (``OPENRLHF_DISTILL_RAY_GPUS=N`` set by the launcher): a local Ray with N *logical* GPUs. OpenRLHF
  places every actor and vLLM engine in ``{"GPU": 1}`` bundles; on a Ray without GPUs those wait forever, a hang
  rather than an error. Workers get the patch environment (PYTHONPATH with ``compat/boot``), which also reaches
  the engine processes vLLM spawns inside its Ray actor.
- GPU engine: a local Ray, or the cluster at ``RAY_ADDRESS``. Ray workers install the patches (only the ``fix``
  group acts on GPUs: the RM mean/std refill) through a worker setup hook; on a cluster this package is shipped
  to the workers as a ``py_modules`` entry (``OPENRLHF_DISTILL_SHIP_PACKAGE=1``).
- CPU engine joining a cluster (``RAY_ADDRESS``; its nodes declare logical GPUs): the same, with the patch
  environment of the local case in the runtime environment (:func:`cluster_runtime_env`).
- Under ``ray job submit`` the job's runtime environment (built by the launcher) already carries all of that.

:func:`validate` runs train_ppo_ray's own argument parser, post-parse checks and layout asserts in-process
(:mod:`.rehearsal`), starting nothing, so a command is known to be accepted before a cluster is asked for resources.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from collections.abc import Mapping

from . import boot_install
from .flags import TRAIN_PPO_RAY, flag_value
from .patches import ENV_ENGINE
from .rehearsal import ArgumentsRejected, rehearse_ppo

ENV_LOGICAL_GPUS = "OPENRLHF_DISTILL_RAY_GPUS"
ENV_SHIP_PACKAGE = "OPENRLHF_DISTILL_SHIP_PACKAGE"
# Set ("1") for a cluster that adds nodes on demand: the GPUs its nodes have now say nothing of what it can hold.
ENV_AUTOSCALING = "OPENRLHF_DISTILL_CLUSTER_AUTOSCALING"
# A JSON file to write, after training, with the log-probabilities the rollout engine gives a fixed probe text:
# compared with the saved actor they show whether the engine received the trained weights (see sync_check).
ENV_ENGINE_PROBE = "OPENRLHF_DISTILL_ENGINE_PROBE"
PROBE_TEXT = "The answer is 7. The answer is 12. Twelve plus seven is nineteen, so the answer is 19."
SETUP_HOOK = "openrlhf_distill.compat.boot_install"
# Passed to Ray workers on the CPU engine: the patches, offline hubs, vLLM-CPU's KV cache size, thread settings.
FORWARDED_ENV = (
    "PYTHONPATH",
    "OPENRLHF_DISTILL_PATCHES",
    "OPENRLHF_DISTILL_PATCHES_SKIP",
    "OPENRLHF_DISTILL_PATCHES_VERBOSE",
    "VLLM_CPU_KVCACHE_SPACE",
    "VLLM_CPU_OMP_THREADS_BIND",
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "WANDB_MODE",
    "HOME",
    "DS_BUILD_OPS",
    "TORCH_EXTENSIONS_DIR",
    "TOKENIZERS_PARALLELISM",
    ENV_ENGINE,
)
# train_ppo_ray's own defaults for the env of its workers, kept when we start Ray in its place.
OPENRLHF_WORKER_ENV = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}


# OpenRLHF's train_ppo_ray parser, its post-parse checks or its layout asserts refused the flags.
PPOArgumentsRejected = ArgumentsRejected


def cluster_runtime_env(env: Mapping[str, str], ship_package: bool) -> dict:
    """Runtime environment for the Ray workers of a run that joins a cluster, from the launch environment
    ``env``: the patch hook, the engine, and this package when workers lack it.

    GPU engine: OpenRLHF's worker env defaults and the engine (workers that see no CUDA, given
    ``CUDA_VISIBLE_DEVICES=""`` by Ray, get no CPU patch). CPU engine (a cluster whose nodes declare logical
    GPUs, ``ray start --num-gpus N``): also everything :data:`FORWARDED_ENV` carries, the PYTHONPATH with the
    patches' start-up folder included, so the nodes must see this machine's files (nodes on one machine).
    """
    engine = env.get(ENV_ENGINE, "gpu")
    env_vars = {k: env.get(k, v) for k, v in OPENRLHF_WORKER_ENV.items()}
    if engine == "cpu":
        env_vars.update({k: env[k] for k in FORWARDED_ENV if k in env})
    if ENV_AUTOSCALING in env:  # read by the job's driver (check_cluster_gpus)
        env_vars[ENV_AUTOSCALING] = env[ENV_AUTOSCALING]
    env_vars[ENV_ENGINE] = engine
    runtime_env = {"env_vars": env_vars, "worker_process_setup_hook": SETUP_HOOK}
    if ship_package:
        import openrlhf_distill

        runtime_env["py_modules"] = [os.path.dirname(os.path.abspath(openrlhf_distill.__file__))]
    return runtime_env


def init_ray() -> None:
    import ray

    if ray.is_initialized():
        return
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    if RAY_JOB_CONFIG_JSON_ENV_VAR in os.environ:  # under `ray job submit`: the job's runtime env applies
        ray.init()
        return
    logical_gpus = os.environ.get(ENV_LOGICAL_GPUS)
    if logical_gpus:
        gpus = int(logical_gpus)
        env_vars = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env_vars.setdefault("RAY_ENABLE_ZERO_COPY_TORCH_TENSORS", "1")
        # Logical CPUs too: every bundle asks for one CPU beside its GPU; actual threads are set per worker.
        ray.init(num_cpus=gpus + 2, num_gpus=gpus, include_dashboard=False, runtime_env={"env_vars": env_vars})
        return
    ray.init(runtime_env=cluster_runtime_env(os.environ, ship_package=os.environ.get(ENV_SHIP_PACKAGE) == "1"))


@contextlib.contextmanager
def _argv(argv: list[str]):
    saved = sys.argv
    sys.argv = [TRAIN_PPO_RAY.module, *argv]
    try:
        yield
    finally:
        sys.argv = saved


def validate(argv: list[str]):
    """train_ppo_ray's parsed and checked arguments for ``argv``, or :class:`PPOArgumentsRejected` saying why: its
    parser, its post-parse checks and the layout asserts of its ``train`` (:func:`.rehearsal.rehearse_ppo`)."""
    return rehearse_ppo(argv)[0]


def _keep_engines(engines: list) -> None:
    """Wraps OpenRLHF's create_vllm_engines (before train_ppo_ray binds it) to keep the engines it makes."""
    import openrlhf.trainer.ray as ray_trainer

    create = ray_trainer.create_vllm_engines

    def create_and_keep(*args, **kwargs):
        made = create(*args, **kwargs)
        engines.extend(made or [])
        return made

    ray_trainer.create_vllm_engines = create_and_keep


def probe_engine(engine, model_dir: str) -> dict:
    """The rollout engine's log-probability of each token of :data:`PROBE_TEXT` (after the first)."""
    import ray
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    token_ids = AutoTokenizer.from_pretrained(model_dir)(PROBE_TEXT, add_special_tokens=False)["input_ids"]
    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    output = ray.get(engine.generate.remote(token_ids, params))
    logprobs = [entry[token].logprob for token, entry in zip(token_ids[1:], output.prompt_logprobs[1:], strict=True)]
    return {"text": PROBE_TEXT, "token_ids": token_ids, "engine_logprobs": logprobs}


def check_cluster_gpus(argv: list[str]) -> None:
    """Refuses, before OpenRLHF asks Ray for its placement groups (on which it would wait for ever), a run whose
    GPU plan the Ray this process joined cannot hold. Not run on the CPU engine's own Ray, which declares the
    logical GPUs the run needs, nor on a cluster that adds nodes on demand (:data:`ENV_AUTOSCALING`)."""
    import ray

    from . import gpu_plan

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    gpus_by_node = [node.get("Resources", {}).get("GPU", 0.0) for node in nodes]
    address = os.environ.get("RAY_ADDRESS") or (nodes[0].get("NodeManagerAddress") if nodes else "this machine")
    try:
        gpu_plan.check_fits_ray(gpu_plan.plan(validate(argv)), gpus_by_node, address)
    except ValueError as error:
        raise ValueError(
            f"{error}. (A cluster that adds nodes on demand: pass --distill.cluster.autoscaling to skip this check.)"
        ) from None


_DECLARED_GPUS = """
import json, sys
import ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([n.get("Resources", {}).get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")]))
"""


def declared_gpus(address: str, timeout_s: float = 60) -> list[float] | None:
    """Each alive node's GPUs as the Ray cluster at ``address`` declares them (a dashboard URL, as ``ray job
    submit`` takes, or the cluster's own address), or None when it does not answer from here in ``timeout_s``.
    Asked from a short-lived process: joining a cluster as a driver is not undone cleanly in this one."""
    import json
    import socket
    import subprocess
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else "//" + address)
    try:  # a refused or silent port answers in seconds here, where Ray's own connect retries for a minute
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=5).close()
    except OSError:
        return None
    if address.startswith(("http://", "https://")):
        try:
            from ray.util.state import list_nodes

            nodes = list_nodes(address=address, timeout=int(timeout_s), detail=True, raise_on_missing_output=False)
        except Exception:  # not reachable, or no dashboard: the driver checks once it has joined
            return None
        return [float(n.resources_total.get("GPU", 0.0)) for n in nodes if n.state == "ALIVE"]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _DECLARED_GPUS, address], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return None
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (IndexError, ValueError):
        return None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    boot_install()
    import ray

    probe_path = os.environ.get(ENV_ENGINE_PROBE)
    engines: list = []
    if probe_path:
        _keep_engines(engines)
    init_ray()
    try:
        if not os.environ.get(ENV_LOGICAL_GPUS) and os.environ.get(ENV_AUTOSCALING) != "1":
            check_cluster_gpus(argv)
        with _argv(argv):
            runpy.run_module(TRAIN_PPO_RAY.module, run_name="__main__", alter_sys=True)
        if probe_path and engines:
            from ..records import write_json_atomic

            model_dir = flag_value(argv, TRAIN_PPO_RAY["actor_model"])
            write_json_atomic(probe_path, probe_engine(engines[0], model_dir))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
