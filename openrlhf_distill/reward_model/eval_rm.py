"""`openrlhf-distill eval-rm`: how good is the distilled reward model, measured on held-out data.

- pairwise accuracy on held-out pseudo-labelled pairs (``--pairs``: rm_pairs.jsonl rows the RM did not see); in
  every pairwise accuracy here a tie counts half, and ``ties`` gives the share of tied pairs;
- pointwise AUC and expected calibration error of sigmoid(r) on held-out points (``--points``);
- with prompts that carry gold and raw samples (``--prompts`` + ``--samples``), the questions gold can answer:
  pairwise accuracy on gold-labelled pairs (a gold-correct vs a gold-wrong sample of one question), and
  best-of-N: is the RM's top-scored sample right more often than a random sample, and than the majority answer
  of the same N samples? When the questions' task has response styles (``task.styles_of_responses``, the toy
  world's arithmetic: "worked" or "direct", read by ``task.response_style``), the same gold pairs split by pair
  type, ``gold_pairs_by_type``: ``{"worked_vs_direct": {"accuracy", "n"}, ...}``, named "<style of the right
  sample>_vs_<style of the wrong one>", every combination of the styles listed (accuracy null when n = 0). It
  tells a reward model that ranks right answers above wrong ones from one that ranks a style above another. The
  task is each prompt's ``task`` field; questions of a task without styles are left out of it, and with none
  having styles the key is absent.
- with ``--scores-out FILE`` (needs ``--prompts`` + ``--samples``): one JSON line per sample, the RM's raw score
  beside what is known of its correctness: ``{"id", "source", "sample_index", "answer", "score", "gold_correct",
  "pseudo_correct"}``. ``gold_correct`` is true/false where the prompt has gold, null otherwise;
  ``pseudo_correct`` is true/false where ``--votes`` (the ``votes.jsonl`` of ``openrlhf-distill label``) gives
  the question an accepted pseudo-label (it then equals the sample's 0/1 label), null otherwise. Every sample is
  scored, with or without gold; the report (``openrlhf-distill report``) draws its score histograms from it.

Gold is read here for measurement only. The RM is loaded by OpenRLHF's own loader (with the adapter's mean/std
fix) and scored on raw rewards, on the text OpenRLHF's RewardDataset would build (chat template + EOS).
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass

from ..contract import Input, Output
from ..model_folders import check_reward_model
from ..questions import load_questions, question_key, read_samples
from ..records import (
    RM_PAIR,
    RM_POINT,
    VOTE,
    RecordError,
    read_all_records,
    read_records,
    write_json_atomic,
    write_jsonl_atomic,
)
from ..settings import from_args, setting
from ..stats import auc, expected_calibration_error, mean, pair_accuracy
from ..voting import majority_vote
from .scorer import RewardScorer


def pairwise_accuracy(scorer: RewardScorer, pairs: list[dict], prompt_key="prompt") -> dict:
    """How often the chosen response scores above the rejected one (``pair_accuracy``)."""
    chosen = scorer.scores([scorer.text(p[prompt_key], p["chosen"]) for p in pairs])
    rejected = scorer.scores([scorer.text(p[prompt_key], p["rejected"]) for p in pairs])
    return pair_accuracy(list(zip(chosen, rejected, strict=True)))


def _pointwise(scorer: RewardScorer, points: list[dict]) -> dict:
    import math

    rewards = scorer.scores([scorer.text(p["prompt"], p["response"]) for p in points])
    labels = [float(p["label"]) for p in points]
    probabilities = [1 / (1 + math.exp(-r)) for r in rewards]
    return {
        "auc": auc(rewards, [y >= 0.5 for y in labels]),
        "ece": expected_calibration_error(probabilities, labels),
        "mean_reward_label_1": mean([r for r, y in zip(rewards, labels, strict=True) if y >= 0.5]),
        "mean_reward_label_0": mean([r for r, y in zip(rewards, labels, strict=True) if y < 0.5]),
        "n": len(points),
    }


def _read_pseudo_labels(votes: str) -> dict[str, str]:
    """Question key -> accepted pseudo-label, from a votes.jsonl written by `openrlhf-distill label`."""
    return {
        question_key(vote["id"]): vote["pseudo_label"]
        for _, vote in read_records(votes, VOTE)
        if vote["accepted"] and vote.get("pseudo_label") is not None
    }


def _score_samples(scorer: RewardScorer, prompts: str, samples: str, source: str, *, all_questions: bool):
    """Scores samples question by question (one batch run per question); yields (question, rows) with rows of
    (sample, score, gold_correct or None). Without ``all_questions`` only questions with gold are scored."""
    questions = load_questions(prompts)
    by_question = defaultdict(list)
    for sample in read_samples(samples, source, questions, None):
        question = questions[question_key(sample["id"])]
        if question.gold is not None:
            right = sample["answer"] is not None and question.task.is_equivalent(sample["answer"], question.gold)
            by_question[question_key(sample["id"])].append((sample, right))
        elif all_questions:
            by_question[question_key(sample["id"])].append((sample, None))
    for key, rows in by_question.items():
        question = questions[key]
        prompt = question.task.format_prompt(question.record)
        rewards = scorer.scores([scorer.text(prompt, s["response"]) for s, _ in rows])
        yield question, [(s, r, right) for (s, right), r in zip(rows, rewards, strict=True)]


def _styles_of(task) -> tuple[str, ...] | None:
    """The task's response styles, or None for a task without them."""
    styles = getattr(task, "styles_of_responses", None)
    return tuple(styles) if styles else None


