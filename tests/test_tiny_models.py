"""Tiny offline models: real HF folders with a byte-level tokenizer and a chat template, built from nothing."""

import pytest

from openrlhf_distill.toy.tiny_model import TinyModelSpec, build_tiny_causal_lm


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_tiny_model_folder_loads_with_auto_classes_and_generates(arch, tmp_path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_causal_lm(str(tmp_path / arch), TinyModelSpec(arch=arch))
    config = AutoConfig.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert config.model_type == arch and config.vocab_size == len(tok)
    assert config.hidden_size // config.num_attention_heads == 32  # a head size vLLM's CPU attention accepts
    assert sum(p.numel() for p in model.parameters()) < 200_000
    ids = tok("what is 2 + 2?", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert out.shape[1] == ids.input_ids.shape[1] + 5
    assert torch.equal(out, model.generate(**ids, max_new_tokens=5, do_sample=False, min_new_tokens=5))


def test_tokenizer_round_trips_any_text_and_has_a_chat_template(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    for text in ["#### 1,234.50", "Natalia sold 48/2 = 24 clips.", "naïve café ≠ 东京 🙂", "\\boxed{-7}\n\n"]:
        assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token != tok.eos_token


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    from safetensors.torch import load_file

    a = load_file(build_tiny_causal_lm(str(tmp_path / "a")) + "/model.safetensors")
    b = load_file(build_tiny_causal_lm(str(tmp_path / "b")) + "/model.safetensors")
    c = load_file(build_tiny_causal_lm(str(tmp_path / "c"), TinyModelSpec(seed=1)) + "/model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)
