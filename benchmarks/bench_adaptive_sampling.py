"""Adaptive teacher sampling, replayed: how many teacher samples and tokens each stopping rule saves, and what it
costs (labels changed, SFT rows lost), against the full budget on the same sample streams.

Streams: a run's recorded teacher samples (``--samples``, e.g. runs/quickstart/teacher_samples: the toy
world's 12 per question over 3 temperatures), and synthetic streams with GSM8K-like agreement (per question the
teacher is right with a probability drawn from Beta(8, 2), mean 0.8; wrong answers fall on a few values per
question; 3% of samples unreadable; 12 samples over 3 temperatures; tokens per sample about 200). Each question's
samples are shuffled within each temperature (``--orders`` random orders) and drawn round-robin across the
temperatures, in rounds of ``--round-size`` samples, the rule checked after each round:

- full: every sample (the reference);
- exact: `adaptive.settled` (labels identical by construction; the replay checks it);
- beta@c: also stop when `adaptive.leader_confidence` >= c, the label then being the vote over the samples drawn.

    PYTHONPATH=. python benchmarks/bench_adaptive_sampling.py [--samples runs/quickstart/teacher_samples]
        [--round-size 1 3] [--orders 5]

SFT rows: the drawn teacher samples that agree with the question's accepted label (distinct responses), as a
share of the full budget's. This is a replay of recorded samples, not a timing: the saving in a real run is the
tokens not generated.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import sys
from collections import Counter, defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from openrlhf_distill.adaptive import leader_confidence, settled  # noqa: E402
from openrlhf_distill.voting import VoteRule, majority_vote  # noqa: E402

RULE = VoteRule()  # the vote's defaults
CONFIDENCES = (0.9, 0.95, 0.99)


def recorded_streams(folder: str) -> dict[str, dict[float, list[tuple]]]:
    """question id -> temperature -> [(answer, response, tokens)] from a folder of teacher sample shards."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
        with open(path) as f:
            for line in f:
                s = json.loads(line)
                out[s["id"]][s["temperature"]].append((s.get("answer"), s["response"], s.get("num_tokens") or 1))
    return out


def synthetic_streams(n_questions: int, seed: int) -> dict[str, dict[float, list[tuple]]]:
    rng = random.Random(seed)
    out = {}
    for q in range(n_questions):
        p_right = rng.betavariate(8, 2)
        wrong = [str(100 + q * 10 + k) for k in range(3)]
        weights = [rng.random() for _ in wrong]
        by_t = {}
        for t in (0.3, 0.7, 1.0):
            samples = []
            for i in range(4):
                u = rng.random()
                answer = None if u < 0.03 else "42" if rng.random() < p_right else rng.choices(wrong, weights)[0]
                samples.append((answer, f"q{q} t{t} s{i} {answer}", max(20, int(rng.gauss(200, 50)))))
            by_t[t] = samples
        out[f"q{q}"] = by_t
    return out


def _order(by_t: dict[float, list[tuple]], rng: random.Random) -> list[tuple]:
    """The samples shuffled within each temperature, then taken round-robin across temperatures."""
    lanes = []
    for t in sorted(by_t):
        lane = list(by_t[t])
        rng.shuffle(lane)
        lanes.append(lane)
    return [lane[i] for i in range(max(map(len, lanes))) for lane in lanes if i < len(lane)]


def _stop_at(stream: list[tuple], round_size: int, confidence: float | None) -> int:
    """How many samples of ``stream`` the rule draws."""
    budget = len(stream)
    for drawn in range(round_size, budget, round_size):
        answers = [a for a, _, _ in stream[:drawn]]
        counts = Counter(a for a in answers if a is not None)
        if settled(counts, answers.count(None), budget - drawn, RULE)[0]:
            return drawn
        if confidence is not None and leader_confidence(counts) >= confidence:
            return drawn
    return budget


def replay(streams: dict, round_size: int, orders: int, seed: int) -> dict[str, dict]:
    rules = {"full": None, "exact": None, **{f"beta@{c}": c for c in CONFIDENCES}}
    totals = {name: Counter() for name in rules}
    rng = random.Random(seed)
    for _ in range(orders):
        for by_t in streams.values():
            stream = _order(by_t, rng)
            full_label = majority_vote([a for a, _, _ in stream], RULE).pseudo_label
            for name, confidence in rules.items():
                drawn = len(stream) if name == "full" else _stop_at(stream, round_size, confidence)
                kept = stream[:drawn]
                label = majority_vote([a for a, _, _ in kept], RULE).pseudo_label
                agreeing = {response for a, response, _ in kept if label is not None and a == label}
                t = totals[name]
                t["questions"] += 1
                t["samples"] += drawn
                t["tokens"] += sum(tokens for _, _, tokens in kept)
                t["identical"] += label == full_label
                t["sft_rows"] += len(agreeing)
    full = totals["full"]
    return {
        name: {
            "samples": t["samples"] / full["samples"],
            "tokens": t["tokens"] / full["tokens"],
            "identical": t["identical"] / t["questions"],
            "sft_rows": t["sft_rows"] / max(1, full["sft_rows"]),
            "questions": t["questions"],
        }
        for name, t in totals.items()
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", default="runs/quickstart/teacher_samples", help="recorded teacher samples (folder)")
    p.add_argument("--round-size", type=int, nargs="+", default=[1, 3])
    p.add_argument("--orders", type=int, default=5)
    p.add_argument("--synthetic-questions", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sources = {"GSM8K-like (synthetic)": synthetic_streams(args.synthetic_questions, args.seed)}
    if os.path.isdir(args.samples):
        sources[f"recorded: {args.samples}"] = recorded_streams(args.samples)
    else:
        print(f"{args.samples}: no such folder; recorded streams left out (run `make demo` first)\n")
    print("| streams | round | rule | teacher samples | teacher tokens | labels identical | SFT rows kept |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for source, streams in sources.items():
        for round_size in args.round_size:
            for name, r in replay(streams, round_size, args.orders, args.seed).items():
                cells = [
                    f"{source} ({len(streams)} q x {args.orders} orders)",
                    round_size,
                    name,
                    f"{r['samples']:.1%}",
                    f"{r['tokens']:.1%}",
                    f"{r['identical']:.2%}",
                    f"{r['sft_rows']:.1%}",
                ]
                print("| " + " | ".join(map(str, cells)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
