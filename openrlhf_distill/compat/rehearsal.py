"""OpenRLHF's own entry points run up to the point where they would start work, so that a command is known to be
accepted before any expensive stage runs (the dry run, and the start of `run`, check every stage this way).

- :func:`check_trainer` runs ``train_sft`` / ``train_rm`` as ``__main__``: their argument parser and post-parse
  checks, stopped at the first step of ``train`` (getting the DeepSpeed strategy).
- :func:`rehearse_ppo` runs ``train_ppo_ray`` as ``__main__`` and its ``train`` through the placement of every
  group, with Ray's placement groups, vLLM engines and actor groups replaced by records and the trainer's creation
  by a stop. OpenRLHF's layout asserts (colocated groups of equal size, vLLM filling the actor's GPUs under
  ``colocate_all``) then fire as they would on the cluster, and what the run would ask Ray for is recorded as it
  would ask for it. Nothing is started; no data or model file is read.
"""

from __future__ import annotations

import contextlib
import io
import runpy
import sys
import types
from dataclasses import dataclass, field

from .flags import TRAIN_PPO_RAY, OpenRLHFCli

# train_ppo_ray's Ray actor classes -> the group names of its flags (--actor.*, --ref.*, ...)
GROUP_NAMES = {
    "PolicyModelActor": "actor",
    "ReferenceModelActor": "ref",
    "CriticModelActor": "critic",
    "RewardModelActor": "reward",
}


class ArgumentsRejected(ValueError):
    """An OpenRLHF entry point's parser or its checks refused the flags."""


@dataclass
class Requests:
    """What train_ppo_ray's ``train`` asked Ray for: placement groups (their GPU bundles), vLLM engines (count,
    tensor parallel size, the placement group they joined) and actor groups (name, nodes, GPUs per node, the
    placement group they joined). A placement group is named by its index in ``placement_groups``."""

    placement_groups: list[int] = field(default_factory=list)
    vllm: tuple[int, int, int | None] | None = None
    groups: list[tuple[str, int, int, int | None]] = field(default_factory=list)

    def gpus(self) -> int:
        """GPUs the run reserves: each placement group's bundles, and every group or engine outside one."""
        alone = sum(n * per for _, n, per, pg in self.groups if pg is None)
        engines = self.vllm[0] * self.vllm[1] if self.vllm and self.vllm[2] is None else 0
        return sum(self.placement_groups) + alone + engines


class _Stop(Exception):
    def __init__(self, args):
        self.args_namespace = args


@contextlib.contextmanager
def _patched(target, name: str, value):
    saved = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, saved)


@contextlib.contextmanager
def _module_stub(name: str, **attributes):
    """``sys.modules[name]`` replaced by a module holding ``attributes`` (imported inside ``train``)."""
    saved = sys.modules.get(name)
    sys.modules[name] = types.SimpleNamespace(**attributes)
    try:
        yield
    finally:
        if saved is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = saved


def _run_main(module: str, argv: list[str], patches: contextlib.ExitStack):
    """Runs ``module`` as ``__main__`` with ``argv``; returns the namespace a patched step raised with."""
    errors = io.StringIO()
    saved_argv = sys.argv
    sys.argv = [module, *argv]
    try:
        with patches, contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_module(module, run_name="__main__")
    except _Stop as stop:
        return stop.args_namespace
    except SystemExit as exit_:  # argparse: unknown flag, bad value
        lines = errors.getvalue().strip().splitlines()
        raise ArgumentsRejected(
            f"{module} rejects the flags: {lines[-1] if lines else f'exit {exit_.code}'}"
        ) from None
    except AssertionError as error:  # its checks are asserts
        raise ArgumentsRejected(f"{module} rejects the flags: {error}") from None
    finally:
        sys.argv = saved_argv
    raise ArgumentsRejected(f"{module} returned without reaching training")


def check_trainer(cli: OpenRLHFCli, argv: list[str]):
    """train_sft's or train_rm's parsed arguments for ``argv`` (our distilled train_rm: OpenRLHF's parser with the
    ``--distill.rm.*`` flags added), or :class:`ArgumentsRejected`."""
    from . import boot_install

    boot_install()
    import argparse

    import openrlhf.utils

    def stop(args):
        raise _Stop(args)

    patches = contextlib.ExitStack()
    patches.enter_context(_patched(openrlhf.utils, "get_strategy", stop))
    module = cli.module
    if module == "openrlhf_distill.reward_model.train":
        from ..reward_model.trainer import add_distill_arguments

        original = argparse.ArgumentParser.parse_args

        def parse_args(self, args=None, namespace=None):  # train_rm's one parser, with our flags added
            argparse.ArgumentParser.parse_args = original
            add_distill_arguments(self)
            return original(self, args, namespace)

        patches.enter_context(_patched(argparse.ArgumentParser, "parse_args", parse_args))
        module = "openrlhf.cli.train_rm"
    return _run_main(module, argv, patches)


def rehearse_ppo(argv: list[str]):
    """train_ppo_ray's parsed arguments for ``argv`` and the :class:`Requests` its ``train`` makes, or
    :class:`ArgumentsRejected` (its parser, its post-parse checks, or its layout asserts)."""
    from . import boot_install

    boot_install()
    import openrlhf.trainer.ray as trainer_ray
    import openrlhf.trainer.ray.launcher as launcher
    import openrlhf.utils
    import ray
    import ray.util.placement_group

    ray_pg = sys.modules["ray.util.placement_group"]  # the module: ray.util's attribute of that name is the function

    requests = Requests()
    parsed: list = []

    class Strategy:
        def print(self, *args, **kwargs):
            pass

    def get_strategy(args):
        parsed.append(args)
        return Strategy()

    class PlacementGroup:
        def __init__(self, bundles, strategy=None):
            self.index = len(requests.placement_groups)
            requests.placement_groups.append(sum(bundle.get("GPU", 0) for bundle in bundles))

        def ready(self):
            return None

    def create_vllm_engines(num_engines, tensor_parallel_size, *args, **kwargs):
        shared = args[6] if len(args) > 6 else None  # the placement group argument, positional in train()
        requests.vllm = (num_engines, tensor_parallel_size, shared.index if shared is not None else None)
        return [object()] * num_engines

    def actor_group(num_nodes, num_gpus_per_node, actor_type, pg=None, **kwargs):
        # a Ray remote class: its repr names the class, "ActorClass(PolicyModelActor)"
        name = next((g for cls, g in GROUP_NAMES.items() if f"({cls})" in repr(actor_type)), repr(actor_type))
        requests.groups.append((name, num_nodes, num_gpus_per_node, pg.index if pg is not None else None))
        return object()

    class Trainer:
        @staticmethod
        def remote(*args, **kwargs):
            raise _Stop(parsed[0])

    patches = contextlib.ExitStack()
    for target, name, value in [
        (ray, "is_initialized", lambda: True),
        (ray, "get", lambda ref, *a, **k: ref),
        (ray_pg, "placement_group", PlacementGroup),
        (trainer_ray, "create_vllm_engines", create_vllm_engines),
        (launcher, "RayActorGroup", actor_group),
        (openrlhf.utils, "get_strategy", get_strategy),
    ]:
        patches.enter_context(_patched(target, name, value))
    patches.enter_context(_module_stub("openrlhf.trainer.ppo_trainer", PPOTrainer=Trainer))
    patches.enter_context(_module_stub("openrlhf.trainer.ppo_trainer_async", PPOTrainerAsync=Trainer))
    return _run_main(TRAIN_PPO_RAY.module, argv, patches), requests
