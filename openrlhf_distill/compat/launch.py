"""Runs OpenRLHF's own entry points: the trainer CLIs (train_sft, train_rm) on GPUs with the deepspeed launcher,
unchanged, and on a machine without CUDA as one CPU process with the runtime patches and the settings the CPU
needs; and the PPO loop (train_ppo_ray) through our Ray driver, on a cluster or on a local CPU Ray."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from ..processes import ends_with_this_process
from . import patches
from .flags import TRAIN_PPO_RAY, OpenRLHFCli, flag_value, has_flag
from .version import check_openrlhf

CPU_ATTENTION = ("eager", "sdpa")


class OpenRLHFRunError(RuntimeError):
    """An OpenRLHF trainer exited with an error; the message holds the command and the end of its log."""


class TrainerInputError(ValueError):
    """The trainer process refused its input before training (a bad data file, too few rows): the message is
    the trainer's one line, shown as it is."""


# A trainer process that finds its input bad prints one line starting with this and exits 2 (report_input_error);
# run() turns that line into a TrainerInputError instead of a crash report.
_INPUT_ERROR_MARK = "[openrlhf-distill input error] "


def report_input_error(error: Exception) -> None:
    """In a trainer process: says what is wrong with its input on one line, for run() to pass on, and exits 2."""
    print(_INPUT_ERROR_MARK + " ".join(str(error).split()), file=sys.stderr, flush=True)
    sys.exit(2)


@dataclass
class Launch:
    engine: str  # "gpu" or "cpu"
    command: list
    env: dict


def detect_engine() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A JIT build of one of DeepSpeed's ops takes 1-2 minutes on 2 cores; a build lock older than this is left over
# from a killed process.
STALE_BUILD_LOCK_S = 20 * 60


def cpu_extensions_env(env: dict) -> None:
    """Gives this Python environment its own torch-extension build folder (unless TORCH_EXTENSIONS_DIR is set).

    The CPU patches spare DeepSpeed's compiled ops (its FusedAdam and shared-memory all-reduce), but a process with
    those patches skipped compiles them on first use into one folder per user, keyed by Python and torch only. Two
    environments (a checkout and a fresh clone) then rebuild over each other's build, and a build killed part way
    leaves its lock file behind, on which every later trainer waits for ever. One folder per environment, and a
    lock of a build that cannot still be running is removed.
    """
    if "TORCH_EXTENSIONS_DIR" in env:
        return
    key = hashlib.sha256(os.path.realpath(sys.prefix).encode()).hexdigest()[:12]
    root = os.path.join(os.path.expanduser("~"), ".cache", "openrlhf_distill", "torch_extensions", key)
    env["TORCH_EXTENSIONS_DIR"] = root
    if not os.path.isdir(root):
        return
    for lock in (os.path.join(root, d, "lock") for d in sorted(os.listdir(root))):
        if os.path.exists(lock) and time.time() - os.path.getmtime(lock) > STALE_BUILD_LOCK_S:
            print(f"[openrlhf-distill] removing a stale torch-extension build lock: {lock}", file=sys.stderr)
            os.remove(lock)


def _cpu_argv(cli: OpenRLHFCli, argv: list[str]) -> list[str]:
    argv = list(argv)
    attn = flag_value(argv, cli["attn_implementation"])
    if attn is None:
        argv += [cli["attn_implementation"], "eager"]  # OpenRLHF's default is flash_attention_2
    elif attn not in CPU_ATTENTION:
        raise ValueError(
            f"{cli['attn_implementation']} {attn} needs a GPU; on the CPU engine use one of {', '.join(CPU_ATTENTION)}"
        )
    if has_flag(argv, cli["packing_samples"]):
        raise ValueError(f"{cli['packing_samples']} needs flash-attn on a GPU; remove it for the CPU engine")
    if cli.needs_eval_set and not has_flag(argv, cli["eval_dataset"]):
        # Without an eval set train_rm evaluates on the first 1% of the training rows (none under 100 rows, and
        # then it crashes), and that set also gives the mean/std stored for reward normalisation. Evaluating on
        # all training rows keeps OpenRLHF's meaning (training rows) and always has rows.
        dataset = flag_value(argv, cli["dataset"])
        if dataset is None:
            raise ValueError(f"{cli.module} needs {cli['dataset']}")
        argv += [cli["eval_dataset"], dataset]
        split = flag_value(argv, cli["dataset_split"])
        if split is not None and not has_flag(argv, cli["eval_split"]):
            argv += [cli["eval_split"], split]
    return argv


