"""Third-party warnings that every model load or trainer start prints and that are known to be harmless, each
filtered with the reason it is harmless. Anything not listed here stays visible.

Installed in our own commands (``openrlhf-distill`` start-up) and, through ``boot/sitecustomize.py``
(:func:`openrlhf_distill.compat.boot_install`), in every process a run starts: trainers, Ray workers, vLLM
engines.
"""

from __future__ import annotations

import warnings

# (category, start of the message, why it is harmless)
HARMLESS = (
    (
        FutureWarning,
        "The pynvml package is deprecated",
        "torch imports pynvml when it is installed; the warning asks its packager to depend on nvidia-ml-py, which "
        "provides the same module; nothing is missing",
    ),
)


def quiet_harmless_warnings() -> None:
    for category, message, _why in HARMLESS:
        warnings.filterwarnings("ignore", message=message, category=category)
