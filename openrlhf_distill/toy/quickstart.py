"""Data and measurements for recipes/quickstart_cpu.sh, the smallest real end-to-end run of the stack.

Until the toy world lands (issue 7), the quickstart shows the foundation working, with nothing simulated:
a tiny model is fine-tuned by OpenRLHF's train_sft, a reward model is trained by OpenRLHF's train_rm, both
through the CPU adapter, then measured here on held-out rows and sampled with vLLM's CPU build.

    python -m openrlhf_distill.toy.quickstart data OUT     # writes OUT/{sft,sft_heldout,pairs,pairs_heldout}.jsonl
    python -m openrlhf_distill.toy.quickstart report OUT   # prints the measurements, writes OUT/quickstart.json
"""

from __future__ import annotations

import argparse
import os
import random

from ..records import ANY_OBJECT, read_records, write_json_atomic, write_jsonl_atomic


def _arithmetic_rows(n: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(0, 50), rng.randint(0, 50)) for _ in range(n)]


def write_data(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    sft = [{"input": f"what is {a} + {b}?", "output": f"{a} + {b} = {a + b}. #### {a + b}"}
           for a, b in _arithmetic_rows(80, seed=0)]  # fmt: skip
    # Separable by design (chosen ends "correct", rejected "wrong"): shows the RM trainer learns; telling right
    # sums from wrong ones is the toy world's job. With --data.apply_chat_template OpenRLHF's RewardDataset
    # concatenates prompt + chosen as message lists, so chat-format pairs are lists of messages, not strings.
    pairs = [
        {
            "prompt": [{"role": "user", "content": f"what is {a} + {b}?"}],
            "chosen": [{"role": "assistant", "content": f"#### {a + b} correct"}],
            "rejected": [{"role": "assistant", "content": f"#### {a + b + 1} wrong"}],
        }
        for a, b in _arithmetic_rows(80, seed=1)
    ]
    write_jsonl_atomic(os.path.join(out, "sft.jsonl"), sft[:64])
    write_jsonl_atomic(os.path.join(out, "sft_heldout.jsonl"), sft[64:])
    write_jsonl_atomic(os.path.join(out, "pairs.jsonl"), pairs[:64])
    write_jsonl_atomic(os.path.join(out, "pairs_heldout.jsonl"), pairs[64:])


def mean_response_nll(model_dir: str, rows: list[dict], prompt_key: str = "input", response_key: str = "output"):
    """Mean negative log-likelihood per response token, prompts formatted with the model's chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    total, count = 0.0, 0
    for row in rows:
        messages = [{"role": "user", "content": row[prompt_key]}]
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = tok(prompt, add_special_tokens=False).input_ids
        response_ids = tok(row[response_key], add_special_tokens=False).input_ids
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        token_logp = logp.gather(-1, ids[0, 1:, None])[:, 0][len(prompt_ids) - 1 :]
        total -= token_logp.sum().item()
        count += len(response_ids)
    return total / count


def rm_pairwise_accuracy(rm_dir: str, pairs: list[dict]) -> tuple[float, dict]:
    """Held-out pairwise accuracy of the RM (loaded by OpenRLHF's loader), and the normalisation it stores."""
    from ..reward_model.evaluate import RewardScorer, pairwise_accuracy

    scorer = RewardScorer(rm_dir)
    normalisation = {"mean": scorer.model.mean.item(), "std": scorer.model.std.item()}
    return pairwise_accuracy(scorer, pairs)["accuracy"], normalisation


def vllm_samples(model_dir: str, prompts: list[str], n: int = 2) -> list[list[str]]:
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    tok = AutoTokenizer.from_pretrained(model_dir)
    chats = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]  # fmt: skip
    # An explicit KV-cache size: otherwise vLLM's CPU worker reserves 92% of the machine's memory, and refuses to
    # start when less than that is free.
    llm = LLM(model=model_dir, dtype="bfloat16", max_model_len=256, enforce_eager=True, seed=0,
              kv_cache_memory_bytes=1 << 30)  # fmt: skip
    outputs = llm.generate(chats, SamplingParams(temperature=0.7, max_tokens=24, n=n))
    return [[c.text for c in o.outputs] for o in outputs]


def report(out: str) -> dict:
    sft_heldout = [row for _, row in read_records(os.path.join(out, "sft_heldout.jsonl"), ANY_OBJECT)]
    pairs_heldout = [row for _, row in read_records(os.path.join(out, "pairs_heldout.jsonl"), ANY_OBJECT)]
    nll_base = mean_response_nll(os.path.join(out, "base"), sft_heldout)
    nll_sft = mean_response_nll(os.path.join(out, "sft"), sft_heldout)
    accuracy, normalisation = rm_pairwise_accuracy(os.path.join(out, "rm"), pairs_heldout)
    prompts = [r["input"] for r in sft_heldout[:3]]
    samples = vllm_samples(os.path.join(out, "sft"), prompts)
    result = {
        "sft_heldout_nll_per_token": {"base": nll_base, "sft": nll_sft, "rows": len(sft_heldout)},
        "rm_heldout_pairwise_accuracy": {"accuracy": accuracy, "pairs": len(pairs_heldout), **normalisation},
        "vllm_cpu_samples": dict(zip(prompts, samples, strict=True)),
    }
    write_json_atomic(os.path.join(out, "quickstart.json"), result)
    print("\n== quickstart (foundation smoke run; the method's results come with the toy world) ==")
    print(f"SFT (OpenRLHF train_sft)   held-out NLL/token  base {nll_base:.3f} -> SFT {nll_sft:.3f}")
    print(
        f"RM  (OpenRLHF train_rm)    held-out pairwise accuracy {accuracy:.1%} on {len(pairs_heldout)} pairs "
        f"(separable by design); normalisation mean {normalisation['mean']:.4f} std {normalisation['std']:.4f}"
    )
    for prompt, texts in result["vllm_cpu_samples"].items():
        print(f"vLLM CPU sample  {prompt!r} -> {texts[0]!r}")
    print(f"written: {os.path.join(out, 'quickstart.json')}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["data", "report"])
    parser.add_argument("out")
    args = parser.parse_args()
    write_data(args.out) if args.step == "data" else report(args.out)


if __name__ == "__main__":
    main()
