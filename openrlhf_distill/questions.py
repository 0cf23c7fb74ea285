"""The questions a run is about and the samples drawn for them, as every stage reads them: prompt records by
question key, each with its task (the one reader of its answers) and, for metrics only, its gold answer; sample
records checked against those questions, their answers re-read by the task layer.

Sampling, voting and labelling, judging and building the training sets start here (evaluation reaches it
through sampling).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .records import PROMPT, SAMPLE, RecordError, jsonl_files, read_records
from .tasks import Task, get_task

if TYPE_CHECKING:  # the vote is the next stage's: a question only carries it once labelled
    from .voting import Vote


@dataclass
class Question:
    id: str | int  # as the prompts file spells it
    record: dict  # the prompt record, `task` filled in
    task: Task  # one instance per task name, shared (the math task caches parsed answers)
    gold: str | None  # canonical; metrics only
    counts: Counter = field(default_factory=Counter)  # votes by canonical answer
    total: int = 0  # voting samples, unreadable ones included
    vote: Vote | None = None


class SeenSamples:
    """Finds a repeated (id, source, sample_index) with one bit per index, not one object per sample."""

    def __init__(self):
        self._bits: dict[tuple[str, str], bytearray] = {}

    def add(self, key: str, source: str, index: int) -> bool:
        """Marks the sample; returns False when it was already there."""
        bits = self._bits.setdefault((key, source), bytearray())
        byte, bit = divmod(index, 8)
        if byte >= len(bits):
            bits.extend(bytes(byte - len(bits) + 1))
        if bits[byte] >> bit & 1:
            return False
        bits[byte] |= 1 << bit
        return True


def question_key(question_id) -> str:
    """Prompt ids may be JSON strings or integers; samples refer to them either way."""
    return str(question_id)


def load_questions(prompts_path: str, default_task: str | None = None) -> dict[str, Question]:
    """The prompts by question key; ``default_task`` fills in records that have no ``task``."""
    questions: dict[str, Question] = {}
    tasks: dict[str, Task] = {}
    for line, record in read_records(prompts_path, PROMPT):
        key = question_key(record["id"])
        if key in questions:
            raise RecordError(prompts_path, line, "id", f"question id {record['id']!r} appears twice")
        if record.get("task") is None:
            if default_task is None:
                raise RecordError(prompts_path, line, "task", "missing (or give the stage a default task: --task)")
            record = {**record, "task": default_task}
        if record["task"] not in tasks:
            try:
                tasks[record["task"]] = get_task(record["task"])
            except ValueError as error:
                raise RecordError(prompts_path, line, "task", str(error)) from None
        task = tasks[record["task"]]
        gold = None
        if record.get("gold") is not None:
            try:
                gold = task.parse_gold(record)
            except ValueError as error:
                raise RecordError(prompts_path, line, "gold", str(error)) from None
        questions[key] = Question(id=record["id"], record=record, task=task, gold=gold)
    if not questions:
        raise RecordError(prompts_path, None, None, "no prompts")
    return questions


def read_samples(path: str, source: str, questions: dict[str, Question], seen: SeenSamples | None) -> Iterator[dict]:
    """Checked samples of one source, with the answer re-read by the task layer (the one place answers are read)."""
    for file in jsonl_files(path):
        for line, sample in read_records(file, SAMPLE):
            if sample["source"] != source:
                raise RecordError(file, line, "source", f"{sample['source']!r} sample among the {source} samples")
            question = questions.get(question_key(sample["id"]))
            if question is None:
                raise RecordError(file, line, "id", f"question id {sample['id']!r} is not in the prompts file")
            if seen is not None and not seen.add(question_key(sample["id"]), source, sample["sample_index"]):
                key = (sample["id"], source, sample["sample_index"])
                raise RecordError(file, line, "sample_index", f"sample (id, source, sample_index) = {key!r} repeats")
            extraction = question.task.extract(sample["response"], finish_reason=sample.get("finish_reason"))
            yield {**sample, "answer": extraction.answer, "extraction": extraction.rule}