def launcher_argv(flags: list[str]) -> list[str]:
    """``--launcher`` values ("hostfile=/job/hosts", "num_nodes=2", "no_ssh_check") as deepspeed launcher flags:
    ``--hostfile /job/hosts --num_nodes 2 --no_ssh_check``. deepspeed itself judges them."""
    argv = []
    for flag in flags:
        name, has_value, value = flag.partition("=")
        if not name or name.startswith("-"):
            raise ValueError(f"--launcher {flag!r}: give the deepspeed launcher flag without dashes, e.g. num_nodes=2")
        argv += [f"--{name}", value] if has_value else [f"--{name}"]
    return argv


def plan(cli: OpenRLHFCli, argv: list[str], *, engine: str = "auto", launcher: list[str] = ()) -> Launch:
    """The command and environment that run ``cli`` with ``argv`` on ``engine`` ("auto", "gpu" or "cpu");
    ``launcher``: flags for the deepspeed launcher (GPU engine: hostfile, nodes, ... for a multi-node run)."""
    check_openrlhf()
    engine = detect_engine() if engine == "auto" else engine
    if engine not in ("gpu", "cpu"):
        raise ValueError(f"engine must be auto, gpu or cpu, not {engine!r}")
    env = patches.subprocess_env(engine=engine)  # fixes apply on both engines; CPU patches on the CPU engine only
    if engine == "gpu":
        deepspeed = shutil.which("deepspeed") or "deepspeed"
        return Launch("gpu", [deepspeed, *launcher, "--module", cli.module, *argv], env)
    if launcher:
        raise ValueError(
            f"--launcher {' '.join(launcher)}: the CPU engine runs one process, without deepspeed's launcher"
        )
    # One training process: the distributed env that torchrun or deepspeed would otherwise provide.
    env.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cpu_extensions_env(env)
    return Launch("cpu", [sys.executable, "-m", cli.module, *_cpu_argv(cli, argv)], env)


def run(
    cli: OpenRLHFCli, argv: list[str], *, engine: str = "auto", log_path: str | None = None, launcher: list[str] = ()
) -> Launch:
    """Runs the trainer to completion, streaming its output (and copying it to ``log_path``)."""
    launch = plan(cli, argv, engine=engine, launcher=launcher)
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    tail: list[str] = []
    log = open(log_path, "w") if log_path else None
    try:
        proc = subprocess.Popen(
            launch.command,
            env=launch.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=ends_with_this_process(),
        )
        input_error = None
        for line in proc.stdout:
            if log:
                log.write(line)
            if line.startswith(_INPUT_ERROR_MARK):
                input_error = line[len(_INPUT_ERROR_MARK) :].strip()
                continue  # said once, by the caller
            sys.stdout.write(line)
            tail = (tail + [line])[-40:]
        code = proc.wait()
    finally:
        if log:
            log.close()
    if code != 0 and input_error:
        raise TrainerInputError(input_error)
    if code != 0:
        where = f" (full log: {log_path})" if log_path else ""
        raise OpenRLHFRunError(
            f"{cli.module} exited with code {code}{where}\ncommand: {' '.join(launch.command)}\n"
            f"last lines:\n{''.join(tail)}"
        )
    return launch


# --- PPO (train_ppo_ray) -------------------------------------------------------------------------------------

# Known dead ends of OpenRLHF's PPO loop on the CPU engine, refused up front with the reason.
_PPO_CPU_REFUSED = {
    "colocate_all": "shares GPUs through CUDA IPC handles",
    "vllm_sync_with_ray": "Ray's collective group cannot carry the weight sync over gloo",
    "packing_samples": "needs flash-attn on a GPU",
}
RAY_GROUPS = ("actor", "ref", "critic", "reward")


def _int_flag(argv: list[str], flag: str, default: int) -> int:
    value = flag_value(argv, flag)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise ValueError(f"{flag} expects an integer, got {value!r}") from None


