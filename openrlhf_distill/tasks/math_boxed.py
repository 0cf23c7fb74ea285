"""Competition math (MATH, MATH-500 and the like): the answer is a LaTeX expression in the last `\\boxed{}`.

Extraction rules, in order, on the response up to any invented continuation (see `Task.extract`):
  boxed         the LAST `\\boxed{...}` or `\\fbox{...}` (braces balanced, so `\\boxed{\\frac{1}{2}}` is whole)
  final_answer  "Final Answer: The final answer is $X$", the Minerva format lm-evaluation-harness prompts for
The canonical answer is the LaTeX itself with whitespace collapsed; equivalence ("\\frac12" = "0.5" = "1/2")
is decided by math-verify, Hugging Face's maintained verifier, not by home-made sympy code.
Named `math_boxed` so that no module called `math` can shadow the standard library's; the task is "math".
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from .base import (
    NO_ANSWER,
    ChatMessages,
    Extraction,
    Task,
    boxed_contents,
    gold_field,
    user_message,
)

_FINAL_ANSWER = re.compile(r"final\s+answer\s+is\s*\$(.+?)\$", re.I | re.S)
# math-verify bounds parsing and comparison with signal.alarm, which Python allows in the main thread only:
# elsewhere (a thread pool labelling samples, a Ray actor's worker thread) its default raises ValueError.
# So the bound applies in the main thread and is off in other threads, where math-verify cannot apply it.
TIMEOUT_SECONDS = 5

ZERO_SHOT_INSTRUCTION = "Solve the problem step by step, and put your final answer within \\boxed{}."
# lm-evaluation-harness's Minerva math layout ("Problem:\n...\n\nSolution:" ending "Final Answer: The final
# answer is $X$. I hope it is correct."), with exemplars written for this project.
FEW_SHOT_EXEMPLARS = (
    (
        "What is the value of $3^4 - 2^5$?",
        "We have $3^4 = 81$ and $2^5 = 32$, so the difference is $81 - 32 = 49$.",
        "49",
    ),
    (
        "Solve for $x$: $2x + 7 = 19$.",
        "Subtracting 7 from both sides gives $2x = 12$, and dividing by 2 gives $x = 6$.",
        "6",
    ),
    (
        "What is the probability of rolling an even number with a fair six-sided die?",
        "Three of the six faces (2, 4 and 6) are even, so the probability is $\\frac{3}{6} = \\frac{1}{2}$.",
        "\\frac{1}{2}",
    ),
    (
        "Simplify $\\sqrt{50}$.",
        "Since $50 = 25 \\cdot 2$, we get $\\sqrt{50} = \\sqrt{25}\\sqrt{2} = 5\\sqrt{2}$.",
        "5\\sqrt{2}",
    ),
)


def normalise_latex(text: str) -> str:
    return " ".join(text.split())


def _timeout() -> int | None:
    return TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=65536)
def _parsed(answer: str) -> tuple:
    """math-verify's parse of one canonical answer, cached: a vote compares each answer with many others."""
    from math_verify import parse

    return tuple(parse(f"\\boxed{{{answer}}}", parsing_timeout=_timeout()))


class MathBoxed(Task):
    name = "math"
    styles = ("zero_shot_cot", "few_shot")

    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        if style == "few_shot":
            shots = "".join(
                f"Problem:\n{p}\n\nSolution:\n{s}\nFinal Answer: The final answer is ${a}$. I hope it is correct.\n\n"
                for p, s, a in FEW_SHOT_EXEMPLARS
            )
            return f"{shots}Problem:\n{question}\n\nSolution:"
        return user_message(f"{question}\n\n{ZERO_SHOT_INSTRUCTION}")

    def parse_gold(self, record: dict) -> str:
        """The last `\\boxed{}` of a worked solution, or the whole gold when it is the bare answer."""
        gold = gold_field(self.name, record)
        boxes = boxed_contents(gold)
        answer = normalise_latex(boxes[-1][1]) if boxes else normalise_latex(gold)
        if not answer:
            raise ValueError(f"{self.name} record {record.get('id')!r}: field 'gold' holds an empty box: {gold!r}")
        return answer

    def _read(self, text: str) -> Extraction:
        boxes = boxed_contents(text)
        if boxes and (answer := normalise_latex(boxes[-1][1])):
            return Extraction(answer, "boxed")
        finals = [normalise_latex(m[1]) for m in _FINAL_ANSWER.finditer(text)]
        if finals and finals[-1]:
            return Extraction(finals[-1], "final_answer")
        return NO_ANSWER

    def is_equivalent(self, a: str | None, b: str | None) -> bool:
        """Same LaTeX, or the same value by math-verify (checked both ways, so the relation is symmetric).

        math-verify's `verify(gold, target)` is not symmetric (it simplifies "x = 2" on one side only), and a
        vote compares two model answers with no gold side, so either direction succeeding is enough.
        """
        if a is None or b is None:
            return False
        if normalise_latex(a) == normalise_latex(b):
            return True
        from math_verify import verify

        parsed_a, parsed_b = list(_parsed(normalise_latex(a))), list(_parsed(normalise_latex(b)))
        if not parsed_a or not parsed_b:
            return False
        timeout = _timeout()
        return verify(parsed_a, parsed_b, timeout_seconds=timeout) or verify(
            parsed_b, parsed_a, timeout_seconds=timeout
        )
