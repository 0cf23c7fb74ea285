"""`openrlhf-distill eval-rm`: how good is the distilled reward model, measured on held-out data.

- pairwise accuracy on held-out pseudo-labelled pairs (``--pairs``: rm_pairs.jsonl rows the RM did not see);
- pointwise AUC and expected calibration error of sigmoid(r) on held-out points (``--points``);
- with prompts that carry gold and raw samples (``--prompts`` + ``--samples``), the questions gold can answer:
  pairwise accuracy on gold-labelled pairs (a gold-correct vs a gold-wrong sample of one question), and
  best-of-N: is the RM's top-scored sample right more often than a random sample, and than the majority answer
  of the same N samples?

Gold is read here for measurement only. The RM is loaded by OpenRLHF's own loader (with the adapter's mean/std
fix) and scored on raw rewards, on the text OpenRLHF's RewardDataset would build (chat template + EOS).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

from ..compat.formats import reward_model_input
from ..labelling import load_questions, question_key, read_samples
from ..records import ANY_OBJECT, read_records, write_json_atomic
from ..voting import majority_vote


class RewardScorer:
    """Scores texts with an OpenRLHF reward model, loaded by OpenRLHF's own loader (with the adapter's fixes).

    ``normalize``: rewards come back as (raw - mean) / std with the ``mean``/``std`` stored in the checkpoint's
    config.json, as OpenRLHF's PPO gives them with ``--reward.normalize_enable`` (the RL reward server uses it,
    so that a hybrid reward mixes the RM with a 0/1 vote reward on a known scale). Evaluation uses raw rewards.
    """

    def __init__(self, model_dir: str, batch_size: int = 16, normalize: bool = False):
        from ..compat import boot_install

        boot_install()  # among the patches: the fix that refills mean/std from config.json after loading
        from openrlhf.models import get_llm_for_sequence_regression
        from transformers import AutoTokenizer

        self.model = get_llm_for_sequence_regression(
            model_dir, "reward", normalize_reward=normalize, attn_implementation="eager", param_dtype="bf16"
        ).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        self.batch_size = batch_size

    @property
    def eos_token(self) -> str:
        return self.tokenizer.eos_token

    def text(self, prompt, response) -> str:
        """Chat prompts (message lists) through the chat template, as training with --data.apply_chat_template;
        plain strings concatenated, as training without it."""
        if isinstance(prompt, list):
            reply = response if isinstance(response, list) else [{"role": "assistant", "content": response}]
            messages = prompt + reply
            text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        else:
            text = prompt + (response if isinstance(response, str) else response[-1]["content"])
        return reward_model_input(text, self.tokenizer.eos_token)

    def scores(self, texts: list[str]) -> list[float]:
        import torch

        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                                   add_special_tokens=False)  # fmt: skip
            with torch.no_grad():
                out += self.model(batch.input_ids, attention_mask=batch.attention_mask).float().tolist()
        return out


def auc(scores: list[float], labels: list[int]) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half)."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def expected_calibration_error(probabilities: list[float], labels: list[float], bins: int = 10) -> float:
    """Mean |observed label - predicted probability| over equal-width bins, weighted by bin size."""
    groups = defaultdict(list)
    for p, y in zip(probabilities, labels, strict=True):
        groups[min(int(p * bins), bins - 1)].append((p, y))
    return sum(abs(sum(y for _, y in g) - sum(p for p, _ in g)) for g in groups.values()) / len(probabilities)


def pairwise_accuracy(scorer: RewardScorer, pairs: list[dict], prompt_key="prompt") -> dict:
    """Share of pairs whose chosen response scores above the rejected one."""
    chosen = scorer.scores([scorer.text(p[prompt_key], p["chosen"]) for p in pairs])
    rejected = scorer.scores([scorer.text(p[prompt_key], p["rejected"]) for p in pairs])
    wins = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    return {"accuracy": wins / len(pairs), "n": len(pairs)}


def _pointwise(scorer: RewardScorer, points: list[dict]) -> dict:
    import math

    rewards = scorer.scores([scorer.text(p["prompt"], p["response"]) for p in points])
    labels = [float(p["label"]) for p in points]
    probabilities = [1 / (1 + math.exp(-r)) for r in rewards]
    return {
        "auc": auc(rewards, [y >= 0.5 for y in labels]),
        "ece": expected_calibration_error(probabilities, labels),
        "mean_reward_label_1": _mean([r for r, y in zip(rewards, labels, strict=True) if y >= 0.5]),
        "mean_reward_label_0": _mean([r for r, y in zip(rewards, labels, strict=True) if y < 0.5]),
        "n": len(points),
    }


def _mean(values):
    return sum(values) / len(values) if values else None


def _gold_measures(scorer: RewardScorer, prompts: str, samples: str, source: str, max_pairs: int, seed: int) -> dict:
    questions = load_questions(prompts)
    by_question = defaultdict(list)
    for sample in read_samples(samples, source, questions, None):
        question = questions[question_key(sample["id"])]
        if question.gold is not None:
            right = sample["answer"] is not None and question.task.is_equivalent(sample["answer"], question.gold)
            by_question[question_key(sample["id"])].append((sample, right))
    rng = random.Random(seed)
    gold_pairs, best_of_n = [], {"rm_top": [], "random": [], "majority": [], "questions": 0}
    for key, rows in by_question.items():
        question = questions[key]
        prompt = question.task.format_prompt(question.record)
        texts = [scorer.text(prompt, s["response"]) for s, _ in rows]
        rewards = scorer.scores(texts)
        good = [r for r, (_, right) in zip(rewards, rows, strict=True) if right]
        bad = [r for r, (_, right) in zip(rewards, rows, strict=True) if not right]
        combos = [(g, b) for g in good for b in bad]
        rng.shuffle(combos)
        gold_pairs += combos[:max_pairs]
        if len(rows) >= 2:
            best_of_n["questions"] += 1
            best_of_n["rm_top"].append(rows[max(range(len(rows)), key=rewards.__getitem__)][1])
            best_of_n["random"].append(sum(right for _, right in rows) / len(rows))
            vote = majority_vote([s["answer"] for s, _ in rows], is_equivalent=question.task.is_equivalent)
            best_of_n["majority"].append(
                vote.accepted and question.task.is_equivalent(vote.pseudo_label, question.gold)
            )
    result = {"gold_pairs": {"accuracy": _mean([g > b for g, b in gold_pairs]), "n": len(gold_pairs)}}
    result["best_of_n"] = {name: _mean([float(v) for v in values]) for name, values in best_of_n.items()
                           if name != "questions"}  # fmt: skip
    result["best_of_n"]["questions"] = best_of_n["questions"]
    return result


def evaluate_reward_model(model: str, *, pairs=None, points=None, prompts=None, samples=None, source="student",
                          max_gold_pairs_per_question=16, seed=0, out=None) -> dict:  # fmt: skip
    scorer = RewardScorer(model)
    report = {"model": model}
    if pairs:
        report["pseudo_pairs"] = pairwise_accuracy(scorer, [row for _, row in read_records(pairs, ANY_OBJECT)])
    if points:
        report["points"] = _pointwise(scorer, [row for _, row in read_records(points, ANY_OBJECT)])
    if prompts and samples:
        report.update(_gold_measures(scorer, prompts, samples, source, max_gold_pairs_per_question, seed))
    if out:
        write_json_atomic(out, report)
    return report


def print_report(report: dict) -> None:
    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    if "pseudo_pairs" in report:
        r = report["pseudo_pairs"]
        print(f"pairwise accuracy, pseudo-labelled pairs   {fmt(r['accuracy'])} (n={r['n']})")
    if "gold_pairs" in report:
        r = report["gold_pairs"]
        print(f"pairwise accuracy, gold-labelled pairs     {fmt(r['accuracy'])} (n={r['n']})")
    if "points" in report:
        r = report["points"]
        print(f"pointwise AUC / ECE of sigmoid(r)          {fmt(r['auc'])} / {fmt(r['ece'])} (n={r['n']})")
    if "best_of_n" in report:
        r = report["best_of_n"]
        print(f"best-of-N accuracy: RM's top {fmt(r['rm_top'])}, random sample {fmt(r['random'])}, "
              f"majority answer {fmt(r['majority'])} ({r['questions']} questions)")  # fmt: skip


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="the reward model folder")
    p.add_argument("--pairs", default=None, help="held-out pseudo-labelled pairs (rm_pairs.jsonl layout)")
    p.add_argument("--points", default=None, help="held-out labelled points (rm_points.jsonl layout)")
    p.add_argument("--prompts", default=None, help="prompts with gold, for gold pairs and best-of-N")
    p.add_argument("--samples", default=None, help="samples of those prompts (a .jsonl file or a folder)")
    p.add_argument("--source", choices=["teacher", "student"], default="student")
    p.add_argument("--out", default=None, help="write the report here (JSON)")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    if not (args.pairs or args.points or (args.prompts and args.samples)):
        raise ValueError("give --pairs, --points, or --prompts with --samples")
    report = evaluate_reward_model(args.model, pairs=args.pairs, points=args.points, prompts=args.prompts,
                                   samples=args.samples, source=args.source, seed=args.seed, out=args.out)  # fmt: skip
    print_report(report)
    if args.out:
        print(f"-> {args.out}")
    else:
        print(json.dumps(report))
    return 0