def _gold_measures(scored, max_pairs: int, seed: int) -> dict:
    """Gold-labelled pairwise accuracy and best-of-N from the scored samples of the questions that have gold;
    ``gold_pairs_by_type`` too when some question's task has response styles (see the module docstring)."""
    rng = random.Random(seed)
    gold_pairs, best_of_n = [], {"rm_top": [], "random": [], "majority": [], "questions": 0}
    styles: dict[str, None] = {}  # every style met, in the tasks' order (an ordered set)
    typed: dict[str, list[tuple[float, float]]] = defaultdict(list)  # pair type -> (right, wrong) scores
    for question, scored_rows in scored:
        if question.gold is None:
            continue
        rows = [(s, right) for s, _, right in scored_rows]
        rewards = [r for _, r, _ in scored_rows]
        task_styles = _styles_of(question.task)
        if task_styles:
            styles.update(dict.fromkeys(task_styles))
            kinds = [question.task.response_style(s["response"]) for s, _ in rows]
        else:
            kinds = [None] * len(rows)
        good = [(r, kind) for r, (_, right), kind in zip(rewards, rows, kinds, strict=True) if right]
        bad = [(r, kind) for r, (_, right), kind in zip(rewards, rows, kinds, strict=True) if not right]
        combos = [(g, b) for g in good for b in bad]
        rng.shuffle(combos)  # the same shuffle with or without styles: the pairs do not depend on them
        for (g, good_kind), (b, bad_kind) in combos[:max_pairs]:
            gold_pairs.append((g, b))
            if task_styles:
                typed[f"{good_kind}_vs_{bad_kind}"].append((g, b))
        if len(rows) >= 2:
            best_of_n["questions"] += 1
            best_of_n["rm_top"].append(rows[max(range(len(rows)), key=rewards.__getitem__)][1])
            best_of_n["random"].append(sum(right for _, right in rows) / len(rows))
            vote = majority_vote([s["answer"] for s, _ in rows], is_equivalent=question.task.is_equivalent)
            best_of_n["majority"].append(
                vote.accepted and question.task.is_equivalent(vote.pseudo_label, question.gold)
            )
    result = {"gold_pairs": pair_accuracy(gold_pairs)}
    if styles:
        names = [f"{right}_vs_{wrong}" for right in styles for wrong in styles]
        names += sorted(set(typed) - set(names))  # a style outside the task's list (not expected)
        result["gold_pairs_by_type"] = {name: pair_accuracy(typed[name]) for name in names}
    result["best_of_n"] = {
        name: mean([float(v) for v in values]) for name, values in best_of_n.items() if name != "questions"
    }
    result["best_of_n"]["questions"] = best_of_n["questions"]
    return result


def _score_records(scored, pseudo_labels: dict[str, str] | None):
    """The rows of ``--scores-out``, in the order the samples were scored (question by question)."""
    for question, rows in scored:
        label = None if pseudo_labels is None else pseudo_labels.get(question_key(question.id))
        for sample, score, right in rows:
            pseudo = None
            if label is not None:
                pseudo = sample["answer"] is not None and question.task.is_equivalent(sample["answer"], label)
            yield {
                "id": sample["id"],
                "source": sample["source"],
                "sample_index": sample["sample_index"],
                "answer": sample["answer"],
                "score": score,
                "gold_correct": right,
                "pseudo_correct": pseudo,
            }


