"""Runtime patches that let OpenRLHF run where it was not written to run, without editing installed files.

Each patch is a function registered against a module name and applied right after that module finishes
executing (a post-import hook on ``sys.meta_path``), so it works whatever imports the module and whenever.
Patches come in two groups:

- ``cpu``: CUDA-only calls redirected to the CPU. Applied only in a process of the CPU engine, as the launcher
  declares it in ``OPENRLHF_DISTILL_ENGINE`` for every process a run starts. A process of a GPU run that sees no
  CUDA (Ray gives GPU-less actors, such as PPO's controller or vLLM actors with tensor parallelism,
  ``CUDA_VISIBLE_DEVICES=""``) therefore gets no CPU patch. Only a process no launcher started (a script, a
  test, an in-process command) decides by probing CUDA, once, and records the answer for its own children.
- ``fix``: bugs of the supported OpenRLHF / transformers versions, applied on every machine.

Processes started by a run (Ray workers, the engine processes vLLM spawns) reach the same patches through
``openrlhf_distill/compat/boot/sitecustomize.py``: see :func:`subprocess_env`.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

# "auto" applies fixes everywhere and CPU patches where CUDA is absent; "off" applies nothing.
ENV_MODE = "OPENRLHF_DISTILL_PATCHES"
# Comma-separated patch names to leave out: reproduces the failure a patch exists for.
ENV_SKIP = "OPENRLHF_DISTILL_PATCHES_SKIP"
ENV_VERBOSE = "OPENRLHF_DISTILL_PATCHES_VERBOSE"
# "cpu" or "gpu": the engine of the run this process belongs to, set by the launcher (compat/launch.py).
ENV_ENGINE = "OPENRLHF_DISTILL_ENGINE"
ENGINES = ("cpu", "gpu")

BOOT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boot")


@dataclass(frozen=True)
class Patch:
    name: str
    module: str
    group: str  # "cpu" or "fix"
    apply: Callable
    why: str


PATCHES: list[Patch] = []
applied: list[str] = []  # names of the patches applied in this process, in order


def patch(module: str, *, name: str, group: str, why: str):
    def register(fn):
        PATCHES.append(Patch(name=name, module=module, group=group, apply=fn, why=why))
        return fn

    return register


def _log(msg: str) -> None:
    if os.environ.get(ENV_VERBOSE):
        print(f"[openrlhf-distill patches pid={os.getpid()}] {msg}", file=sys.stderr, flush=True)


def engine() -> str:
    """The engine of this process's run: the launcher's declaration, or (in a process no launcher started) what
    a CUDA probe finds, recorded in the environment so that its children inherit the decision."""
    declared = os.environ.get(ENV_ENGINE)
    if declared in ENGINES:
        return declared
    if declared:
        raise ValueError(f"{ENV_ENGINE}={declared!r}: expected one of {', '.join(ENGINES)}")
    import torch

    os.environ[ENV_ENGINE] = "gpu" if torch.cuda.is_available() else "cpu"
    return os.environ[ENV_ENGINE]


def _wanted(p: Patch) -> bool:
    skip = {s for s in os.environ.get(ENV_SKIP, "").split(",") if s}
    if p.name in skip:
        return False
    return p.group == "fix" or (p.group == "cpu" and engine() == "cpu")


def _run_hooks(module_name: str, module) -> None:
    for p in PATCHES:
        if p.module == module_name and p.name not in applied and _wanted(p):
            p.apply(module)
            applied.append(p.name)
            _log(f"applied {p.name} to {module_name}")


class _PostImportHook(importlib.abc.MetaPathFinder):
    """Finds patched modules through the other finders, then runs their patches after the module executes."""

    def find_spec(self, fullname, path, target=None):
        if not any(p.module == fullname for p in PATCHES):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original_exec = spec.loader.exec_module

        def exec_then_patch(module):
            original_exec(module)
            _run_hooks(fullname, module)

        spec.loader.exec_module = exec_then_patch
        return spec


def install(mode: str | None = None) -> None:
    """Applies the patches in this process: to modules already imported now, to the others when imported."""
    mode = mode or os.environ.get(ENV_MODE, "auto")
    if mode == "off":
        return
    if mode != "auto":
        raise ValueError(f"{ENV_MODE}={mode!r}: expected 'auto' or 'off'")
    from . import cpu_patches, fixes, rl_cpu_patches  # noqa: F401  (registers the patches)

    if not any(isinstance(f, _PostImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _PostImportHook())
        # Which copy of the package acts, where: on a cluster, the one the runtime environment shipped to the node.
        _log(f"openrlhf_distill from {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}")
    for name in {p.module for p in PATCHES}:
        if name in sys.modules:
            _run_hooks(name, sys.modules[name])


def subprocess_env(base: dict | None = None, engine: str | None = None) -> dict:
    """Environment for a child process that must carry the patches, and pass them on to its own children;
    ``engine`` ("cpu" or "gpu") declares the run's engine for them (the CPU patches follow it)."""
    env = dict(os.environ if base is None else base)
    paths = [BOOT_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOT_DIR]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault(ENV_MODE, "auto")
    if engine is not None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        env[ENV_ENGINE] = engine
    return env
