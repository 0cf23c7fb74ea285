"""Builds tiny HF-format causal language models with a real tokenizer and chat template, offline, in seconds.

The tokenizer is a byte-level BPE trained with the `tokenizers` library on a small generated corpus of words,
digits and arithmetic, so any text round-trips (bytes fall back to single-byte tokens) and numbers stay short.
transformers' AutoTokenizer (used by OpenRLHF and vLLM alike) loads it as the architecture's own tokenizer
class, e.g. Qwen2Tokenizer, which splits digits one per token as real Qwen models do.
The weights are random: these models exist to run OpenRLHF's trainers, vLLM and our stages for real on a CPU.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from ..contract import Output
from ..settings import from_args, setting

ARCHS = ("qwen2", "llama")

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_WORDS = (
    "the a answer is question what how many plus minus times equals total left each has have had more less "
    "so then step first next final result number sum difference product of and to in on for with we get "
    "user assistant system yes no good bad correct wrong cat dog apples books coins"
).split()


@dataclass(frozen=True)
class TinyModelSpec:
    """A tiny model's shape: `tiny-model`'s --arch and --seed are made from these fields (the shape is fixed)."""

    arch: str = setting("qwen2", "the architecture (its config and modelling code are transformers')", choices=ARCHS)
    hidden_size: int = setting(64, flag=False)
    intermediate_size: int = setting(128, flag=False)
    num_hidden_layers: int = setting(2, flag=False)
    # head_dim = 64 / 2 = 32: vLLM's CPU attention supports head sizes 32, 64, 80, ... but not 16
    num_attention_heads: int = setting(2, flag=False)
    num_key_value_heads: int = setting(1, flag=False)
    vocab_size: int = setting(512, flag=False)  # BPE target; the real size is what training reaches
    max_position_embeddings: int = setting(1024, flag=False)
    seed: int = setting(0, "seeds the weights and the tokenizer's training text")


def _corpus(rng: random.Random, lines: int = 2000) -> list[str]:
    out = []
    for _ in range(lines):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        op = rng.choice(["+", "-", "*"])
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 10)))
        out.append(f"{words} {a} {op} {b} = {a + b if op == '+' else a - b if op == '-' else a * b}. #### {a}")
    return out


def build_tokenizer(spec: TinyModelSpec = TinyModelSpec()):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(spec.seed)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token: nothing is unknown
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(rng), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def random_causal_lm(spec, tokenizer, seed: int):
    """A randomly initialised Qwen2 / Llama causal LM of ``spec``'s shape (``arch``, ``hidden_size``,
    ``intermediate_size``, ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``,
    ``max_position_embeddings``) for ``tokenizer``: tied embeddings, float32, generation stops at its EOS."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if spec.arch not in classes:
        raise ValueError(f"arch must be one of {sorted(classes)}, not {spec.arch!r}")
    config_cls, model_cls = classes[spec.arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def build_tiny_causal_lm(out_dir: str, spec: TinyModelSpec = TinyModelSpec()) -> str:
    """Writes a random tiny causal LM + tokenizer to ``out_dir`` (HF format) and returns the folder."""
    tokenizer = build_tokenizer(spec)
    model = random_causal_lm(spec, tokenizer, spec.seed)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_reward_model(out_dir: str, base_dir: str | None = None, *, head_std: float = 1.0, seed: int = 0) -> str:
    """Writes an OpenRLHF reward model (a tiny causal LM's body + a random value head ``score``) to ``out_dir``.

    Saved as OpenRLHF's ``train_rm`` saves one (``save_pretrained`` of the model its loader builds, with
    ``mean``/``std`` in config.json), but untrained: for tests and benchmarks of the code that loads and serves
    RMs, in a second instead of a training run. The head is drawn with ``head_std`` so that different texts get
    clearly different rewards, and ``mean``/``std`` are measured on a few texts so normalised rewards are of
    order 1. ``base_dir``: a tiny causal LM to start from (built here when None).
    """
    import torch

    from ..compat import boot_install

    boot_install()  # the flash_attn stand-in and the fixes OpenRLHF's loader needs
    from openrlhf.models import get_llm_for_sequence_regression
    from transformers import AutoTokenizer

    base_dir = base_dir or build_tiny_causal_lm(os.path.join(out_dir, "base"))
    model = get_llm_for_sequence_regression(base_dir, "reward", attn_implementation="eager", param_dtype="bf16")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tokenizer.padding_side = "left"
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=generator) * head_std)
        rng = random.Random(seed)
        texts = [line + tokenizer.eos_token for line in _corpus(rng, lines=32)]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        raw = model.eval()(batch.input_ids, attention_mask=batch.attention_mask).float()
    model.config.mean, model.config.std = raw.mean().item(), max(raw.std().item(), 1e-3)
    model.save_pretrained(out_dir)
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(out_dir)
    return out_dir


# --- `openrlhf-distill tiny-model` ------------------------------------------------------------------------------


PATHS = (Output("out_dir", "folder", "the model folder to write", positional=True),)


def run(args) -> int:
    from ..records import atomic_output_dir

    # a folder that holds anything but an earlier tiny-model is refused, not overwritten
    with atomic_output_dir(args.out_dir, "tiny-model") as partial:
        build_tiny_causal_lm(partial, from_args(args, TinyModelSpec))
    print(args.out_dir)
    return 0
