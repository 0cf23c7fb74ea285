"""Stage 0 (with a teacher budget): ``openrlhf-distill split`` cuts the training questions into the ones the
teacher answers and the ones it never sees.

    openrlhf-distill split --prompts prompts_train.jsonl --labelled 200 --out questions/

writes ``questions/labelled.jsonl`` (the first N questions, in file order: the teacher samples, votes on and
labels these) and ``questions/unlabelled.jsonl`` (the rest: RL prompts with no pseudo-label, which only rewards
that need none can use; ``build --rl.unlabelled``). Every record is checked as a prompt record first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .argtypes import int_at_least
from .contract import Input, Output
from .records import PROMPT, RecordError, atomic_output_dir, check_output_dir, read_records, write_jsonl_atomic
from .settings import from_args, setting

LABELLED_FILE, UNLABELLED_FILE = "labelled.jsonl", "unlabelled.jsonl"


def split_questions(prompts: str, labelled: int, out: str) -> dict:
    check_output_dir(out, "split", [prompts])
    records = [record for _, record in read_records(prompts, PROMPT)]
    if labelled >= len(records):
        raise RecordError(
            prompts,
            None,
            None,
            f"--labelled {labelled}: the file holds {len(records)} questions, so none is left unlabelled",
        )
    with atomic_output_dir(out, "split") as partial:
        write_jsonl_atomic(os.path.join(partial, LABELLED_FILE), records[:labelled])
        write_jsonl_atomic(os.path.join(partial, UNLABELLED_FILE), records[labelled:])
    return {"labelled": labelled, "unlabelled": len(records) - labelled}


@dataclass(frozen=True)
class SplitSettings:
    """The teacher's budget: `split`'s --labelled (the run config's data.labelled_questions)."""

    labelled: int = setting(help="how many the teacher answers (the first N)", check=int_at_least(1))


PATHS = (
    Input("prompts", "file", "the training questions (prompt records)", required=True),
    Output("out", "folder", "folder for labelled.jsonl and unlabelled.jsonl", required=True),
)


def run(args) -> int:
    counts = split_questions(args.prompts, from_args(args, SplitSettings).labelled, args.out)
    print(f"{counts['labelled']} questions for the teacher, {counts['unlabelled']} unlabelled -> {args.out}")
    return 0
