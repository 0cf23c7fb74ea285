"""The record formats of the pipeline (JSON Lines), how they are read, checked and written.

Every stage reads its inputs through :func:`read_records`, which names the file, the line and the field of
anything wrong, and writes through :func:`write_jsonl_atomic`, which renames a complete temporary file into
place so a killed stage never leaves a half-written output behind.

- prompt: ``id``, ``prompt`` (a string or chat messages), ``task``, optional ``gold`` (metrics only, never
  training), optional ``meta``.
- sample: ``id``, ``source`` (teacher | student), ``model``, ``temperature``, ``sample_index``, ``response``,
  ``finish_reason``, ``answer`` (canonical, or null), ``extraction`` (the rule that matched, or null).
- labelled sample: a sample plus ``label`` (1 agrees with the question's pseudo-label, 0 does not; a judge's
  score / 10 for open-ended tasks, with ``score`` beside it).
- vote: ``id``, ``pseudo_label``, ``counts``, ``valid``, ``total``, ``majority_ratio``, ``accepted``,
  ``reason`` (why it was not accepted), and ``label_correct`` when the prompt has gold.

The four training sets ``build`` writes, in OpenRLHF's formats (made by the ``*_row`` functions below; their
readers take the column names from OpenRLHF's ``--data.*_key`` flags, so they check fields by those names):

- SFT row (``sft.jsonl``): ``input`` (the prompt), ``output`` (a response), ``meta`` {``id``}.
- RM pair (``rm_pairs.jsonl``): ``prompt``, ``chosen``, ``rejected``, ``meta`` {``id``, ``chosen_source``,
  ``rejected_source``}.
- RM point (``rm_points.jsonl``): ``prompt``, ``response``, ``label`` (the sample's 0/1), ``meta`` {``id``,
  ``source``}.
- RL prompt (``rl_prompts.jsonl``): ``input``, ``label`` (the pseudo-label, "" when none), ``id``, ``gold`` when
  known, and ``distill_label``: what the RL reward function reads (see :func:`encode_reward_label`).

Vocabulary: ``pseudo_label`` is a question's vote answer; a sample's ``label`` is 1 when it agrees with it, 0
when not. The RL prompt's ``label`` column keeps OpenRLHF's name for the answer column (``--data.label_key``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

SOURCES = ("teacher", "student")


class RecordError(ValueError):
    """A record that cannot be used, located by file, line (1-based) and field."""

    def __init__(self, path: str, line: int | None, field_name: str | None, problem: str):
        self.path, self.line, self.field, self.problem = path, line, field_name, problem
        where = path + (f":{line}" if line is not None else "") + (f" field '{field_name}'" if field_name else "")
        super().__init__(f"{where}: {problem}")


CHAT_ROLES = ("system", "user", "assistant", "tool")  # what chat templates know; another role is a typo


def _is_messages(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(m, dict) and m.get("role") in CHAT_ROLES and "content" in m for m in value)
    )


def text_or_messages(value) -> str | None:
    """What is wrong with a prompt or response field (None: nothing): a string or a list of chat messages."""
    if isinstance(value, str) or _is_messages(value):
        return None
    return (
        "must be a string or a non-empty list of chat messages ({'role': ..., 'content': ...}; roles: "
        f"{', '.join(CHAT_ROLES)})"
    )


def _string(value) -> str | None:
    return None if isinstance(value, str) else f"must be a string, got {type(value).__name__}"


def _id(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return f"must be a non-empty string or an integer, got {value!r}"
    return None


def _source(value) -> str | None:
    return None if value in SOURCES else f"must be one of {', '.join(SOURCES)}, got {value!r}"


def _number(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return None if ok else f"must be a number >= 0, got {value!r}"


def _index(value) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else f"must be an integer >= 0, got {value!r}"


def _optional_string(value) -> str | None:
    return None if value is None or isinstance(value, str) else f"must be a string or null, got {value!r}"


def label_problem(value) -> str | None:
    """What is wrong with a sample's or an RM point's label (None: nothing): 0/1 from a vote, a judge's score / 10
    in between."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
    return None if ok else f"must be a number in [0, 1] (1 = agrees with the pseudo-label), got {value!r}"


def _bool(value) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _dict(value) -> str | None:
    return None if isinstance(value, dict) else f"must be an object, got {type(value).__name__}"


