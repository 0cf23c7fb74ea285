"""MMLU-Pro: multiple choice with up to ten options, lettered A to J; the answer is one letter.

Extraction looks for explicit answer statements only, and takes the LAST one in the response (up to any
hallucinated next question), because models revise themselves ("the answer is (B). Wait, ... the answer
is (D)."). Statements read, in any case:
  answer_is       "the answer is (X)", "the correct answer is X", "the answer is option X"
  answer_colon    "Answer: X", "**Final Answer:** (X)"
  correct_choice  "the correct choice is X", "the best option is X"
  boxed           "\\boxed{X}"
There is no fallback: a response without a statement has no answer (None), never a guessed or random letter.
A bare letter must stand alone: "I think" or "a bit" are words, not options; see `_read_letter`.

Options come from `record["meta"]["options"]` (our prompt records) or else `record["options"]` (the layout of
the Hugging Face dataset), a list of at most ten strings.
"""

from __future__ import annotations

import re

from .base import (
    NO_ANSWER,
    ChatMessages,
    Extraction,
    Task,
    boxed_contents,
    cut_at_new_question,
    gold_field,
    user_message,
)

LETTERS = "ABCDEFGHIJ"

_STATEMENTS = (
    ("answer_is", re.compile(r"\banswer\s+is\b", re.I)),
    ("answer_colon", re.compile(r"\banswer\s*(?:\*\*)?\s*:", re.I)),
    ("correct_choice", re.compile(r"\b(?:correct|right|best)\s+(?:choice|option)\s+is\b", re.I)),
)
# What may follow a statement: markup, then "(X)", "[X]" or a bare X that is not the start of a word ("It", "I'm").
_LETTER = re.compile(
    r"[\s:*$]*(?:(?:option|choice)\s+)?(?:\\text(?:bf)?\{)?(?:\(([A-J])\)|\[([A-J])\]|([A-J])(?![\w'\u2019]))", re.I
)
# After a bare lowercase letter or a bare "I", only the end of the statement may follow ("is I.", "is b)").
_STATEMENT_END = re.compile(r"[*}$]*\s*(?:$|[.,;:!?)\]\n])")
_BOXED_LETTER = re.compile(r"[\s(]*(?:\\text(?:bf)?\{)?\s*\(?([A-J])\)?\s*\}?[\s).]*", re.I)

ZERO_SHOT_INSTRUCTION = (
    'Think step by step, then finish your response with "The answer is (X)", where X is the letter of the '
    "correct option."
)
FEW_SHOT_HEADER = (
    "The following are multiple choice questions (with answers) about {subject}. Think step by step and then "
    'finish your answer with "the answer is (X)" where X is the correct letter choice.\n\n'
)
# lm-evaluation-harness's MMLU-Pro layout ("Question:\n...\nOptions:\nA. ...\nAnswer: Let's think step by step.")
# with exemplars written for this project: published evaluations use five per subject from the validation split.
FEW_SHOT_EXEMPLARS = (
    (
        "Which planet is closest to the Sun?",
        ["Venus", "Mercury", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune", "Pluto", "The Moon"],
        "Mercury orbits nearest the Sun, inside the orbit of Venus. The answer is (B).",
    ),
    (
        "What is 15% of 80?",
        ["8", "10", "12", "15", "16", "20", "24", "6", "18", "14"],
        "15% of 80 is 0.15 * 80 = 12. The answer is (C).",
    ),
    (
        "How many sides does a decagon have?",
        ["6", "7", "8", "9", "11", "12", "5", "4", "10", "3"],
        'The prefix "deca" means ten, so a decagon has 10 sides, which is option I. The answer is (I).',
    ),
)


def _read_letter(text: str, position: int) -> str | None:
    """The option letter a statement names, read from `position`, right after its phrase, or None."""
    match = _LETTER.match(text, position)
    if not match:
        return None
    if match[1] or match[2]:
        return (match[1] or match[2]).upper()
    letter = match[3]
    if (letter.islower() or letter == "I") and not _STATEMENT_END.match(text, match.end()):
        return None  # "the answer is a bit...", "the answer is I think": words of running text, not options
    return letter.upper()


def format_options(options: list[str]) -> str:
    return "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, options, strict=False))


class MMLUPro(Task):
    name = "mmlu_pro"
    styles = ("zero_shot_cot", "few_shot")

    def _options(self, record: dict) -> list[str]:
        options = (record.get("meta") or {}).get("options", record.get("options"))
        if not isinstance(options, list) or not 1 <= len(options) <= len(LETTERS):
            raise ValueError(
                f"{self.name} record {record.get('id')!r}: field 'meta.options' (or 'options') must be a list of "
                f"1 to {len(LETTERS)} option strings, got {options!r}"
            )
        return [str(option).strip() for option in options]

    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        body = f"Question:\n{question}\nOptions:\n{format_options(self._options(record))}\n"
        if style == "few_shot":
            subject = (record.get("meta") or {}).get("category") or "various subjects"
            shots = "".join(
                f"Question:\n{q}\nOptions:\n{format_options(o)}\nAnswer: Let's think step by step. {a}\n\n"
                for q, o, a in FEW_SHOT_EXEMPLARS
            )
            return f"{FEW_SHOT_HEADER.format(subject=subject)}{shots}{body}Answer: Let's think step by step."
        return user_message(f"{body}\n{ZERO_SHOT_INSTRUCTION}")

    def parse_gold(self, record: dict) -> str:
        """The gold letter; datasets store it as a letter ("C") or as an index into the options (2)."""
        gold = record.get("gold")
        if isinstance(gold, int) and not isinstance(gold, bool):
            if 0 <= gold < len(LETTERS):
                return LETTERS[gold]
        elif (letter := gold_field(self.name, record).upper()) in LETTERS and len(letter) == 1:
            return letter
        raise ValueError(
            f"{self.name} record {record.get('id')!r}: field 'gold' must be a letter A-J or an index 0-9, got {gold!r}"
        )

    def extract(self, text: str | None) -> Extraction:
        text = cut_at_new_question(text or "")
        found = []  # (position, letter, rule) of every explicit statement
        for rule, pattern in _STATEMENTS:
            for match in pattern.finditer(text):
                if letter := _read_letter(text, match.end()):
                    found.append((match.start(), letter, rule))
        for position, content in boxed_contents(text):
            if box := _BOXED_LETTER.fullmatch(content):
                found.append((position, box[1].upper(), "boxed"))
        if not found:
            return NO_ANSWER
        _, letter, rule = max(found)
        return Extraction(letter, rule)

    def is_equivalent(self, a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and a.strip().upper() == b.strip().upper()
