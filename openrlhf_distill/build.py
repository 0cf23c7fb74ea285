"""Stages 3 and 7: the training sets, in OpenRLHF's formats, from the votes and the labelled samples.

Writes to ``out`` (all at once: a failed build leaves the previous one in place):

- ``sft.jsonl`` (``input``, ``output``): teacher responses labelled at least ``sft_min_label`` (1: they agree
  with the pseudo-label; for judged tasks, the top score), duplicates removed, at most
  ``sft_max_per_question`` per question, in generation order.
- ``rm_pairs.jsonl`` (``prompt``, ``chosen``, ``rejected``, ``meta``): two responses of the SAME question whose
  labels differ by at least ``pair_margin`` (with vote labels: a label-1 against a label-0 response), at most
  ``pairs_per_question`` per question, drawn with a per-question seed and, by default, in turns from
  each mix of sources (teacher/teacher, teacher/student, student/teacher, student/student) so that neither
  source crowds out the other.
- ``rm_points.jsonl`` (``prompt``, ``response``, ``label``, ``meta``): every labelled sample.
- ``rl_prompts.jsonl`` (``input``, ``label``, ``id``, ``distill_label``): accepted questions; ``label`` is the
  pseudo-label ("" for judged tasks, which have none), and the gold answer, where there is one, sits in its own
  ``gold`` field for metrics only. ``distill_label`` is the JSON string the RL reward function reads
  (``records.encode_reward_label``: id, task, pseudo-label, gold).
- ``rl_prompts_all.jsonl`` (with ``--rl.unlabelled PROMPTS``): ``rl_prompts.jsonl`` plus the prompts the teacher
  never answered, with no pseudo-label: for the rewards that need none (``rm``, ``gold``, the controls); the
  ``vote`` and ``hybrid`` rewards read ``rl_prompts.jsonl`` only (``ppo`` refuses a row without a pseudo-label).
- ``dev.jsonl`` (with ``--dev.questions N``): N accepted questions held out of every set above, with their
  pseudo-labels (``records.DEV_QUESTION``), to choose models by agreement with the vote (``selection``). Which
  N: the accepted questions whose ids hash lowest, so the SFT build and every seed's RM build hold out the same.
- ``build_metrics.json``: what was built and what was left out, and why.

Chat format (default): prompts as chat messages and responses as one assistant message, the layout OpenRLHF's
datasets need with ``--data.apply_chat_template`` (its RewardDataset concatenates prompt + chosen as lists).
Plain format: strings, for ``--data.input_template`` training.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass

from .argtypes import int_at_least, number_in
from .contract import Input, Output
from .questions import Question, load_questions, question_key
from .records import (
    LABELLED_SAMPLE,
    SOURCES,
    VOTE,
    RecordError,
    as_messages,
    atomic_output_dir,
    check_output_dir,
    dev_question_row,
    read_records,
    rl_prompt_row,
    rm_pair_row,
    rm_point_row,
    sft_row,
    write_json_atomic,
    write_jsonl_atomic,
)
from .settings import from_args, setting


@dataclass(frozen=True)
class BuildConfig:
    """What goes into the training sets: `build`'s flags (each under the set it shapes: --sft.*, --rm.*, --dev.*,
    --rl.*) and the run config's `build` section are made from these fields."""

    sft_max_per_question: int | None = setting(
        None, "cap on SFT rows per question (default: every distinct agreeing teacher response)",
        check=int_at_least(1), flag_as="sft.max_per_question",
    )  # fmt: skip
    sft_min_label: float = setting(
        1.0, "least label of SFT responses (1: agree with the vote; judge labels score/10, e.g. 0.9)",
        check=number_in(0, 1), flag_as="sft.min_label",
    )  # fmt: skip
    pairs_per_question: int = setting(
        16, "cap on RM pairs per question", check=int_at_least(1), flag_as="rm.pairs_per_question"
    )
    pair_margin: float = setting(
        0.3, "least label gap in a pair (judge: 0.3 = 3 points; vote pairs always pass)",
        check=number_in(0, 1), flag_as="rm.pair_margin",
    )  # fmt: skip
    rm_sources: tuple[str, ...] = setting(
        SOURCES, "samples RM data is built from (teacher: the teacher-only ablation)", comma=True,
        flag_as="rm.sources",
    )  # fmt: skip
    dev_questions: int = setting(
        0, "hold N accepted questions out of every set, with their pseudo-labels, in dev.jsonl (model choice)",
        check=int_at_least(0), flag_as="dev.questions",
    )  # fmt: skip
    unlabelled: str | None = setting(
        None, "prompts the teacher never answered: RL prompts without a pseudo-label, in rl_prompts_all.jsonl",
        flag_as="rl.unlabelled",
    )  # fmt: skip
    seed: int = setting(0, "seeds each question's draw of pairs")
    # by default pairs are drawn in turns from each (chosen source, rejected source) mix
    no_balance_sources: bool = setting(
        False, "draw pairs from all source mixes pooled, not in turns", flag_as="rm.no_balance_sources"
    )
    data_format: str = setting(
        "chat", "chat: messages for --data.apply_chat_template; plain: strings", choices=("chat", "plain"),
        flag_as="data.format",
    )  # fmt: skip


