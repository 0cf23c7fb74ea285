"""Generated tokens/s of the vllm backend, side by side with plain ``LLM.generate`` on the same engine.

One ``vllm.LLM`` is built; then each round times both, in alternating order, on the same engine:

- ``plain``: ``llm.generate(prompts, [SamplingParams(...) per prompt])``, what a user of vLLM would write;
- ``backend``: ``VLLMBackend.from_engine(llm).generate(requests)`` with the same prompts, n, temperature, seeds
  and max tokens (our layer: chat templating, sampling params, converting outputs to Completions).

Both draw the same per-request seeds, so both generate the same tokens and the ratio compares like with like.
``--chat`` sends chat messages to the backend and the same chat-templated token ids to plain generate, so the
templating is counted as ours. The target (issue 4) is an overhead under 10%: backend/plain tokens/s >= 0.9.
The time spent in our layer alone (outside ``LLM.generate``) is printed too: on a busy machine it is the steadier
measure of the same overhead.

    python benchmarks/bench_vllm_backend.py                      # a tiny model built offline, on CPU or GPU
    python benchmarks/bench_vllm_backend.py --model Qwen/Qwen2.5-7B-Instruct --prompts 512 --chat
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


class TimedEngine:
    """Hands calls on to the LLM and adds up the seconds spent inside its ``generate``: a backend round minus
    those is the time spent in our layer alone, a number that other load on the machine hardly moves."""

    def __init__(self, llm):
        self.llm, self.seconds = llm, 0.0

    def get_tokenizer(self):
        return self.llm.get_tokenizer()

    def generate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.llm.generate(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def make_prompts(count: int) -> list[str]:
    return [f"Question {i}: a shop has {3 * i + 7} apples and sells {i + 2}. How many are left?" for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a saved model (default: a tiny random model built here)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds of each, after one warm-up round")
    parser.add_argument("--chat", action="store_true", help="chat prompts (templated by the backend)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    import torch
    from vllm import LLM, SamplingParams

    from openrlhf_distill.generation.backend import Request
    from openrlhf_distill.generation.vllm_backend import CPU_KV_CACHE_BYTES, VLLMBackend

    model, workdir = args.model, tempfile.TemporaryDirectory()  # removed when the script ends
    if model is None:
        from openrlhf_distill.toy.tiny_model import build_tiny_causal_lm

        model = build_tiny_causal_lm(os.path.join(workdir.name, "tiny"))
    on_cpu = not torch.cuda.is_available()
    # On CPU, the settings VLLMBackend itself would choose there (see its module docstring).
    cpu_args = {"enforce_eager": True, "kv_cache_memory_bytes": CPU_KV_CACHE_BYTES, "enable_chunked_prefill": False}
    engine_args = cpu_args if on_cpu else {}
    llm = LLM(model=model, seed=0, **engine_args)
    engine = TimedEngine(llm)
    backend = VLLMBackend.from_engine(engine, model)

    texts = make_prompts(args.prompts)
    prompts: list = [[{"role": "user", "content": t}] for t in texts] if args.chat else texts
    new_tokens, n = args.max_new_tokens, args.n
    requests = [Request(p, args.temperature, n, new_tokens, seed=1000 + i) for i, p in enumerate(prompts)]
    if args.chat:
        tok = llm.get_tokenizer()
        templated = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
        plain_inputs = [{"prompt_token_ids": tok.encode(t, add_special_tokens=False)} for t in templated]
    else:
        plain_inputs = texts
    plain_params = [
        SamplingParams(n=r.n, temperature=r.temperature, max_tokens=r.max_new_tokens, seed=r.seed) for r in requests
    ]

    def run_plain() -> tuple[float, int]:
        start = time.perf_counter()
        outputs = llm.generate(plain_inputs, plain_params, use_tqdm=False)
        return time.perf_counter() - start, sum(len(c.token_ids) for o in outputs for c in o.outputs)

    def run_backend() -> tuple[float, int]:
        engine.seconds, start = 0.0, time.perf_counter()
        results = backend.generate(requests)
        seconds = time.perf_counter() - start
        layer.append(seconds - engine.seconds)
        return seconds, sum(c.num_tokens for completions in results for c in completions)

    layer: list[float] = []
    run_plain(), run_backend()  # warm-up: first-call costs are not ours to measure
    layer.clear()
    plain, ours = [], []
    for round_index in range(args.rounds):
        # Alternate which goes first, so that neither always inherits the other's leftovers (caches, GC).
        if round_index % 2:
            ours.append(run_backend())
            plain.append(run_plain())
        else:
            plain.append(run_plain())
            ours.append(run_backend())
    tokens = {plain[0][1], ours[0][1]}
    plain_tps = statistics.median(t / s for s, t in plain)
    ours_tps = statistics.median(t / s for s, t in ours)
    result = {
        "model": model,
        "device": "cpu" if on_cpu else torch.cuda.get_device_name(),
        "prompts": args.prompts,
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "chat": args.chat,
        "generated_tokens_per_round": sorted(tokens),
        "plain_tokens_per_s": plain_tps,
        "backend_tokens_per_s": ours_tps,
        "backend_over_plain": ours_tps / plain_tps,
        "plain_seconds": [s for s, _ in plain],
        "backend_seconds": [s for s, _ in ours],
        "layer_seconds": layer,
        "layer_share_of_backend_time": statistics.median(x / s for x, (s, _) in zip(layer, ours, strict=True)),
    }
    print(
        f"{args.prompts} prompts x n={args.n}, {args.max_new_tokens} new tokens max, chat={args.chat}, "
        f"{result['device']}; generated tokens per round: {sorted(tokens)}"
    )
    print(
        f"plain LLM.generate {plain_tps:>10,.0f} tokens/s | VLLMBackend {ours_tps:>10,.0f} tokens/s | "
        f"backend/plain {result['backend_over_plain']:.3f} (target >= 0.90)"
    )
    share = result["layer_share_of_backend_time"]
    print(
        f"time in our layer alone (backend round minus its LLM.generate): median "
        f"{statistics.median(layer) * 1000:.1f} ms per round, {share:.1%} of the round"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