def ppo_cpu_argv(argv: list[str]) -> tuple[list[str], int]:
    """train_ppo_ray flags for the CPU engine, and the number of logical GPUs the local Ray must declare.

    Adds what a CPU run needs where the user left it out: one "GPU" per Ray group (OpenRLHF's default is 8),
    one vLLM engine in eager mode, eager attention. Refuses the settings known not to work without CUDA.
    """
    cli = TRAIN_PPO_RAY
    argv = list(argv)
    for name, reason in _PPO_CPU_REFUSED.items():
        if has_flag(argv, cli[name]):
            raise ValueError(f"{cli[name]} is not available on the CPU engine: it {reason}")
    attn = flag_value(argv, cli["attn_implementation"])
    if attn is None:
        argv += [cli["attn_implementation"], "eager"]
    elif attn not in CPU_ATTENTION:
        raise ValueError(f"{cli['attn_implementation']} {attn} needs a GPU; use one of {', '.join(CPU_ATTENTION)}")
    for group in RAY_GROUPS:
        if not has_flag(argv, cli[f"{group}_num_gpus_per_node"]):
            argv += [cli[f"{group}_num_gpus_per_node"], "1"]
    if flag_value(argv, cli["vllm_engines"]) is None:
        argv += [cli["vllm_engines"], "1"]
    if _int_flag(argv, cli["vllm_engines"], 1) < 1:
        raise ValueError(f"{cli['vllm_engines']} must be at least 1: OpenRLHF's PPO loop generates with vLLM")
    if _int_flag(argv, cli["vllm_tensor_parallel"], 1) != 1:
        raise ValueError(f"{cli['vllm_tensor_parallel']} must be 1 on the CPU engine")
    if not has_flag(argv, cli["vllm_enforce_eager"]):
        argv.append(cli["vllm_enforce_eager"])  # no CUDA graphs to capture
    # Logical GPUs: every group placed at once (ref and critic may go unused; logical GPUs cost nothing).
    gpus = _int_flag(argv, cli["vllm_engines"], 1)
    for group in RAY_GROUPS:
        gpus += _int_flag(argv, cli[f"{group}_num_nodes"], 1) * _int_flag(argv, cli[f"{group}_num_gpus_per_node"], 8)
    return argv, gpus


def plan_ppo(
    argv: list[str],
    *,
    engine: str = "auto",
    ray_address: str | None = None,
    submit: bool = False,
    autoscaling: bool = False,
) -> Launch:
    """The command that runs OpenRLHF's PPO loop with ``argv`` through :mod:`.ray_driver`.

    - cpu: a local Ray with logical GPUs, the CPU patches in every process (vLLM-CPU verified version only); or,
      with ``ray_address``, a cluster whose nodes declare logical GPUs (``ray start --num-gpus N``), the patch
      environment carried by the runtime environment: the cluster path rehearsed on CPUs, nodes on one machine;
    - gpu: a local Ray, or the cluster at ``ray_address`` / ``RAY_ADDRESS`` (this package shipped to workers);
    - with ``submit``: ``ray job submit`` to ``ray_address``, the runtime environment carrying the same.

    The driver checks the run's GPU plan against the Ray it joins, unless ``autoscaling`` (nodes added on demand).
    """
    from .version import check_vllm_for_cpu_rl

    check_openrlhf()
    engine = detect_engine() if engine == "auto" else engine
    if engine not in ("gpu", "cpu"):
        raise ValueError(f"engine must be auto, gpu or cpu, not {engine!r}")
    if submit and not ray_address:
        raise ValueError("--ray.submit needs --ray.address (the cluster's dashboard address, http://HEAD:8265)")
    env = patches.subprocess_env(engine=engine)
    if autoscaling:
        from .ray_driver import ENV_AUTOSCALING

        env[ENV_AUTOSCALING] = "1"
    if engine == "cpu":
        check_vllm_for_cpu_rl()
        argv, gpus = ppo_cpu_argv(argv)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; unset, vLLM-CPU asks for most of the RAM
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        cpu_extensions_env(env)
        env.pop("RAY_ADDRESS", None)  # on the CPU engine only --ray.address joins a cluster
        if not ray_address:
            from .ray_driver import ENV_LOGICAL_GPUS

            env[ENV_LOGICAL_GPUS] = str(gpus)
            return Launch("cpu", _driver_command(argv), env)
    return _cluster_launch(engine, argv, env, ray_address, submit)


def _driver_command(argv: list[str], python: str = sys.executable) -> list[str]:
    from .ray_driver import __name__ as driver

    return [python, "-m", driver, *argv]


def _cluster_launch(engine: str, argv: list[str], env: dict, ray_address: str | None, submit: bool) -> Launch:
    """The driver joining the cluster at ``ray_address`` (or ``RAY_ADDRESS``, else a local Ray), or, with
    ``submit``, the entrypoint of a ``ray job submit`` whose runtime environment ships this package."""
    from . import ray_driver

    if submit:
        runtime_env = ray_driver.cluster_runtime_env(env, ship_package=True)
        # The Ray CLI of this Python (its `ray` script may not be on PATH); the job's own `python` is the
        # cluster's.
        submit_job = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", ray_address]
        submit_job += ["--runtime-env-json", json.dumps(runtime_env), "--"]
        return Launch(engine, [*submit_job, *_driver_command(argv, python="python")], env)
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    if env.get("RAY_ADDRESS"):
        env[ray_driver.ENV_SHIP_PACKAGE] = "1"  # workers on other nodes may not have this package
    return Launch(engine, _driver_command(argv), env)
