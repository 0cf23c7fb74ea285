"""Generated tokens/s of the hf backend vs a plain ``model.generate`` loop on the same prompts, side by side.

Both sides use the same model object, the same batches of prompts (chat-templated, left-padded), the same
sampling settings and the same seeds; the plain loop is the code a user would write by hand. The ratio
backend/plain is the cost of our layer (request grouping, completion records, stop handling); the issue's
target is an overhead under 10%, i.e. a ratio of at least 0.9.

    python benchmarks/bench_hf_backend.py [--prompts 64] [--n 4] [--max-new-tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def plain_loop(model, tok, prompts, *, n, max_new_tokens, temperature, batch_size, seeds):
    import torch

    tokens = 0
    per_batch = max(1, batch_size // n)
    for start in range(0, len(prompts), per_batch):
        texts = [
            tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in prompts[start : start + per_batch]
        ]
        inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seeds[start])
        with torch.no_grad():
            out = model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                num_return_sequences=n,
                max_new_tokens=max_new_tokens,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        for row in out[:, inputs["input_ids"].shape[1] :].tolist():
            ids = row[: row.index(tok.eos_token_id) + 1] if tok.eos_token_id in row else row
            tok.decode(ids, skip_special_tokens=True)
            tokens += len(ids)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    from openrlhf_distill.generation.backend import Request
    from openrlhf_distill.generation.hf_backend import HFBackend
    from openrlhf_distill.toy.tiny_model import TinyModelSpec, build_tiny_causal_lm

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as folder:
        # Larger than the test models, so that the model's work, not Python, dominates as it does in real use.
        spec = TinyModelSpec(
            hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4
        )
        path = build_tiny_causal_lm(os.path.join(folder, "model"), spec)
        backend = HFBackend(path, batch_size=args.batch_size, dtype="float32")
        model, tok = backend.model, backend.tokenizer
        prompts = [[{"role": "user", "content": f"what is {i} plus {2 * i}?"}] for i in range(args.prompts)]
        seeds = list(range(args.prompts))
        requests = [Request(p, 1.0, args.n, args.max_new_tokens, seed=s) for p, s in zip(prompts, seeds, strict=True)]

        results = {"plain": [], "backend": []}
        for _ in range(args.repeats):  # interleaved, so that drift in machine load hits both sides alike
            start = time.perf_counter()
            tokens = plain_loop(
                model,
                tok,
                prompts,
                n=args.n,
                max_new_tokens=args.max_new_tokens,
                temperature=1.0,
                batch_size=args.batch_size,
                seeds=seeds,
            )
            results["plain"].append(tokens / (time.perf_counter() - start))
            start = time.perf_counter()
            completions = backend.generate(requests)
            tokens = sum(c.num_tokens for group in completions for c in group)
            results["backend"].append(tokens / (time.perf_counter() - start))
    best = {side: max(rates) for side, rates in results.items()}
    ratio = best["backend"] / best["plain"]
    print(
        f"plain model.generate loop: {best['plain']:,.0f} tok/s | hf backend: {best['backend']:,.0f} tok/s | "
        f"ratio backend/plain {ratio:.3f} (best of {args.repeats}; target >= 0.9)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tokens_per_s": results, "best": best, "ratio": ratio, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
