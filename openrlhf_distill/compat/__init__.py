"""The OpenRLHF adapter: the one place that knows OpenRLHF's version range, flag names, import quirks and bugs.

- :mod:`.version`: supported versions and the error for a missing or unsupported OpenRLHF.
- :mod:`.flags`: OpenRLHF's dotted flag names.
- :mod:`.patches` (+ :mod:`.cpu_patches`, :mod:`.rl_cpu_patches`, :mod:`.fixes`, :mod:`.flash_attn_stub`):
  runtime patches that reach every process of a run through ``boot/sitecustomize.py``.
- :mod:`.launch`: runs OpenRLHF's train_sft / train_rm on GPUs (deepspeed) or on the CPU, and plans
  train_ppo_ray's command (:func:`.launch.plan_ppo`); :mod:`.ray_driver` starts or joins Ray and runs it.
- :mod:`.gpu_plan`: the GPUs a PPO command asks for, per actor group, checked against the cluster.
- :mod:`.formats`: the text OpenRLHF's reward model scores, which our scorers must reproduce.
- :mod:`.quiet`: the known harmless third-party warnings, filtered with their reasons.
"""

from .version import SUPPORTED, OpenRLHFNotSupported, check_openrlhf, installed_openrlhf_version


def boot_install() -> None:
    """Everything a process needs before it imports OpenRLHF: the flash_attn stand-in and the patches."""
    from . import flash_attn_stub, patches
    from .quiet import quiet_harmless_warnings

    quiet_harmless_warnings()
    flash_attn_stub.install()
    patches.install()


__all__ = ["SUPPORTED", "OpenRLHFNotSupported", "boot_install", "check_openrlhf", "installed_openrlhf_version"]
