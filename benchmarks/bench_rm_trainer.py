"""Training pairs/s of our RM trainer vs OpenRLHF's stock RewardModelTrainer, same pairs, side by side.

Both run through the CPU adapter as separate processes: ``openrlhf.cli.train_rm`` (stock) and
``openrlhf_distill.reward_model.train`` (ours, with ``--distill.rm.pointwise_coef 0`` and no points, i.e. the
same loss). Each process times ``RewardModelTrainer.fit`` itself (our trainer inherits it), so start-up
(imports, DeepSpeed, model load, data checks) is left out and only training (with OpenRLHF's per-epoch eval)
is compared. The issue's target is a ratio ours/stock of at least 0.9. A third line shows ours with the
pointwise term on (as many points as pairs), which does more work per step by design.

    python benchmarks/bench_rm_trainer.py [--pairs 256] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile


def write_data(folder: str, n: int) -> tuple[str, str]:
    rng = random.Random(0)
    pairs, points = [], []
    for _ in range(n):
        a, b = rng.randint(0, 500), rng.randint(0, 500)
        prompt = [{"role": "user", "content": f"what is {a} + {b}? Think step by step."}]
        good = [{"role": "assistant", "content": f"{a} plus {b} makes {a + b}. #### {a + b}"}]
        bad = [{"role": "assistant", "content": f"{a} plus {b} makes {a + b + 7}. #### {a + b + 7}"}]
        pairs.append({"prompt": prompt, "chosen": good, "rejected": bad})
        points.append({"prompt": prompt, "response": rng.choice([good, bad]), "label": rng.choice([0, 1])})
    paths = os.path.join(folder, "pairs.jsonl"), os.path.join(folder, "points.jsonl")
    for path, rows in zip(paths, (pairs, points), strict=True):
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return paths


# Runs MODULE as __main__ with RewardModelTrainer.fit timed; prints the seconds fit took.
TIMED = """
import runpy, sys, time
from openrlhf_distill.compat import boot_install
boot_install()
import openrlhf.trainer.rm_trainer as rm_trainer
fit = rm_trainer.RewardModelTrainer.fit
def timed_fit(self, *args, **kwargs):
    start = time.perf_counter()
    fit(self, *args, **kwargs)
    print("FIT_SECONDS", time.perf_counter() - start, flush=True)
rm_trainer.RewardModelTrainer.fit = timed_fit
module = sys.argv.pop(1)
sys.argv[0] = module
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run(cli, model: str, pairs: str, epochs: int, out: str, extra: list[str]) -> float:
    from openrlhf_distill.compat import launch

    argv = [
        "--model.model_name_or_path",
        model,
        "--data.dataset",
        pairs,
        "--data.prompt_key",
        "prompt",
        "--data.apply_chat_template",
        "--data.max_len",
        "96",
        "--train.batch_size",
        "16",
        "--train.micro_batch_size",
        "8",
        "--train.max_epochs",
        str(epochs),
        "--ds.param_dtype",
        "bf16",
        "--ckpt.output_dir",
        out,
        "--eval.dataset",
        pairs,
        *extra,
    ]
    plan = launch.plan(cli, argv, engine="cpu")
    module_at = plan.command.index("-m")
    command = [plan.command[0], "-c", TIMED, plan.command[module_at + 1], *plan.command[module_at + 2 :]]
    result = subprocess.run(command, env=plan.env, check=True, capture_output=True, text=True)
    return float(next(x for x in result.stdout.splitlines() if x.startswith("FIT_SECONDS")).split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from openrlhf_distill.compat.flags import TRAIN_DISTILL_RM, TRAIN_RM
    from openrlhf_distill.toy.tiny_model import TinyModelSpec, build_tiny_causal_lm

    with tempfile.TemporaryDirectory() as folder:
        spec = TinyModelSpec(
            hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2
        )
        model = build_tiny_causal_lm(os.path.join(folder, "model"), spec)
        pairs, points = write_data(folder, args.pairs)
        sides = {
            "stock": (TRAIN_RM, []),
            "ours_pairwise_only": (TRAIN_DISTILL_RM, ["--distill.rm.pointwise_coef", "0"]),
            "ours_with_points": (TRAIN_DISTILL_RM, ["--distill.rm.points", points]),
        }
        fit_seconds = {name: [] for name in sides}
        for repeat in range(args.repeats):  # interleaved, so that drift in machine load hits every side alike
            for name, (cli, extra) in sides.items():
                out = os.path.join(folder, f"{name}-{repeat}")
                fit_seconds[name].append(run(cli, model, pairs, args.epochs, out, extra))
    rate = {name: args.epochs * args.pairs / statistics.median(times) for name, times in fit_seconds.items()}
    ratio = rate["ours_pairwise_only"] / rate["stock"]
    print(
        f"stock {rate['stock']:.1f} pairs/s | ours, pointwise off {rate['ours_pairwise_only']:.1f} pairs/s | "
        f"ratio {ratio:.3f} (target >= 0.9) | ours with points {rate['ours_with_points']:.1f} pairs/s"
    )
    if args.json:
        result = {"pairs_per_s": rate, "ratio": ratio, "fit_seconds": fit_seconds, "args": vars(args)}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