@dataclass(frozen=True)
class Labelled:
    source: str
    sample_index: int
    response: str
    label: float


def _load_votes(path: str, questions: dict) -> dict[str, str | None]:
    """Pseudo-labels of accepted questions, by question key (None for judged questions). Gold fields of a vote
    are not read."""
    labels = {}
    for line, vote in read_records(path, VOTE):
        key = question_key(vote["id"])
        if key not in questions:
            raise RecordError(path, line, "id", f"question id {vote['id']!r} is not in the prompts file")
        if vote["accepted"]:
            labels[key] = vote.get("pseudo_label")
    return labels


def dev_keys(pseudo_labels: dict[str, str | None], count: int) -> set[str]:
    """The ``count`` questions with a pseudo-label whose keys hash lowest: the same whatever the order of the
    files, the seed or the other questions' samples.

    >>> dev_keys({"a": "1", "b": "2", "c": None, "d": "4"}, 2) == dev_keys({"d": "4", "b": "2", "a": "1"}, 2)
    True
    """
    labelled = [key for key, label in pseudo_labels.items() if label is not None]
    if count > len(labelled):
        raise ValueError(
            f"--dev.questions {count}: only {len(labelled)} questions have a pseudo-label to hold out "
            "(judged questions have none)"
        )
    return set(sorted(labelled, key=lambda key: hashlib.sha256(f"dev:{key}".encode()).hexdigest())[:count])


def _unlabelled_rows(path: str, labelled: dict, fmt, default_task: str | None) -> list[dict]:
    """RL prompts without a pseudo-label: questions of ``path`` the teacher never answered."""
    rows = []
    for key, question in load_questions(path, default_task).items():
        if key in labelled:
            raise RecordError(path, None, "id", f"question id {question.record['id']!r} is also a labelled question")
        record = question.record
        row = rl_prompt_row(
            fmt.prompt(question), id=record["id"], task=question.task.name, pseudo_label=None, gold=question.gold
        )
        rows.append(row)
    return rows


def _load_labelled(labels_dir: str, pseudo_labels: dict[str, str]) -> dict[str, list[Labelled]]:
    by_question: dict[str, list[Labelled]] = defaultdict(list)
    for source in SOURCES:
        path = os.path.join(labels_dir, f"{source}.jsonl")
        if not os.path.exists(path):
            continue
        for line, sample in read_records(path, LABELLED_SAMPLE):
            key = question_key(sample["id"])
            if key not in pseudo_labels:
                raise RecordError(
                    path,
                    line,
                    "id",
                    f"labelled sample of question {sample['id']!r}, which has no "
                    "accepted vote in votes.jsonl: the labels folder is inconsistent",
                )
            if sample["source"] != source:
                raise RecordError(path, line, "source", f"{sample['source']!r} sample in {source}.jsonl")
            by_question[key].append(Labelled(source, sample["sample_index"], sample["response"], sample["label"]))
    return by_question


