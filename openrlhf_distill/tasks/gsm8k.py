"""GSM8K: grade-school word problems whose answer is one number.

Extraction rules, tried in order on the response up to any invented continuation (a hallucinated next question
or example, a chat-template token and another turn) and, for a reasoning model, after its `</think>` first:
  hashes        "#### 18", the GSM8K solution format and what our zero-shot prompt asks for
  boxed         "\\boxed{18}", what math-tuned models write whatever they are asked
  answer_is     "the (final) answer is 18", the lm-evaluation-harness chain-of-thought format
  final_answer  "Final answer: 18", or a "**Final Answer**" heading over the answer
  answer_colon  "Answer: 18 apples (6 boxes of 3)", "**Answer:** $18"
  last_number   the last number in the response (on by default; `last_number_fallback=False` turns it off)
The whole response is searched, never only its tail: a teacher that answers early and then keeps checking its
work must still be read.

What a phrase names is its first number, or the result of the arithmetic that follows it ("the answer is
3 x 6 = 18" -> 18). Numbers may be written as words ("eighteen"), mixed numbers ("2 1/2"), scaled numbers
("1.2 million") and fractions ending a sentence ("3/4." is 0.75, not 3). The first "####" is the answer unless
the response then corrects itself ("Wait, ...") and states a new one. A response cut off by the token limit
(finish reason "length") that never stated an answer has none: its last number is an unfinished step.
"""

from __future__ import annotations

import re

from .base import (
    NO_ANSWER,
    ChatMessages,
    Extraction,
    Task,
    boxed_contents,
    gold_field,
    user_message,
)
from .numbers import (
    NUMBER,
    canonical_from_match,
    first_number,
    last_number,
    normalise_text,
    spelled_numbers_to_digits,
)

# Each phrase pattern ends where the number starts; up to 30 characters of non-digits ("$", "**", ": ",
# "approximately ") may sit between the phrase and the number.
_FILLER = r"[^\d]{0,30}?"
_HASHES = re.compile(r"(?<!\#)\#\#\#\#(?!\#)[ \t*]*" + NUMBER.pattern, re.X)
_ANSWER_IS = re.compile(r"\b(?:final\s+)?answer\s+is\b" + _FILLER + NUMBER.pattern, re.X | re.I)
# "Final answer: 18", and the heading "**Final Answer**" or "### Final Answer" with the answer on the next line.
_FINAL_ANSWER = re.compile(r"\bfinal\s+answer[ \t]*(?:\*\*)?[ \t]*(?::|\n)" + _FILLER + NUMBER.pattern, re.X | re.I)
# "Answer: 18", "**Answer:** 18", "Answer (in dollars): 18": the number on the label's line or the next one.
_ANSWER_COLON = re.compile(
    r"\banswer[ \t]*(?:\([^()\n]{0,30}\))?[ \t]*(?:\*\*)?[ \t]*:[ \t*]*(?:\*\*)?(?:\n[ \t>*]*)?"
    + r"[^\d\n]{0,30}?"
    + NUMBER.pattern,
    re.X | re.I,
)
_PARENTHETICAL = re.compile(r"\([^()\n]*\)")
_RESULT = re.compile(r"=[ \t]*" + NUMBER.pattern, re.X)
# The arithmetic after a stated number, up to its last "=": "3 x 6 = ", "12 * 4 = 48 + 2 = ". The number after
# it is the result the phrase names ("the answer is 3 x 6 = 18" is 18, not 3).
_ARITHMETIC = re.compile(
    r"""(?:[ \t]*\)?[ \t]*(?:[-+*/x×÷·]|\\times|\\cdot|\\div)[ \t]*\(?[ \t]*\\?\$?[ \t]*\d[\d,]*(?:\.\d+)?%?[ \t]*\)?)+
        [ \t]*=[ \t]*""",
    re.X,
)
# Words that open a correction: after a first "#### N", a model that writes one of these and then states a new
# answer has revised itself; one that just repeats "#### N" lines (or runs on) has not.
_CORRECTION = re.compile(
    r"""\b(?:wait|actually|oops|hold\s+on|correction|scratch\s+that|on\s+second\s+thought|i\s+made\s+an?\s+
        (?:mistake|error)|mistake|miscalculat\w*|i\s+(?:forgot|missed|misread)|let\s+me\s+(?:re-?check|re-?calculate|
        correct|redo|fix)|re-?calculat\w*|that'?s\s+(?:wrong|incorrect|not\s+right)|(?:is|was)\s+(?:wrong|incorrect))\b""",
    re.X | re.I,
)

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


