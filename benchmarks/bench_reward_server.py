"""Throughput of the batching reward-model server vs the same server scoring one sample at a time, side by side.

The hybrid reward function sends one sample per request (OpenRLHF calls it once per sample, from many
threads). Both servers are the `serve-rm` command (``openrlhf_distill.rewards.server.run``) in its own process,
on the same RM, differing only in ``--max-batch-size`` (64 vs 1); the same single-sample requests come from
``--threads`` client threads in this process. Reported per mode: requests/s (median of ``--repeats``),
latency p50 / p95, and the server's batch-size histogram; then the batched/unbatched ratio.

The RM is random (``build_tiny_reward_model``) on a causal LM of the tests' tiny size by default (2 layers,
hidden 64; ``--hidden-size``/``--layers`` or ``--model`` for others). On a CPU a forward pass costs about the
same per token whatever the batch, so what batching saves here is the fixed cost of each call (Python, op
dispatch, HTTP round trips waiting on the worker). On a GPU a batch of 64 also costs little more compute than
one of 1; that gain is not measured here.

Fairness (``--big N``, 0 to skip): one client sends N samples in one request; while they are scored, another
sends one-sample requests one after another. Reported: their latency against the same request on an idle
server, and against the large request's own time (what a one-sample request would wait if batches were formed
in arrival order).

    python benchmarks/bench_reward_server.py [--requests 2000] [--threads 48] [--repeats 3] [--big 4000]
                                             [--huge-mb 15] [--only-huge] [--model RM_DIR]

Huge text (``--huge-mb``): one request holding one text of that many MB, and one-sample requests sent while it
is scored, on a server that cuts texts to a prefix before tokenising and on one that tokenises them whole.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SERVE = """
import sys
from openrlhf_distill.reward_model import scorer
if sys.argv[1] == "--tokenise-whole":  # as before the prefix cut: every text tokenised whole, then cut
    scorer.CHARS_PER_TOKEN = 10 ** 12
    del sys.argv[1]
