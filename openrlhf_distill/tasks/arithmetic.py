"""The toy world's task: multi-step integer arithmetic ("What is 23 + 15 - 7?"), with an integer answer.

The toy world (`openrlhf_distill.toy.world`) pretrains its models on the bare question (no instruction) as the
user turn and a worked solution in GSM8K's format as the answer, "23 + 15 = 38. 38 - 7 = 31. #### 31", so the
prompt is the question itself and answers are read with GSM8K's rules: the first "#### N" first. A response
with no marker (cut off, or from a model that never learnt the format) falls back to its last number, which
is then usually an intermediate result, and is scored like any other answer.

A response has one of two styles (`response_style`): "worked" when it shows at least one "a op b = r." step
before its answer, "direct" when it gives the answer alone ("#### 5"). The toy world's "styles" preset is built on
that difference; the report counts both.
"""

from __future__ import annotations

import re

from .base import ChatMessages, user_message
from .gsm8k import GSM8K

# One worked step: "12 + 3 = 15." ("/" is floor halving in the toy world's questions).
STEP = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)\.")
STYLES = ("worked", "direct")


def response_style(response: str) -> str:
    """ "worked" when the response shows a step before its first "####", else "direct".

    >>> response_style("12 + 3 = 15. 15 / 2 = 7. #### 7"), response_style("#### 7")
    ('worked', 'direct')
    """
    return "worked" if STEP.search(response.split("####", 1)[0]) else "direct"


class Arithmetic(GSM8K):
    name = "arithmetic"
    styles = ("zero_shot_cot",)  # prompt styles
    styles_of_responses = STYLES
    # Unlike GSM8K, a cut-off response keeps its last number (see the module's docstring): the toy world scores
    # it as the (usually wrong) answer the model reached, whatever the sample's finish reason.
    unstated_rules = frozenset()

    def response_style(self, response: str) -> str:
        return response_style(response)

    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        return user_message(question)
