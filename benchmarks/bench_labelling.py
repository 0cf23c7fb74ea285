"""Labelling throughput and memory, side by side with plain JSON parsing of the same sample file.

Writes a prompts file and a teacher-sample file (GSM8K-style responses, answers spread so that some votes tie or
fall under the threshold), then runs, each in a fresh process so that peak RSS is its own:

- ``parse``: ``json.loads`` of every line, nothing kept (the floor any labeller pays);
- ``label``: ``openrlhf_distill.label.label_samples`` (two streamed passes, extraction, votes, writing).

Reported: samples/s, peak RSS and the label/parse ratios, for two sizes with the SAME number of questions, so
that memory bounded by questions (not samples) shows as a flat peak RSS.

    python benchmarks/bench_labelling.py --questions 10000 --samples-per-question 10 100   # 100k and 1M samples
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

RESPONSES = [
    "Step by step: {a} + {b} = {c}.\n#### {c}",
    "We add {a} and {b} to get {c}. The answer is {c}.",
    "{a} plus {b} is {w}.\n#### {w}",
    "Let me think about the total. {a} and {b} make {c}, so the final answer is ${c}.00",
    "I am not sure how to solve this.",
]


def write_inputs(folder: str, questions: int, per_question: int, seed: int = 0) -> tuple[str, str]:
    rng = random.Random(seed)
    prompts, samples = os.path.join(folder, "prompts.jsonl"), os.path.join(folder, "teacher.jsonl")
    with open(prompts, "w") as p, open(samples, "w") as s:
        for q in range(questions):
            a, b = rng.randint(1, 999), rng.randint(1, 999)
            p.write(json.dumps({"id": q, "task": "gsm8k", "prompt": f"What is {a} + {b}?", "gold": f"#### {a + b}"}))
            p.write("\n")
            for i in range(per_question):
                text = rng.choice(RESPONSES).format(a=a, b=b, c=a + b, w=a + b + rng.choice([1, 10]))
                sample = {
                    "id": q,
                    "source": "teacher",
                    "model": "bench",
                    "temperature": 1.0,
                    "sample_index": i,
                    "response": text,
                    "finish_reason": "stop",
                }
                s.write(json.dumps(sample) + "\n")
    return prompts, samples


def _child(mode: str, prompts: str, samples: str, out: str) -> None:
    start = time.perf_counter()
    if mode == "parse":
        with open(samples) as f:
            for line in f:
                json.loads(line)
    else:
        from openrlhf_distill.label import label_samples

        label_samples(prompts, samples, out)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib}))


def measure(mode: str, prompts: str, samples: str, out: str) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, prompts, samples, out]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--samples-per-question", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    results = []
    for per_question in args.samples_per_question:
        with tempfile.TemporaryDirectory() as folder:
            prompts, samples = write_inputs(folder, args.questions, per_question)
            n = args.questions * per_question
            parse = measure("parse", prompts, samples, os.path.join(folder, "out"))
            label = measure("label", prompts, samples, os.path.join(folder, "out"))
            row = {
                "samples": n,
                "questions": args.questions,
                "file_mib": os.path.getsize(samples) / 2**20,
                "parse_samples_per_s": n / parse["seconds"],
                "label_samples_per_s": n / label["seconds"],
                "parse_peak_rss_mib": parse["peak_rss_mib"],
                "label_peak_rss_mib": label["peak_rss_mib"],
                "label_over_parse_time": label["seconds"] / parse["seconds"],
                "label_over_parse_rss": label["peak_rss_mib"] / parse["peak_rss_mib"],
            }
            results.append(row)
            print(
                f"{n:>9,} samples ({row['file_mib']:.0f} MiB): parse {row['parse_samples_per_s']:>9,.0f}/s "
                f"{row['parse_peak_rss_mib']:.0f} MiB | label {row['label_samples_per_s']:>9,.0f}/s "
                f"{row['label_peak_rss_mib']:.0f} MiB | label/parse time x{row['label_over_parse_time']:.1f}, "
                f"peak RSS x{row['label_over_parse_rss']:.2f}"
            )
    if len(results) > 1:
        growth = results[-1]["label_peak_rss_mib"] / results[0]["label_peak_rss_mib"]
        samples_growth = results[-1]["samples"] / results[0]["samples"]
        print(f"label peak RSS grew x{growth:.2f} while samples grew x{samples_growth:.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