class _Formatter:
    def __init__(self, chat: bool):
        self.chat = chat

    def prompt(self, question: Question):
        record = question.record
        formatted = question.task.format_prompt(record)
        if self.chat:
            return as_messages(formatted)
        if isinstance(formatted, str):
            return formatted
        if len(formatted) == 1 and formatted[0]["role"] == "user":
            return formatted[0]["content"]
        raise ValueError(f"question {record['id']!r}: its prompt is a multi-message chat; build with the chat format")

    def response(self, text: str):
        return [{"role": "assistant", "content": text}] if self.chat else text


def select_sft(samples: list[Labelled], cap: int | None, min_label: float = 1.0) -> tuple[list[str], Counter]:
    """Distinct teacher responses labelled at least ``min_label``, in generation order, at most ``cap``."""
    counts = Counter()
    chosen, seen = [], set()
    for s in sorted(samples, key=lambda s: s.sample_index):
        if s.source != "teacher" or s.label < min_label:
            continue
        text = s.response.strip()
        if text in seen:
            counts["duplicates_removed"] += 1
            continue
        if cap is not None and len(chosen) >= cap:
            counts["over_cap"] += 1
            continue
        seen.add(text)
        chosen.append(s.response)
    return chosen, counts


def select_pairs(samples: list[Labelled], config: BuildConfig, rng: random.Random) -> list[tuple[Labelled, Labelled]]:
    """(chosen, rejected) pairs of one question's samples whose labels differ by at least the margin, each pair of
    texts once."""
    usable = [s for s in samples if s.source in config.rm_sources]
    mixes = []
    for c_source, r_source in itertools.product(config.rm_sources, repeat=2):
        pairs = [
            (c, r)
            for c in usable
            if c.source == c_source
            for r in usable
            if r.source == r_source and c.label - r.label >= config.pair_margin - 1e-9  # 0.7 - 0.4 < 0.3 in floats
        ]
        if pairs:
            rng.shuffle(pairs)
            mixes.append(pairs)
    if config.no_balance_sources:
        pool = [p for pairs in mixes for p in pairs]
        rng.shuffle(pool)
        mixes = [pool]
    seen: set[tuple[str, str]] = set()

    def distinct(pairs):
        for chosen, rejected in pairs:
            texts = (chosen.response.strip(), rejected.response.strip())
            if texts[0] != texts[1] and texts not in seen:
                seen.add(texts)
                yield chosen, rejected

    picked = []
    queues = [distinct(pairs) for pairs in mixes]
    while queues and len(picked) < config.pairs_per_question:
        for queue in list(queues):  # one pair from each mix in turn
            pair = next(queue, None)
            if pair is None:
                queues.remove(queue)
            elif len(picked) < config.pairs_per_question:
                picked.append(pair)
    return picked


