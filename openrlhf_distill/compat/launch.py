"""Runs OpenRLHF's own trainer CLIs (train_sft, train_rm): on GPUs with the deepspeed launcher, unchanged;
on a machine without CUDA as one CPU process, with the runtime patches and the settings the CPU needs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass

from . import patches
from .flags import OpenRLHFCli, flag_value, has_flag
from .version import check_openrlhf

CPU_ATTENTION = ("eager", "sdpa")


class OpenRLHFRunError(RuntimeError):
    """An OpenRLHF trainer exited with an error; the message holds the command and the end of its log."""


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


def plan(cli: OpenRLHFCli, argv: list[str], *, engine: str = "auto") -> Launch:
    """The command and environment that run ``cli`` with ``argv`` on ``engine`` ("auto", "gpu" or "cpu")."""
    check_openrlhf()
    engine = detect_engine() if engine == "auto" else engine
    env = patches.subprocess_env()  # fixes apply on both engines; CPU patches stand aside where CUDA exists
    if engine == "gpu":
        launcher = shutil.which("deepspeed") or "deepspeed"
        return Launch("gpu", [launcher, "--module", cli.module, *argv], env)
    if engine != "cpu":
        raise ValueError(f"engine must be auto, gpu or cpu, not {engine!r}")
    # One training process: the distributed env that torchrun or deepspeed would otherwise provide.
    env.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return Launch("cpu", [sys.executable, "-m", cli.module, *_cpu_argv(cli, argv)], env)


def run(cli: OpenRLHFCli, argv: list[str], *, engine: str = "auto", log_path: str | None = None) -> Launch:
    """Runs the trainer to completion, streaming its output (and copying it to ``log_path``)."""
    launch = plan(cli, argv, engine=engine)
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    tail: list[str] = []
    log = open(log_path, "w") if log_path else None
    try:
        proc = subprocess.Popen(
            launch.command, env=launch.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        for line in proc.stdout:
            sys.stdout.write(line)
            if log:
                log.write(line)
            tail = (tail + [line])[-40:]
        code = proc.wait()
    finally:
        if log:
            log.close()
    if code != 0:
        where = f" (full log: {log_path})" if log_path else ""
        raise OpenRLHFRunError(
            f"{cli.module} exited with code {code}{where}\ncommand: {' '.join(launch.command)}\n"
            f"last lines:\n{''.join(tail)}"
        )
    return launch
