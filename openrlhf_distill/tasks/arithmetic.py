"""The toy world's task: multi-step integer arithmetic ("What is 23 + 15 - 7?"), with an integer answer.

The toy world (`openrlhf_distill.toy.world`) pretrains its models on the bare question (no instruction) as the
user turn and a worked solution in GSM8K's format as the answer, "23 + 15 = 38. 38 - 7 = 31. #### 31", so the
prompt is the question itself and answers are read with GSM8K's rules: the first "#### N" first. A response
with no marker (cut off, or from a model that never learnt the format) falls back to its last number, which
is then usually an intermediate result, and is scored like any other answer.
"""

from __future__ import annotations

from .base import ChatMessages, user_message
from .gsm8k import GSM8K


class Arithmetic(GSM8K):
    name = "arithmetic"
    styles = ("zero_shot_cot",)

    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        return user_message(question)
