"""Model folders named on a command line, checked before anything loads them.

A path that does not exist would otherwise reach the Hugging Face Hub as a repo id (and fail minutes later with
a "Repo id" error, or with no network at all), and a causal LM given where a reward model belongs would be
scored through a freshly drawn random head. Hub ids ("name" or "org/name") are left to the loaders.
"""

from __future__ import annotations

import glob
import json
import os

from .records import RecordError


def looks_local(name: str) -> bool:
    """True for what can only be a path: absolute, relative with ./ or ~, deeper than "org/name", or existing."""
    return os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1 or os.path.exists(name)


def check_model_folder(path: str, setting: str, *, weights: bool = True) -> None:
    """Refuses a local path that is not a model folder (no config.json, or no weights unless ``weights`` is
    False: a plan checked for a model's shape alone); a Hub id passes."""
    folder = os.path.expanduser(path)
    if not looks_local(path):
        return
    if not os.path.isfile(os.path.join(folder, "config.json")):
        found = "no such folder" if not os.path.exists(folder) else "no config.json in it"
        raise ValueError(f"{setting} {path}: not a model folder ({found})")
    names = os.listdir(folder)
    if weights and not any(
        n.endswith((".safetensors", ".bin", ".pt", ".gguf")) or n.endswith(".index.json") for n in names
    ):
        raise ValueError(f"{setting} {path}: a model folder without weights (no *.safetensors or *.bin in it)")


def check_reward_model(model_dir: str) -> None:
    """Refuses, before anything is loaded, a folder that is not a reward model saved by OpenRLHF (`train-rm`)."""
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(config_path):
        raise RecordError(
            model_dir,
            None,
            None,
            "no model folder here (a reward model saved by `train-rm` holds config.json and its weights)",
        )
    with open(config_path, encoding="utf-8") as f:
        prefix = json.load(f).get("value_head_prefix", "score")
    weights = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
    if not weights:
        return  # weights in another format: OpenRLHF's loader will judge them
    from safetensors import safe_open

    for path in weights:
        with safe_open(path, "pt") as f:
            if f"{prefix}.weight" in f.keys():
                return
    raise RecordError(
        model_dir,
        None,
        None,
        f"not a reward model: its weights have no value head `{prefix}` (a "
        "causal LM? train a reward model from it with `openrlhf-distill train-rm`)",
    )


def parameter_count(model_dir: str) -> int | None:
    """A decoder's parameters from its config.json (attention with grouped KV heads, a gated MLP, embeddings tied
    or not), for size estimates; None when the folder or a needed field is missing."""
    try:
        with open(os.path.join(os.path.expanduser(model_dir), "config.json")) as f:
            c = json.load(f)
        h, layers, vocab, inner = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["intermediate_size"]
        heads = c["num_attention_heads"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    kv_width = c.get("num_key_value_heads", heads) * c.get("head_dim", h // heads)
    per_layer = 2 * h * h + 2 * h * kv_width + 3 * h * inner  # q and o, k and v, gate, up and down
    return layers * per_layer + vocab * h * (1 if c.get("tie_word_embeddings", True) else 2)