def build_datasets(
    prompts: str, labels_dir: str, out: str, config: BuildConfig = BuildConfig(), default_task: str | None = None
) -> dict:
    """Builds the SFT, RM-pair, RM-point and RL-prompt sets; returns the build metrics."""
    check_output_dir(out, "build", [prompts, labels_dir, config.unlabelled])
    if config.sft_max_per_question is not None and config.sft_max_per_question < 1:
        raise ValueError("sft_max_per_question must be >= 1 (or None for no cap)")
    if not 0 < config.pair_margin <= 1:
        raise ValueError(f"pair_margin must be in (0, 1], got {config.pair_margin}")
    if unknown := set(config.rm_sources) - set(SOURCES):
        raise ValueError(f"rm_sources: unknown source(s) {sorted(unknown)}; use {', '.join(SOURCES)}")
    questions = load_questions(prompts, default_task)
    pseudo_labels = _load_votes(os.path.join(labels_dir, "votes.jsonl"), questions)
    labelled = _load_labelled(labels_dir, pseudo_labels)
    fmt = _Formatter(config.data_format == "chat")

    metrics = {"sft": Counter(), "rm_pairs": Counter(), "rm_points": Counter(), "rl_prompts": Counter()}
    held_out = dev_keys(pseudo_labels, config.dev_questions)
    sft, pairs, points, rl, dev = [], [], [], [], []
    for key, question in questions.items():
        record = question.record
        if key not in pseudo_labels:
            metrics["rl_prompts"]["questions_without_pseudo_label"] += 1
            continue
        if key in held_out:
            dev.append(dev_question_row(record, task=question.task.name, pseudo_label=pseudo_labels[key]))
            continue
        prompt = fmt.prompt(question)
        samples = labelled.get(key, [])

        responses, sft_counts = select_sft(samples, config.sft_max_per_question, config.sft_min_label)
        metrics["sft"].update(sft_counts)
        metrics["sft"]["questions_with_rows" if responses else "questions_without_rows"] += 1
        sft += [sft_row(prompt, fmt.response(r), id=record["id"]) for r in responses]

        # A per-question seed: a question's pairs do not change when other questions are added or removed.
        question_pairs = select_pairs(samples, config, random.Random(f"{config.seed}:{key}"))
        if not question_pairs:
            usable = {s.label for s in samples if s.source in config.rm_sources}
            reason = "no_samples" if not usable else "one_label_only" if len(usable) == 1 else "no_pair_over_margin"
            metrics["rm_pairs"][f"questions_without_pairs_{reason}"] += 1
        for chosen, rejected in question_pairs:
            metrics["rm_pairs"][f"{chosen.source}_vs_{rejected.source}"] += 1
            pairs.append(
                rm_pair_row(
                    prompt,
                    fmt.response(chosen.response),
                    fmt.response(rejected.response),
                    id=record["id"],
                    chosen_source=chosen.source,
                    rejected_source=rejected.source,
                )
            )

        for s in samples:
            if s.source in config.rm_sources:
                metrics["rm_points"][f"{s.source}_label_{s.label}"] += 1
                point = rm_point_row(prompt, fmt.response(s.response), s.label, id=record["id"], source=s.source)
                points.append(point)

        # The reward reads the pseudo-label; gold rides along for the RL metrics and the `gold` scheme only.
        rl.append(
            rl_prompt_row(
                prompt, id=record["id"], task=question.task.name, pseudo_label=pseudo_labels[key], gold=question.gold
            )
        )

    sets = {"sft": sft, "rm_pairs": pairs, "rm_points": points, "rl_prompts": rl}
    if config.unlabelled:
        sets["rl_prompts_all"] = rl + _unlabelled_rows(config.unlabelled, questions, fmt, default_task)
    if config.dev_questions:
        sets["dev"] = dev
    summary = {
        "config": {**config.__dict__, "rm_sources": list(config.rm_sources)},
        "rows": {name: len(rows) for name, rows in sets.items()},
        **{name: dict(counts) for name, counts in metrics.items()},
    }
    with atomic_output_dir(out, "build") as partial:
        for name, rows in sets.items():
            write_jsonl_atomic(os.path.join(partial, f"{name}.jsonl"), rows)
        write_json_atomic(os.path.join(partial, "build_metrics.json"), summary)
    return summary


# --- `openrlhf-distill build` ------------------------------------------------------------------------------------


PATHS = (
    Input("prompts", "file", "the prompt records the labels were made from", required=True),
    Input("labels", "folder", "the folder `openrlhf-distill label` wrote", required=True),
    Input("rl.unlabelled", "file", flagless=True),
    Output("out", "folder", "folder for the training sets and build_metrics.json", required=True),
)


def add_own_arguments(p) -> None:
    """Its flags beside its paths and settings (those `cli` makes from PATHS and its settings)."""
    p.add_argument("--task", default=None, help="task of prompts that have no `task` field")


def run(args) -> int:
    config = from_args(args, BuildConfig)
    summary = build_datasets(args.prompts, args.labels, args.out, config, default_task=args.task)
    print(" ".join(f"{name}: {count} rows" for name, count in summary["rows"].items()) + f" -> {args.out}")
    return 0
