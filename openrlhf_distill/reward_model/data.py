"""Checks the RM inputs before OpenRLHF reads them, and writes clean copies beside the checkpoint.

Rows that cannot teach anything are dropped and counted: a pair whose chosen and rejected responses are the
same, an empty response, a prompt so long that ``--data.max_len`` leaves no room for the response (OpenRLHF
truncates on the right and forces the last token to EOS, so both responses would vanish). A label outside
[0, 1] is an error: it means the points file is not what it should be.
"""

from __future__ import annotations

import os

from ..model_folders import check_model_folder
from ..records import (
    ANY_OBJECT,
    RecordError,
    label_problem,
    read_records,
    text_or_messages,
    write_json_atomic,
    write_jsonl_atomic,
)


def _text(path, line, row, name) -> str:
    """The field's text: a string, or the contents of a list of chat messages; anything else is an error (a
    number or null would otherwise read as an empty response and be dropped without a word)."""
    value = _field(path, line, row, name)
    problem = text_or_messages(value)
    if problem:
        raise RecordError(path, line, name, f"{problem}, got {value!r}"[:300])
    return value if isinstance(value, str) else "".join(str(m["content"]) for m in value)


class PromptLength:
    """Token length of a prompt as OpenRLHF will format it (chat template with generation prompt, or plain)."""

    def __init__(self, model_path: str, apply_chat_template: bool, chat_template: str | None = None):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        if chat_template:
            self.tokenizer.chat_template = chat_template
        self.apply_chat_template = apply_chat_template

    def __call__(self, prompt) -> int:
        if prompt is None:
            return 0
        if self.apply_chat_template:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return len(self.tokenizer(text, add_special_tokens=False).input_ids)
        return len(self.tokenizer(prompt).input_ids)


def _field(path, line, row, name):
    if name not in row:
        raise RecordError(path, line, name, "missing")
    return row[name]


def clean_pairs(path: str, *, prompt_key, chosen_key, rejected_key, max_len, prompt_length) -> tuple[list, dict]:
    """The pairs worth training on and the counts of those dropped, by reason."""
    kept, counts = (
        [],
        {"read": 0, "kept": 0, "identical_chosen_rejected": 0, "empty_response": 0, "prompt_too_long": 0},
    )
    for line, row in read_records(path, ANY_OBJECT):
        counts["read"] += 1
        chosen, rejected = _text(path, line, row, chosen_key).strip(), _text(path, line, row, rejected_key).strip()
        prompt = _field(path, line, row, prompt_key) if prompt_key else None
        if not chosen or not rejected:
            counts["empty_response"] += 1
        elif chosen == rejected:
            counts["identical_chosen_rejected"] += 1
        elif prompt_length(prompt) >= max_len - 2:  # 2: at least one response token and the EOS
            counts["prompt_too_long"] += 1
        else:
            kept.append(row)
    counts["kept"] = len(kept)
    return kept, counts


def clean_points(path: str, *, prompt_key, max_len, prompt_length) -> tuple[list, dict]:
    """The labelled responses worth training on and the counts of those dropped, by reason."""
    kept, counts = [], {"read": 0, "kept": 0, "empty_response": 0, "prompt_too_long": 0}
    for line, row in read_records(path, ANY_OBJECT):
        counts["read"] += 1
        label = _field(path, line, row, "label")
        if problem := label_problem(label):
            raise RecordError(path, line, "label", problem)
        response = _text(path, line, row, "response").strip()
        prompt = _field(path, line, row, prompt_key) if prompt_key else None
        if not response:
            counts["empty_response"] += 1
        elif prompt_length(prompt) >= max_len - 2:
            counts["prompt_too_long"] += 1
        else:
            kept.append(row)
    counts["kept"] = len(kept)
    return kept, counts


def prepare(args) -> dict:
    """Cleans the local pairs / eval pairs / points files named in the parsed (flat, dotted) arguments, points
    the arguments at the clean copies, and writes ``distill_rm_data/report.json`` beside the checkpoint. Every
    file is read and checked before anything is written."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    folder = os.path.join(get("ckpt.output_dir") or ".", "distill_rm_data")
    measure = None
    report, clean = {}, {}
    keys = dict(prompt_key=get("data.prompt_key"), max_len=get("data.max_len"))
    check_model_folder(get("model.model_name_or_path"), "--model.model_name_or_path")
    for flag, kind in (("data.dataset", "pairs"), ("eval.dataset", "eval_pairs"), ("distill.rm.points", "points")):
        path = get(flag)
        if not path or not os.path.isfile(path):
            continue  # a hub data set or a mixture: OpenRLHF reads it as is
        measure = measure or PromptLength(
            get("model.model_name_or_path"), get("data.apply_chat_template"), get("data.tokenizer_chat_template")
        )
        if kind == "points":
            rows, counts = clean_points(path, prompt_length=measure, **keys)
        else:
            rows, counts = clean_pairs(
                path,
                chosen_key=get("data.chosen_key"),
                rejected_key=get("data.rejected_key"),
                prompt_length=measure,
                **keys,
            )
        if counts["kept"] == 0:
            dropped = {k: v for k, v in counts.items() if k not in ("read", "kept") and v}
            raise ValueError(f"{path}: no usable rows (read {counts['read']}, dropped {dropped or 'none'})")
        report[kind], clean[flag] = {"file": path, **counts}, (os.path.join(folder, f"{kind}.jsonl"), rows)
    pairs = report.get("pairs", {}).get("kept")
    if pairs is not None and pairs < get("train.batch_size"):
        raise ValueError(
            f"{pairs} usable pairs, fewer than --train.batch_size {get('train.batch_size')}: "
            "OpenRLHF would train zero steps; lower --train.batch_size or add pairs"
        )
    for flag, (out, rows) in clean.items():
        write_jsonl_atomic(out, rows)
        setattr(args, flag, out)
    if report:
        write_json_atomic(os.path.join(folder, "report.json"), report)
        for kind, counts in report.items():
            dropped = {k: v for k, v in counts.items() if k not in ("file", "read", "kept") and v}
            print(
                f"[openrlhf-distill] {kind}: kept {counts['kept']} of {counts['read']} rows"
                + (f", dropped {dropped}" if dropped else ""),
                flush=True,
            )
    return report