@dataclass(frozen=True)
class Schema:
    name: str
    required: dict[str, Callable] = field(default_factory=dict)  # field -> check returning a problem or None
    optional: dict[str, Callable] = field(default_factory=dict)

    def check(self, record, path: str, line: int | None) -> dict:
        if not isinstance(record, dict):
            raise RecordError(path, line, None, f"a {self.name} record must be a JSON object")
        for name, check in self.required.items():
            if name not in record:
                raise RecordError(path, line, name, f"missing (a {self.name} record needs {', '.join(self.required)})")
            problem = check(record[name])
            if problem:
                raise RecordError(path, line, name, problem)
        for name, check in self.optional.items():
            if name in record and record[name] is not None:
                problem = check(record[name])
                if problem:
                    raise RecordError(path, line, name, problem)
        return record


# `task` may be left out when the stage is given a default task (--task).
PROMPT = Schema("prompt", {"id": _id, "prompt": text_or_messages}, {"task": _string, "meta": _dict})
SAMPLE = Schema(
    "sample",
    {
        "id": _id,
        "source": _source,
        "model": _string,
        "temperature": _number,
        "sample_index": _index,
        "response": _string,
    },
    {"finish_reason": _optional_string, "answer": _optional_string, "extraction": _optional_string},
)
LABELLED_SAMPLE = Schema("labelled sample", {**SAMPLE.required, "label": label_problem}, SAMPLE.optional)
# The reward model's training sets, as `build` writes them (rm_pairs.jsonl, rm_points.jsonl).
RM_PAIR = Schema(
    "RM pair", {"prompt": text_or_messages, "chosen": text_or_messages, "rejected": text_or_messages}, {"meta": _dict}
)
RM_POINT = Schema(
    "RM point", {"prompt": text_or_messages, "response": text_or_messages, "label": label_problem}, {"meta": _dict}
)
# Checks only that a line is a JSON object, for files whose fields the reader checks itself, by name.
ANY_OBJECT = Schema("JSON object")
# A dev question (``dev.jsonl``, written by ``build``): a question the vote labelled that no stage trains on,
# with its pseudo-label; models are chosen by their agreement with these (``selection``), never by gold.
DEV_QUESTION = Schema(
    "dev question", {"id": _id, "prompt": text_or_messages, "pseudo_label": _string}, {"task": _string, "meta": _dict}
)
VOTE = Schema(
    "vote",
    {"id": _id, "counts": _dict, "valid": _index, "total": _index, "accepted": _bool},
    {"pseudo_label": _optional_string},
)


def read_records(path: str, schema: Schema) -> Iterator[tuple[int, dict]]:
    """Yields (line number, record) for each non-blank line of a JSON Lines file, checked against ``schema``."""
    if not os.path.isfile(path):
        found = "a folder, not a file" if os.path.isdir(path) else "no such file"
        raise RecordError(path, None, None, f"{found} (expected {schema.name} records, JSON Lines)")
    with open(path, "rb") as f:  # bytes, decoded line by line, so that bad UTF-8 is reported with its line
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise RecordError(path, number, None, f"not UTF-8 text (byte {error.start + 1} of the line)") from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise RecordError(path, number, None, f"malformed JSON: {error.msg} at column {error.colno}") from None
            yield number, schema.check(record, path, number)


def read_text_file(path: str, what: str) -> str:
    """A text file a user wrote (a rubric, a template) whole; errors name the file: missing, a folder, not UTF-8."""
    if not os.path.isfile(path):
        found = "a folder, not a file" if os.path.isdir(path) else "no such file"
        raise RecordError(path, None, None, f"{found} (expected {what})")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise RecordError(path, line, None, f"not UTF-8 text ({what})") from None


def read_all_records(path: str, schema: Schema) -> list[dict]:
    """Every record of a JSON Lines file (``read_records``); a file with none is an error, not an empty set."""
    rows = [row for _, row in read_records(path, schema)]
    if not rows:
        raise RecordError(path, None, None, f"the file holds no {schema.name} records")
    return rows


def jsonl_files(path: str) -> list[str]:
    """A JSON Lines file, or the sorted ``*.jsonl`` files of a folder (generation stages write shards)."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".jsonl"))
        if not files:
            raise RecordError(path, None, None, "folder holds no .jsonl files")
        return files
    return [path]


def write_jsonl_atomic(path: str, records: Iterable[dict]) -> int:
    """Writes records to ``path`` through a temporary file renamed into place; returns how many were written."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return count