def _stated_number(text: str, match: re.Match) -> str | None:
    """The canonical number a phrase match names: its number, or the result of arithmetic written after it."""
    while (arithmetic := _ARITHMETIC.match(text, match.end())) and (result := NUMBER.match(text, arithmetic.end())):
        match = result  # "10 * 3 = 30 - 2 = 28": follow the chain to its last result
    return canonical_from_match(match)


def _first_stated_number(text: str) -> str | None:
    """The first number of a short answer ("18 dollars", "3 \\times 6 = 18"), or the result of its arithmetic."""
    for match in NUMBER.finditer(text):
        if (answer := _stated_number(text, match)) is not None:
            return answer
    return None


def _answer_line_result(text: str, match: re.Match) -> str | None:
    """What an "Answer:" line names: the result of its last "=" when it shows arithmetic outside parentheses
    ("Answer: she has 16 - 3 - 4 = 9 eggs, so 9 * 2 = 18 dollars" is 18), else its first number ("Answer: 18
    pencils (3 boxes of 6)")."""
    line_end = text.find("\n", match.end())
    line = _PARENTHETICAL.sub("", text[match.start() : line_end if line_end >= 0 else len(text)])
    if results := list(_RESULT.finditer(line)):
        return _stated_number(line, results[-1])
    return _stated_number(text, match)


def _answers(pattern: re.Pattern, text: str) -> list[tuple[int, str]]:
    """(position, canonical number) of every match of an answer pattern, in order."""
    found = ((match.start(), _stated_number(text, match)) for match in pattern.finditer(text))
    return [(position, answer) for position, answer in found if answer is not None]


class GSM8K(Task):
    name = "gsm8k"
    styles = ("zero_shot_cot", "few_shot")
    unstated_rules = frozenset({"last_number"})

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

    def _read(self, text: str) -> Extraction:
        # Number words ("the answer is eighteen") are read after a phrase; the last-number fallback leaves a lone
        # "one" a word ("she gives one to each of 7 friends" ends with 7, not 1).
        text = normalise_text(text)
        stated = self._read_stated(spelled_numbers_to_digits(text))
        if stated.answer is not None:
            return stated
        if self.last_number_fallback:
            answer = last_number(spelled_numbers_to_digits(text, lone_one=False))
            if answer is not None:
                return Extraction(answer, "last_number")
        return NO_ANSWER

    def _read_stated(self, text: str) -> Extraction:
        """The answer the response states with a marker, by the first rule that finds one."""
        # The FIRST "####": in the GSM8K format it closes the solution, so a teacher writes it once, at the end,
        # and whatever follows (a repeated or invented problem with its own "####") is continuation, not revision,
        # unless the model says it made a mistake and states a new answer (`_revised`).
        hashes = _answers(_HASHES, text)
        if hashes:
            return self._revised(text, hashes[0]) or Extraction(hashes[0][1], "hashes")
        # The LAST box and the LAST phrase: a model that restates or corrects itself means its final statement.
        boxes = boxed_contents(text)
        if boxes and (answer := _first_stated_number(boxes[-1][1])) is not None:
            return Extraction(answer, "boxed")
        for rule, pattern in (("answer_is", _ANSWER_IS), ("final_answer", _FINAL_ANSWER)):
            if answers := _answers(pattern, text):
                return Extraction(answers[-1][1], rule)
        answer_lines = [_answer_line_result(text, match) for match in _ANSWER_COLON.finditer(text)]
        if answer_lines and answer_lines[-1] is not None:
            return Extraction(answer_lines[-1], "answer_colon")
        return NO_ANSWER

    def _revised(self, text: str, first_hashes: tuple[int, str]) -> Extraction | None:
        """The answer stated after a correction that follows the first "####", if there is one."""
        correction = _CORRECTION.search(text, first_hashes[0])
        if correction is None:
            return None
        revised = self._read_stated(text[correction.end() :])
        return revised if revised.answer is not None else None

    def is_equivalent(self, a: str | None, b: str | None) -> bool:
        """Numeric equality; canonical forms already make "18", "18.0" and "$18" the same string."""
        if a is None or b is None:
            return False
        canonical_a, canonical_b = first_number(a), first_number(b)
        return canonical_a is not None and canonical_a == canonical_b