def evaluate_reward_model(
    model: str,
    *,
    pairs=None,
    points=None,
    prompts=None,
    samples=None,
    source="student",
    max_gold_pairs_per_question=16,
    seed=0,
    out=None,
    scores_out=None,
    votes=None,
) -> dict:
    """Runs the measures its inputs allow (see the module docstring); ``scores_out`` (with ``prompts`` and
    ``samples``) also writes every sample's score, ``votes`` fills in its ``pseudo_correct``."""
    if scores_out and not (prompts and samples):
        raise ValueError("--scores-out needs --prompts and --samples (the samples to score)")
    if votes and not scores_out:
        raise ValueError("--votes is read only for --scores-out (pseudo_correct of each scored sample)")
    # every input is read and checked before the model is loaded
    for name, path in (("--out", out), ("--scores-out", scores_out)):
        if path and os.path.isdir(path):
            raise RecordError(path, None, None, f"{name} names a folder; give a file name")
    check_reward_model(model)
    pseudo_labels = _read_pseudo_labels(votes) if votes else None
    pair_rows = read_all_records(pairs, RM_PAIR) if pairs else None
    point_rows = read_all_records(points, RM_POINT) if points else None
    if prompts and samples:
        load_questions(prompts)  # the samples are read, and checked, while scoring
    scorer = RewardScorer(model)
    report = {"model": model}
    if pair_rows:
        report["pseudo_pairs"] = pairwise_accuracy(scorer, pair_rows)
    if point_rows:
        report["points"] = _pointwise(scorer, point_rows)
    if prompts and samples:
        scored = list(_score_samples(scorer, prompts, samples, source, all_questions=bool(scores_out)))
        report.update(_gold_measures(scored, max_gold_pairs_per_question, seed))
        if scores_out:
            written = write_jsonl_atomic(scores_out, _score_records(scored, pseudo_labels))
            report["scores"] = {"file": scores_out, "n": written}
    if out:
        write_json_atomic(out, report)
    return report


def print_report(report: dict) -> None:
    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    def pairs(r):  # accuracy (n=..., tied share); reports written before ties were counted have no "ties"
        tied = "" if r.get("ties") is None else f", {100 * r['ties']:.0f}% tied"
        return f"{fmt(r['accuracy'])} (n={r['n']}{tied})"

    if "pseudo_pairs" in report:
        r = report["pseudo_pairs"]
        print(f"pairwise accuracy, pseudo-labelled pairs   {pairs(r)}")
    if "gold_pairs" in report:
        r = report["gold_pairs"]
        print(f"pairwise accuracy, gold-labelled pairs     {pairs(r)}")
    for name, r in (report.get("gold_pairs_by_type") or {}).items():
        print(f"  {name + ' (right vs wrong)':<40} {pairs(r)}")
    if "points" in report:
        r = report["points"]
        print(f"pointwise AUC / ECE of sigmoid(r)          {fmt(r['auc'])} / {fmt(r['ece'])} (n={r['n']})")
    if "best_of_n" in report:
        r = report["best_of_n"]
        print(
            f"best-of-N accuracy: RM's top {fmt(r['rm_top'])}, random sample {fmt(r['random'])}, "
            f"majority answer {fmt(r['majority'])} ({r['questions']} questions)"
        )
    if "scores" in report:
        print(f"per-sample scores                          {report['scores']['n']} -> {report['scores']['file']}")


PATHS = (
    Input("model", "model", "the reward model folder", required=True),
    Input("pairs", "file", "held-out pseudo-labelled pairs (rm_pairs.jsonl layout)"),
    Input("points", "file", "held-out labelled points (rm_points.jsonl layout)"),
    Input("prompts", "file", "prompts with gold, for gold pairs and best-of-N"),
    Input("samples", "either", "samples of those prompts (a .jsonl file or a folder)"),
    Input("votes", "file", "votes.jsonl of `openrlhf-distill label`: fills pseudo_correct in --scores_out"),
    Output("out", "file", "write the report here (JSON)"),
    Output(
        "scores_out",
        "file",
        "write every sample's RM score here (JSON Lines: id, source, sample_index, answer, score, gold_correct, "
        "pseudo_correct); needs --prompts and --samples",
    ),
)


@dataclass(frozen=True)
class EvalRMSettings:
    source: str = setting(
        "student",
        "the samples' `source` (--samples holds the teacher's or the student's)",
        choices=("teacher", "student"),
    )
    seed: int = setting(0, "seeds which gold pairs are drawn (at most 16 a question)")


def run(args) -> int:
    settings = from_args(args, EvalRMSettings)
    if not (args.pairs or args.points or (args.prompts and args.samples)):
        raise ValueError("give --pairs, --points, or --prompts with --samples")
    report = evaluate_reward_model(
        args.model,
        pairs=args.pairs,
        points=args.points,
        prompts=args.prompts,
        samples=args.samples,
        source=settings.source,
        seed=settings.seed,
        out=args.out,
        scores_out=args.scores_out,
        votes=args.votes,
    )
    print_report(report)
    if args.out:
        print(f"-> {args.out}")
    else:
        print(json.dumps(report))
    return 0
