"""Stages 2 and 6: the teacher's majority vote per question, and a 0/1 label for every teacher and student sample.

Reads prompts (for each question's task and, for metrics only, its gold answer) and sample files, and writes
to ``out``:

- ``votes.jsonl``: one vote per prompt, in prompt order (see :mod:`openrlhf_distill.voting`);
- ``teacher.jsonl`` / ``student.jsonl``: the samples of accepted questions, with ``answer`` and ``extraction``
  re-read by the task layer and ``label`` 1 (equivalent to the pseudo-label) or 0 (another answer, or none);
- ``metrics.json``: coverage, why questions were dropped, extraction-rule counts and, where prompts carry
  gold, label accuracy, reward accuracy and per-source accuracy.

Labels come from the pseudo-label only: gold answers are read for the metrics and nothing else.
Memory stays bounded by the number of questions, not of samples: teacher files are streamed twice (count
the votes, then label) and samples are never held.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from .contract import Input, Output, add_paths
from .questions import Question, SeenSamples, load_questions, question_key, read_samples
from .records import (
    SOURCES,
    RecordError,
    atomic_output_dir,
    check_output_dir,
    write_json_atomic,
    write_jsonl_atomic,
)
from .voting import DEFAULT_RULE, VoteRule, add_vote_arguments, vote_from_counts, vote_rule_from_args, vote_samples


@dataclass(frozen=True)
class VoteConfig:
    rule: VoteRule = DEFAULT_RULE  # when the winner becomes the pseudo-label
    max_temperature: float | None = None  # only teacher samples at or below it vote (None: all vote)


def _votes_on(sample: dict, config: VoteConfig) -> bool:
    return config.max_temperature is None or sample["temperature"] <= config.max_temperature


class Metrics:
    """Counts for metrics.json; gold enters here and nowhere else."""

    def __init__(self):
        self.samples = {s: Counter() for s in SOURCES}
        self.rules = {s: Counter() for s in SOURCES}
        self.reward_agree = {s: [0, 0] for s in SOURCES}  # [label == gold label, with gold]
        self.correct = {s: [0, 0] for s in SOURCES}  # [answer == gold, with gold]

    def count_sample(self, source: str, sample: dict, question: Question, label: int | None) -> None:
        counts = self.samples[source]
        counts["read"] += 1
        self.rules[source][sample["extraction"] or "none"] += 1
        if sample["answer"] is None:
            counts["no_answer"] += 1
        if label is None:
            counts["excluded_no_pseudo_label"] += 1
        else:
            counts[f"label_{label}"] += 1
        if question.gold is not None:
            right = sample["answer"] is not None and question.task.is_equivalent(sample["answer"], question.gold)
            self.correct[source][0] += right
            self.correct[source][1] += 1
            if label is not None:
                self.reward_agree[source][0] += label == int(right)
                self.reward_agree[source][1] += 1

    def summary(self, questions: dict[str, Question], config: VoteConfig) -> dict:
        votes = [q.vote for q in questions.values()]
        accepted = [q for q in questions.values() if q.vote.accepted]
        with_gold = [q for q in accepted if q.gold is not None]
        label_right = sum(q.task.is_equivalent(q.vote.pseudo_label, q.gold) for q in with_gold)
        histogram = Counter(min(int(v.majority_ratio * 10), 9) for v in votes if v.valid)

        def share(pair):
            return {"value": pair[0] / pair[1] if pair[1] else None, "n": pair[1]}

        return {
            "vote_config": dataclasses.asdict(config),
            "questions": {
                "total": len(votes),
                "accepted": len(accepted),
                "coverage": len(accepted) / len(votes),
                "dropped": dict(Counter(v.reason for v in votes if not v.accepted)),
            },
            "majority_ratio_histogram": {f"{b / 10:.1f}-{(b + 1) / 10:.1f}": histogram[b] for b in range(10)},
            "label_accuracy": share([label_right, len(with_gold)]),
            "samples": {s: dict(c) for s, c in self.samples.items() if c},
            "extraction_rules": {s: dict(c) for s, c in self.rules.items() if c},
            "sample_accuracy_vs_gold": {s: share(p) for s, p in self.correct.items() if p[1]},
            "reward_accuracy": {s: share(p) for s, p in self.reward_agree.items() if p[1]},
        }


def _label(sample: dict, question: Question) -> int | None:
    vote = question.vote
    if not vote.accepted:
        return None
    agrees = sample["answer"] is not None and question.task.is_equivalent(sample["answer"], vote.pseudo_label)
    return int(agrees)


def label_samples(
    prompts: str,
    teacher: str,
    out: str,
    *,
    student: str | None = None,
    config: VoteConfig = VoteConfig(),
    default_task: str | None = None,
) -> dict:
    """Runs the vote and writes votes, labelled samples and metrics to ``out``; returns the metrics."""
    check_output_dir(out, "label", [prompts, teacher, student])
    questions = load_questions(prompts, default_task)

    seen = SeenSamples()
    read = voting = 0
    for sample in read_samples(teacher, "teacher", questions, seen):
        read += 1
        if _votes_on(sample, config):
            voting += 1
            question = questions[question_key(sample["id"])]
            question.total += 1
            if sample["answer"] is not None:
                question.counts[sample["answer"]] += 1
    # Nothing to vote on is a mistake (a wrong folder, a sampling run that wrote nothing), not 0% coverage.
    if read == 0:
        raise RecordError(teacher, None, None, "no teacher samples in it (sample records, JSON Lines)")
    if voting == 0:
        raise RecordError(
            teacher,
            None,
            None,
            f"none of its {read} teacher samples votes: every temperature is "
            f"above --vote.max_temperature {config.max_temperature}",
        )
    if student is not None and next(read_samples(student, "student", questions, None), None) is None:
        raise RecordError(student, None, None, "no student samples in it (sample records, JSON Lines)")
    for question in questions.values():
        question.vote = vote_from_counts(
            question.counts, question.total, config.rule, is_equivalent=question.task.is_equivalent
        )
        question.counts = Counter()  # no longer needed: keep memory to the votes

    metrics = Metrics()

    def labelled(path: str, source: str, seen_check: SeenSamples | None) -> Iterator[dict]:
        for sample in read_samples(path, source, questions, seen_check):
            question = questions[question_key(sample["id"])]
            label = _label(sample, question)
            metrics.count_sample(source, sample, question, label)
            if label is not None:
                yield {**sample, "label": label}

    def vote_records():
        for question in questions.values():
            record = question.vote.to_record(question.id)
            if question.gold is not None:
                label_correct = question.vote.accepted and question.task.is_equivalent(
                    question.vote.pseudo_label, question.gold
                )
                record["label_correct"] = bool(label_correct)
            yield record

    with atomic_output_dir(out, "label") as partial:
        write_jsonl_atomic(os.path.join(partial, "teacher.jsonl"), labelled(teacher, "teacher", None))
        if student is not None:
            write_jsonl_atomic(os.path.join(partial, "student.jsonl"), labelled(student, "student", SeenSamples()))
        write_jsonl_atomic(os.path.join(partial, "votes.jsonl"), vote_records())
        summary = metrics.summary(questions, config)
        write_json_atomic(os.path.join(partial, "metrics.json"), summary)
    return summary


# --- `openrlhf-distill label` ------------------------------------------------------------------------------------


PATHS = (
    Input("prompts", "file", "prompt records (JSON Lines)", required=True),
    Input("teacher_samples", "either", "teacher sample records: a .jsonl file or a folder", required=True),
    Input("student_samples", "either", "student sample records: a .jsonl file or a folder"),
    Output("out", "folder", "folder for votes.jsonl, teacher/student.jsonl, metrics.json", required=True),
)


def add_arguments(p) -> None:
    add_paths(p, PATHS)
    p.add_argument("--task", default=None, help="task of prompts that have no `task` field")
    add_vote_arguments(p)


def run(args) -> int:
    config = VoteConfig(rule=vote_rule_from_args(args), max_temperature=vote_samples(args))
    metrics = label_samples(
        args.prompts,
        args.teacher_samples,
        args.out,
        student=args.student_samples,
        config=config,
        default_task=args.task,
    )
    print_label_metrics(metrics)
    return 0


def _share(entry: dict | None) -> str:
    if not entry or entry["value"] is None:
        return "-"
    return f"{entry['value']:.1%} (n={entry['n']})"


def print_label_metrics(metrics: dict) -> None:
    """The label metrics as a plain-text table, printed at the end of `label` (metrics.json holds the same)."""
    q = metrics["questions"]
    dropped = ", ".join(f"{reason} {n}" for reason, n in sorted(q["dropped"].items())) or "none"
    rows = [
        ("questions", f"{q['total']}"),
        ("pseudo-labelled (coverage)", f"{q['accepted']} ({q['coverage']:.1%})"),
        ("dropped", dropped),
        ("label accuracy vs gold", _share(metrics["label_accuracy"])),
    ]
    for source, counts in metrics["samples"].items():
        rows.append((f"{source} samples", ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))))
        rows.append(
            (
                f"{source} extraction rules",
                ", ".join(f"{k} {v}" for k, v in sorted(metrics["extraction_rules"][source].items())),
            )
        )
        rows.append((f"{source} accuracy vs gold", _share(metrics["sample_accuracy_vs_gold"].get(source))))
        rows.append((f"{source} reward accuracy", _share(metrics["reward_accuracy"].get(source))))
    histogram = " ".join(f"{n}" for n in metrics["majority_ratio_histogram"].values())
    rows.append(("majority ratio histogram (0.0-1.0, 10 bins)", histogram))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
