"""vLLM's CPU build really generates from a tiny model saved here, and agrees with transformers."""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

# vLLM starts engine processes with "spawn", so it runs in a script of its own (not inside pytest).
GENERATE = textwrap.dedent(
    """
    import json, sys
    from vllm import LLM, SamplingParams

    def main():
        model, prompts = sys.argv[1], json.loads(sys.argv[2])
        llm = LLM(model=model, dtype="float32", max_model_len=256, enforce_eager=True, seed=0,
                  kv_cache_memory_bytes=1 << 30)
        greedy = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True))
        sampled = llm.generate(prompts, SamplingParams(temperature=1.0, max_tokens=8, n=3, ignore_eos=True))
        print("RESULT", json.dumps({
            "greedy": [list(o.outputs[0].token_ids) for o in greedy],
            "sampled": [[list(c.token_ids) for c in o.outputs] for o in sampled],
        }))

    if __name__ == "__main__":
        main()
    """
)


def test_vllm_cpu_generates_the_same_greedy_tokens_as_transformers(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = ["what is 12 + 7?", "the total of 3 apples and 5 apples is"]
    script = tmp_path / "generate.py"
    script.write_text(GENERATE)
    result = subprocess.run(
        [sys.executable, str(script), tiny_model, json.dumps(prompts)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    got = json.loads(next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT ") :])

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    for prompt, vllm_tokens in zip(prompts, got["greedy"], strict=True):
        ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            ref = model.generate(**ids, max_new_tokens=8, do_sample=False, min_new_tokens=8)
        assert vllm_tokens == ref[0, ids.input_ids.shape[1] :].tolist()

    vocab = len(tok)
    for samples in got["sampled"]:
        assert len(samples) == 3 and all(len(s) == 8 and all(0 <= t < vocab for t in s) for s in samples)
        assert len({tuple(s) for s in samples}) > 1, "temperature 1.0 gave three identical samples"