from openrlhf_distill.cli import main
sys.exit(main(["serve-rm", *sys.argv[1:]]))
"""


def build_rm(folder: str, hidden_size: int, layers: int) -> str:
    from openrlhf_distill.toy.tiny_model import TinyModelSpec, build_tiny_causal_lm, build_tiny_reward_model

    spec = TinyModelSpec(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=hidden_size // 32,
        num_key_value_heads=1,
    )
    base = build_tiny_causal_lm(f"{folder}/base", spec)
    return build_tiny_reward_model(f"{folder}/rm", base_dir=base)


def requests_of(n: int, seed: int) -> list[tuple[str, str]]:
    rng, items = random.Random(seed), []
    for i in range(n):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        question = f"question {i}: what is {a} + {b}? Think step by step."
        prompt = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        items.append((prompt, f"{a} plus {b} makes {a + b}. " * rng.randint(1, 4) + f"#### {a + b}<|im_end|>"))
    return items


class ServerProcess:
    def __init__(
        self, model: str, max_batch_size: int, max_wait_ms: float, torch_threads: int | None, whole: bool = False
    ):
        command = [
            sys.executable,
            "-c",
            SERVE,
            *(["--tokenise-whole"] if whole else []),
            "--model",
            model,
            "--port",
            "0",
            "--max_batch_size",
            str(max_batch_size),
            "--max_wait_ms",
            str(max_wait_ms),
        ]
        env = (
            {**os.environ, "OMP_NUM_THREADS": str(torch_threads)} if torch_threads else None
        )  # see --server-torch-threads
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for line in self.process.stdout:
            if line.startswith("reward-model server at "):
                self.url = line.split()[3]
                return
        raise RuntimeError("the server did not start")

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def load(url: str, items: list[tuple[str, str]], threads: int) -> tuple[float, list[float]]:
    from openrlhf_distill.rewards.server import score

    def one(item):
        start = time.perf_counter()
        score(url, [item[0]], [item[1]], timeout=300)
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        latencies = list(pool.map(one, items))
    return time.perf_counter() - start, latencies


def measure(model: str, max_batch_size: int, args) -> dict:
    server = ServerProcess(model, max_batch_size, args.max_wait_ms, args.server_torch_threads)
    try:
        load(server.url, requests_of(200, seed=99), args.threads)  # warm-up: threads, allocator, first batches
        before = server.stats()["batch_size_histogram"]
        rates, latencies = [], []
        for repeat in range(args.repeats):
            seconds, repeat_latencies = load(server.url, requests_of(args.requests, seed=repeat), args.threads)
            rates.append(args.requests / seconds)
            latencies += repeat_latencies
        after = server.stats()["batch_size_histogram"]
    finally:
        server.stop()
    histogram = {int(k): v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    latencies.sort()
    return {
        "max_batch_size": max_batch_size,
        "requests_per_s": statistics.median(rates),
        "all_requests_per_s": rates,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2],
        "latency_p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
        "mean_batch_size": sum(k * v for k, v in histogram.items()) / sum(histogram.values()),
        "batch_size_histogram": histogram,
    }


def fairness(model: str, args) -> dict:
    """Latency of one-sample requests on an idle server and while a request of ``args.big`` samples is scored."""
    from openrlhf_distill.rewards.server import score

    def timed(prompts, responses):
        start = time.perf_counter()
        score(server.url, prompts, responses, timeout=600)
        return time.perf_counter() - start

    server = ServerProcess(model, 64, args.max_wait_ms, args.server_torch_threads)
    try:
        small = requests_of(20, seed=7)
        idle = [timed([p], [r]) for p, r in small[:10]]
        big = requests_of(args.big, seed=8)
        with ThreadPoolExecutor(max_workers=1) as pool:
            large = pool.submit(timed, [p for p, _ in big], [r for _, r in big])
            time.sleep(0.5)  # the large request is being scored
            loaded = [timed([p], [r]) for p, r in small[10:]]
            large_seconds = large.result()
    finally:
        server.stop()
    return {
        "big": args.big,
        "idle_p50_ms": 1000 * statistics.median(idle),
        "loaded_p50_ms": 1000 * statistics.median(loaded),
        "loaded_max_ms": 1000 * max(loaded),
        "large_request_s": large_seconds,
    }


def huge_text(model: str, args, whole: bool) -> dict:
    """Latency of one-sample requests while one request holding one text of ``args.huge_mb`` MB is scored; with
    ``whole`` the server tokenises every text whole before cutting it (as before the prefix cut)."""
    from openrlhf_distill.rewards.server import score

    def timed(prompts, responses):
        start = time.perf_counter()
        score(server.url, prompts, responses, timeout=600)
        return time.perf_counter() - start

    words = "the quick brown fox jumps over the lazy dog and counts 1 2 3 ".split()
    rng = random.Random(3)
    text = " ".join(rng.choice(words) for _ in range(int(args.huge_mb * 1e6 / 5)))
    server = ServerProcess(model, 64, args.max_wait_ms, args.server_torch_threads, whole=whole)
    try:
        small = requests_of(20, seed=7)
        idle = [timed([p], [r]) for p, r in small[:10]]
        with ThreadPoolExecutor(max_workers=1) as pool:
            large = pool.submit(timed, ["Question: "], [text])
            time.sleep(1.0)  # its body is read and its text being tokenised
            loaded = [timed([p], [r]) for p, r in small[10:]]
            large_seconds = large.result()
    finally:
        server.stop()
    return {
        "mode": "tokenised whole" if whole else "prefix cut",
        "mb": args.huge_mb,
        "idle_p50_ms": 1000 * statistics.median(idle),
        "loaded_p50_ms": 1000 * statistics.median(loaded),
        "loaded_max_ms": 1000 * max(loaded),
        "huge_request_s": large_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--model", default=None, help="an RM folder (default: build a random one)")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument(
        "--server-torch-threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS of the server process (0: torch's choice). One by default: the clients need a "
        "core too, and on a 2-core machine torch's spinning threads stall each forward pass when they do not "
        "get both cores",
    )
    parser.add_argument("--big", type=int, default=4000, help="samples of the large request (fairness; 0: skip)")
    parser.add_argument("--huge-mb", type=float, default=15.0, help="MB of the one huge text (its fairness; 0: skip)")
    parser.add_argument("--only-huge", action="store_true", help="measure only the huge text, both ways")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        model = args.model or build_rm(folder, args.hidden_size, args.layers)
        huge = [huge_text(model, args, whole) for whole in (False, True)] if args.huge_mb else []
        for row in huge:
            print(
                f"one-sample requests while one {row['mb']:g} MB text is scored ({row['mode']}): p50 "
                f"{row['loaded_p50_ms']:.0f} ms (max {row['loaded_max_ms']:.0f}), idle p50 {row['idle_p50_ms']:.0f} "
                f"ms; the huge request took {row['huge_request_s']:.1f} s"
            )
        if len(huge) == 2:
            ratio = huge[1]["loaded_max_ms"] / huge[0]["loaded_max_ms"]
            print(f"longest small-request wait, tokenised whole / prefix cut: x{ratio:.1f}")
        if args.only_huge:
            return
        results = [measure(model, size, args) for size in (64, 1)]
        fair = fairness(model, args) if args.big else None
    for row in results:
        print(
            f"max_batch_size {row['max_batch_size']:>2}: {row['requests_per_s']:7.1f} requests/s "
            f"(runs {', '.join(f'{r:.0f}' for r in row['all_requests_per_s'])}), latency p50 "
            f"{row['latency_p50_ms']:.0f} ms p95 {row['latency_p95_ms']:.0f} ms, mean batch "
            f"{row['mean_batch_size']:.1f}"
        )
    ratio = results[0]["requests_per_s"] / results[1]["requests_per_s"]
    print(
        f"batched / one at a time: x{ratio:.2f} requests/s ({args.requests} requests x {args.repeats}, "
        f"{args.threads} client threads)"
    )
    print(f"batch sizes (batched): {results[0]['batch_size_histogram']}")
    if fair:
        print(
            f"one-sample requests while a {fair['big']}-sample request is scored: p50 {fair['loaded_p50_ms']:.0f} ms "
            f"(max {fair['loaded_max_ms']:.0f}), idle p50 {fair['idle_p50_ms']:.0f} ms: "
            f"x{fair['loaded_p50_ms'] / fair['idle_p50_ms']:.1f}; the large request took "
            f"{fair['large_request_s']:.1f} s (x{1000 * fair['large_request_s'] / fair['loaded_p50_ms']:.0f} the "
            "small one's wait: what arrival order would cost)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"results": results, "ratio": ratio, "fairness": fair, "huge_text": huge, "settings": vars(args)},
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
