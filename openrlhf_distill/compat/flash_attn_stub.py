"""An in-process stand-in for the ``flash_attn`` package on machines where it cannot be installed.

OpenRLHF imports ``flash_attn.bert_padding`` and ``flash_attn.utils.distributed`` at module top (for sample
packing and ring attention) even when neither is used; flash-attn needs CUDA to build, so on a CPU machine
those imports fail before anything runs. This finder answers exactly those imports, with functions that raise
a clear error if they are ever called. Every other flash_attn import still fails with ImportError, so
OpenRLHF's own fallbacks (e.g. its plain-torch cross entropy) take over as they would without flash-attn.
The finder sits last on ``sys.meta_path``: an installed flash-attn is always found first. Nothing is written
to site-packages.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

NEEDS_FLASH_ATTN = (
    "flash-attn is not installed (it cannot be built without CUDA), so {name} is unavailable. "
    "Sample packing (--ds.packing_samples) and ring attention (--ds.ring_attn_size) need a GPU install: "
    "`bash scripts/install_cluster.sh` in a clone of the openrlhf-distill repository (it builds flash-attn "
    "against the installed torch)."
)

# module -> the names OpenRLHF 0.11 imports from it at module top
STUB_MODULES = {
    "flash_attn": (),
    "flash_attn.bert_padding": ("index_first_axis", "pad_input", "unpad_input", "rearrange"),
    "flash_attn.utils": (),
    "flash_attn.utils.distributed": ("all_gather",),
}


def _unavailable(name: str):
    def call(*args, **kwargs):
        raise RuntimeError(NEEDS_FLASH_ATTN.format(name=name))

    call.__name__ = call.__qualname__ = name.rsplit(".", 1)[-1]
    return call


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        module.__path__ = []
        module.__openrlhf_distill_stub__ = True
        for attr in STUB_MODULES[module.__name__]:
            if attr == "rearrange":  # flash_attn re-exports einops.rearrange; keep it real
                import einops

                module.rearrange = einops.rearrange
            else:
                setattr(module, attr, _unavailable(f"{module.__name__}.{attr}"))


class FlashAttnStubFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in STUB_MODULES:
            return None
        if fullname != "flash_attn" and not is_stub(sys.modules.get("flash_attn")):
            return None  # a real flash_attn that lacks this submodule: not ours to answer
        return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)


def install() -> None:
    if not any(isinstance(f, FlashAttnStubFinder) for f in sys.meta_path):
        sys.meta_path.append(FlashAttnStubFinder())


def is_stub(module) -> bool:
    return getattr(module, "__openrlhf_distill_stub__", False)