def write_text_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file renamed into place (a reader never sees half)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def file_sha256(path: str) -> str:
    """A file's content digest (what a sample folder was made from; what an output held when we wrote it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: str, value) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# Written into every folder that atomic_output_dir fills: the command that wrote it. A folder is replaced whole
# only when it is empty or a previous output of the same command, so a mistyped --out never deletes a user's files.
OUTPUT_MARKER = ".openrlhf-distill-output"


def read_output_marker(path: str) -> dict | None:
    """The marker of folder ``path`` (the command that wrote it, and what the output contract records), or None."""
    try:
        with open(os.path.join(path, OUTPUT_MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _output_owner(path: str) -> str | None:
    return (read_output_marker(path) or {}).get("command")


def is_inside(inner: str, outer: str) -> bool:
    """Whether path ``inner`` is ``outer`` or lies in it (links resolved)."""
    inner, outer = os.path.realpath(inner), os.path.realpath(outer)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def refuse_inputs_inside(path: str, command: str, inputs: Iterable[str | None]) -> None:
    """Refuses an output folder that is, or holds, one of ``command``'s inputs."""
    for given in inputs:
        if given and is_inside(given, path):
            raise RecordError(
                path,
                None,
                None,
                f"the output folder is, or holds, an input of `{command}` ({given}); choose another output folder",
            )


def check_output_dir(path: str, command: str, inputs: Iterable[str | None] = ()) -> None:
    """Refuses, before any work, an output folder that ``command`` may not replace whole: one that holds one of
    its ``inputs`` (or is one), a file, or a non-empty folder that is not an earlier output of ``command``."""
    refuse_inputs_inside(path, command, inputs)
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise RecordError(path, None, None, "the output path is a file; choose a folder")
    entries = sorted(os.listdir(path))
    owner = _output_owner(path)
    if not entries or owner == command:
        return
    written_by = f"written by `{owner}`" if owner else "not written by openrlhf-distill"
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise RecordError(
        path,
        None,
        None,
        f"`{command}` replaces its output folder whole, and this one holds files "
        f"{written_by} ({len(entries)}: {shown}); choose a new or empty folder, or remove it "
        "yourself",
    )


# A folder being written: a trainer's output while it runs (the pipeline renames it when the trainer finishes), or
# a command's outputs before they replace the folder asked for (``.partial-PID``). Never a finished result.
PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_output_dir(path: str, command: str) -> Iterator[str]:
    """Yields a temporary folder beside ``path`` to write ``command``'s outputs into; on success it replaces
    ``path`` whole, on failure it is removed and ``path`` keeps what it held before. ``path`` must pass
    :func:`check_output_dir` (commands call that first too, before their work)."""
    check_output_dir(path, command)
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}{PARTIAL_SUFFIX}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        yield partial
        with open(os.path.join(partial, OUTPUT_MARKER), "w", encoding="utf-8") as f:
            json.dump({"command": command}, f)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    previous = f"{path}.previous-{os.getpid()}"
    if os.path.exists(path):
        os.replace(path, previous)
    os.replace(partial, path)
    shutil.rmtree(previous, ignore_errors=True)


