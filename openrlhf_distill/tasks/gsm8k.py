"""GSM8K: grade-school word problems whose answer is one number.

Extraction rules, tried in order on the response up to any hallucinated next question:
  hashes        "#### 18", the GSM8K solution format and what our zero-shot prompt asks for
  boxed         "\\boxed{18}", what math-tuned models write whatever they are asked
  answer_is     "the (final) answer is 18", the lm-evaluation-harness chain-of-thought format
  final_answer  "Final answer: 18"
  last_number   the last number in the response (on by default; `last_number_fallback=False` turns it off)
The whole response is searched, never only its tail: a teacher that answers early and then keeps checking its
work must still be read.
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
from .numbers import NUMBER, canonical_from_match, first_number, last_number, normalise_text

# Each phrase pattern ends where the number starts; up to 30 characters of non-digits ("$", "**", ": ",
# "approximately ") may sit between the phrase and the number.
_FILLER = r"[^\d]{0,30}?"
_HASHES = re.compile(r"(?<!\#)\#\#\#\#(?!\#)[ \t*]*" + NUMBER.pattern, re.X)
_ANSWER_IS = re.compile(r"\b(?:final\s+)?answer\s+is\b" + _FILLER + NUMBER.pattern, re.X | re.I)
_FINAL_ANSWER = re.compile(r"\bfinal\s+answer\s*(?:\*\*)?\s*:" + _FILLER + NUMBER.pattern, re.X | re.I)

ZERO_SHOT_INSTRUCTION = (
    "Solve the problem step by step. Then write the final answer, a number only, on its own last line "
    'in the form "#### N".'
)

# lm-evaluation-harness's gsm8k chain-of-thought layout ("Q: ...\nA: ... The answer is N."), with exemplars
# written for this project: evaluations read the same way as published ones, not with the same shots.
FEW_SHOT_EXEMPLARS = (
    (
        "A baker makes 24 muffins and sells 15 of them. How many muffins are left?",
        "The baker starts with 24 muffins and sells 15, so 24 - 15 = 9 are left. The answer is 9.",
    ),
    (
        "Maya reads 12 pages a day for 5 days. How many pages does she read?",
        "Each day she reads 12 pages, and 12 * 5 = 60. The answer is 60.",
    ),
    (
        "A box holds 6 pencils. How many boxes are needed for 40 pencils?",
        "40 / 6 = 6 with 4 pencils left over, so 6 full boxes are not enough and 7 boxes are needed. The answer is 7.",
    ),
    (
        "Tom had $50. He bought a book for $18 and a pen for $3. How much money does he have now?",
        "He spent 18 + 3 = 21 dollars, so he has 50 - 21 = 29 dollars left. The answer is 29.",
    ),
    (
        "A garden has 3 rows of 8 tulips and 2 rows of 5 roses. How many flowers are in the garden?",
        "There are 3 * 8 = 24 tulips and 2 * 5 = 10 roses, so 24 + 10 = 34 flowers. The answer is 34.",
    ),
    (
        "A train travels 60 miles per hour for 2.5 hours. How far does it go?",
        "Distance is speed times time: 60 * 2.5 = 150 miles. The answer is 150.",
    ),
    (
        "Lena is 4 years older than her brother, who is 9. How old will Lena be in 3 years?",
        "Lena is 9 + 4 = 13 now, so in 3 years she will be 13 + 3 = 16. The answer is 16.",
    ),
    (
        "A shirt costs $20 and is on sale for 25% off. What is the sale price in dollars?",
        "25% of 20 is 0.25 * 20 = 5, so the sale price is 20 - 5 = 15 dollars. The answer is 15.",
    ),
)


def _answers(pattern: re.Pattern, text: str) -> list[str]:
    """Canonical numbers of every match of an answer pattern, in order."""
    return [a for a in map(canonical_from_match, pattern.finditer(text)) if a is not None]


class GSM8K(Task):
    name = "gsm8k"
    styles = ("zero_shot_cot", "few_shot")

    def __init__(self, *, last_number_fallback: bool = True):
        self.last_number_fallback = last_number_fallback

    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        if style == "few_shot":
            shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in FEW_SHOT_EXEMPLARS)
            return f"{shots}Q: {question}\nA:"
        return user_message(f"{question}\n\n{ZERO_SHOT_INSTRUCTION}")

    def parse_gold(self, record: dict) -> str:
        """The number after "####" in a GSM8K solution, or the whole gold when it is already just a number."""
        gold = gold_field(self.name, record)
        answer = gold.split("####", 1)[1] if "####" in gold else gold
        canonical = first_number(answer.replace(",", ""))
        if canonical is None:
            raise ValueError(f"{self.name} record {record.get('id')!r}: field 'gold' holds no number: {gold!r}")
        return canonical

    def extract(self, text: str | None) -> Extraction:
        text = cut_at_new_question(normalise_text(text or ""))
        # The FIRST "####": in the GSM8K format it closes the solution, so a teacher writes it once, at the end,
        # and whatever follows (a repeated or invented problem with its own "####") is continuation, not revision.
        hashes = _answers(_HASHES, text)
        if hashes:
            return Extraction(hashes[0], "hashes")
        # The LAST box and the LAST phrase: a model that restates or corrects itself means its final statement.
        boxes = boxed_contents(text)
        if boxes and (answer := first_number(boxes[-1][1])) is not None:
            return Extraction(answer, "boxed")
        for rule, pattern in (("answer_is", _ANSWER_IS), ("final_answer", _FINAL_ANSWER)):
            if answers := _answers(pattern, text):
                return Extraction(answers[-1], rule)
        if self.last_number_fallback and (answer := last_number(text)) is not None:
            return Extraction(answer, "last_number")
        return NO_ANSWER

    def is_equivalent(self, a: str | None, b: str | None) -> bool:
        """Numeric equality; canonical forms already make "18", "18.0" and "$18" the same string."""
        if a is None or b is None:
            return False
        canonical_a, canonical_b = first_number(a), first_number(b)
        return canonical_a is not None and canonical_a == canonical_b
