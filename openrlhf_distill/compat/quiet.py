"""Third-party warnings that every model load or trainer start prints and that are known to be harmless, each
filtered with the reason it is harmless. Anything not listed here stays visible.

Installed in our own commands (``openrlhf-distill`` start-up) and, through ``boot/sitecustomize.py``
(:func:`openrlhf_distill.compat.boot_install`), in every process a run starts: trainers, Ray workers, vLLM
engines.
"""

from __future__ import annotations

import logging
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


# Log lines of the same kind: (logger, start of the message, why it is harmless). A filter on the named logger
# (made before the library creates it, kept when it does) drops only the lines that start so.
HARMLESS_LOGS = (
    (
        "bitsandbytes.backends.cpu.ops",
        "Failed to load CPU gemm_4bit_forward",
        "bitsandbytes looks for an optional faster CPU 4-bit kernel in the `kernels` package, which we do not "
        "install; nothing here quantizes to 4 bits, and bitsandbytes falls back to its own kernel",
    ),
    (
        "transformers.configuration_utils",
        "`torch_dtype` is deprecated",
        "OpenRLHF 0.11.2 loads models with `torch_dtype=`, which transformers still maps to `dtype`; the warning "
        "is addressed to OpenRLHF's code, there is no setting of ours to change",
    ),
    (
        "DeepSpeed",
        "Setting ds_accelerator to",
        "DeepSpeed says which accelerator it found (cpu on a machine without CUDA, where our CPU engine runs); "
        "an information line that users took for a fault",
    ),
)


class _DropLines(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def quiet_harmless_warnings() -> None:
    for category, message, _why in HARMLESS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, start, _why in HARMLESS_LOGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) and start in f.starts for f in logger.filters):
            logger.addFilter(_DropLines((start,)))
