"""Fixes for bugs of the supported OpenRLHF / transformers versions, applied on every machine."""

from __future__ import annotations

import functools
import sys

from .patches import patch


def refill_reward_normalisation(model) -> None:
    """Sets an OpenRLHF reward/critic model's ``mean``/``std`` buffers from its config (0 and 1 when absent).

    The buffers are non-persistent, so they are not in the checkpoint; transformers 5.x materialises the
    model from the meta device and leaves such buffers as uninitialised memory (OpenRLHF's constructor
    fills them, but on the meta device). Without ZeRO-3 a loaded RM then normalises with garbage.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a LoRA (PEFT) wrapper
    if not (hasattr(inner, "mean") and hasattr(inner, "std")):
        return
    config = inner.config
    mean = float(getattr(config, "mean", 0.0))
    std = float(getattr(config, "std", 1.0))
    inner.mean.fill_(mean)
    inner.std.fill_(std)


@patch(
    "openrlhf.models.model",
    name="reward_mean_std_from_config",
    group="fix",
    why="transformers 5.x leaves the RM's non-persistent mean/std buffers uninitialised after from_pretrained",
)
def reward_mean_std_from_config(model_module) -> None:
    original = model_module.get_llm_for_sequence_regression

    @functools.wraps(original)
    def get_llm_for_sequence_regression(*args, **kwargs):
        model = original(*args, **kwargs)
        refill_reward_normalisation(model)
        return model

    model_module.get_llm_for_sequence_regression = get_llm_for_sequence_regression
    # `from openrlhf.models import get_llm_for_sequence_regression` reads the package's copy of the name, bound
    # when the package was imported: where that happened before this patch, it is the unfixed function.
    package = sys.modules.get("openrlhf.models")
    if package is not None and getattr(package, "get_llm_for_sequence_regression", None) is original:
        package.get_llm_for_sequence_regression = get_llm_for_sequence_regression