def as_messages(prompt) -> list[dict]:
    """A prompt as chat messages: a plain string becomes one user message."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]


# --- The reward label: what the RL stage's reward function receives for each prompt ---------------------------
#
# OpenRLHF hands reward_func the raw value of the dataset column named by --data.label_key. Ours is
# ``distill_label``: a JSON *string* (HF datasets would turn a JSON object column into a struct and fill missing
# keys with None across rows; a string survives unchanged) holding the question's id, task, pseudo-label and
# gold answer. Gold is carried for the logged metrics and the `gold` scheme only.

REWARD_LABEL_FIELD = "distill_label"


@dataclass(frozen=True)
class RewardLabel:
    """One prompt's reward label. ``label`` is the pseudo-label (None: the question has none), ``gold`` the gold
    answer (None: unknown), ``task`` the task name (None: the reward config's task applies)."""

    id: str | int | None = None
    task: str | None = None
    label: str | None = None
    gold: str | None = None
    from_plain_string: bool = False  # decoded from a bare label, not from our JSON: see decode_reward_label


def _plain_answer(value) -> str | None:
    """An answer as a string: None and "" mean none; numbers (datasets store them) become their text."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return (value.strip() or None) if isinstance(value, str) else value


def encode_reward_label(*, id: str | int | None, task: str | None, label: str | None, gold=None) -> str:
    """The ``distill_label`` string of one RL prompt: JSON of {"id", "task", "label", "gold"}, nulls for none."""
    fields = {"id": id, "task": task, "label": _plain_answer(label), "gold": _plain_answer(gold)}
    decode_reward_label(fields)  # the same checks as on reading: never write what cannot be read back
    return json.dumps(fields, ensure_ascii=False)


def decode_reward_label(value) -> RewardLabel:
    """Reads a reward label, in any of three forms:

    - our JSON string (``encode_reward_label``), recognised by its opening ``{"``;
    - a dict with the same keys (``label`` required; ``id``, ``task``, ``gold`` optional);
    - a plain string (or a number), meaning the label itself, for a user's own dataset with a pseudo-label
      column (``from_plain_string`` is then True: the `gold` scheme reads such a value as the gold answer).
      A plain string is never parsed as JSON otherwise: "7" stays the string "7", "{1, 2}" stays a set.

    Anything else is a ValueError naming the field and what was expected.
    """
    where = f"reward label (--data.label_key, normally '{REWARD_LABEL_FIELD}')"
    if isinstance(value, str) and value.lstrip().startswith('{"'):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{where}: looks like JSON but is malformed ({error.msg} at column {error.colno}); "
                f"expected an object with keys id, task, label, gold"
            ) from None
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a JSON object with keys id, task, label, gold")
    if isinstance(value, dict):
        if "label" not in value:
            raise ValueError(
                f"{where} field 'label': missing (expected keys id, task, label, gold; got {sorted(value)})"
            )
        answer = lambda v: v is None or (isinstance(v, str | int | float) and not isinstance(v, bool))
        checks = {
            "id": lambda v: v is None or _id(v) is None,
            "task": lambda v: v is None or isinstance(v, str),
            "label": answer,
            "gold": answer,
        }
        expected = {
            "id": "a non-empty string, an integer or null",
            "task": "a task name or null",
            "label": "a string, a number or null",
            "gold": "a string, a number or null",
        }
        for name, ok in checks.items():
            if not ok(value.get(name)):
                raise ValueError(f"{where} field '{name}': must be {expected[name]}, got {value.get(name)!r}")
        return RewardLabel(
            id=value.get("id"),
            task=value.get("task") or None,
            label=_plain_answer(value["label"]),
            gold=_plain_answer(value.get("gold")),
        )
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return RewardLabel(label=_plain_answer(value), from_plain_string=True)
    raise ValueError(
        f"{where}: must be a JSON string of {{id, task, label, gold}}, an object with those keys, or a "
        f"plain label string; got {type(value).__name__} {value!r}"
    )


# --- The training sets' rows, as `build` writes them ------------------------------------------------------------


def sft_row(prompt, response, *, id: str | int) -> dict:
    """One SFT example: the prompt and a teacher response that agrees with the vote."""
    return {"input": prompt, "output": response, "meta": {"id": id}}


def rm_pair_row(prompt, chosen, rejected, *, id: str | int, chosen_source: str, rejected_source: str) -> dict:
    """One preference pair of the same question: ``chosen`` is labelled higher than ``rejected``."""
    meta = {"id": id, "chosen_source": chosen_source, "rejected_source": rejected_source}
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "meta": meta}


def rm_point_row(prompt, response, label: float, *, id: str | int, source: str) -> dict:
    """One labelled sample, for the pointwise (classification) term of the RM loss."""
    return {"prompt": prompt, "response": response, "label": label, "meta": {"id": id, "source": source}}


def dev_question_row(record: dict, *, task: str, pseudo_label: str) -> dict:
    """One dev question: the prompt record as given (its gold, if any, left out: dev questions choose models and
    must not carry gold) with its task and the vote's pseudo-label."""
    return {"id": record["id"], "prompt": record["prompt"], "task": task, "pseudo_label": pseudo_label}


def rl_prompt_row(prompt, *, id: str | int, task: str, pseudo_label: str | None, gold=None) -> dict:
    """One RL prompt. ``label`` holds the pseudo-label ("" when none) and ``gold`` (metrics only) the gold answer
    where known; ``distill_label`` is what the reward function reads (:func:`encode_reward_label`)."""
    row = {"input": prompt, "label": pseudo_label or "", "id": id}
    if gold is not None:
        row["gold"] = gold
    row[REWARD_LABEL_FIELD] = encode_reward_label(id=id, task=task, label=pseudo_label, gold=gold)
    return row
