"""The toy world's task: "what is 12 + 7?" with an integer answer, read with GSM8K's rules ("#### 19" first).

The toy models are trained on the bare question, so the prompt is the question itself, with no instruction.
A later issue (the toy world) fleshes this task out; what is here is enough for the pipeline to run on it.
"""

from __future__ import annotations

from .base import ChatMessages, user_message
from .gsm8k import GSM8K


class Arithmetic(GSM8K):
    name = "arithmetic"
    styles = ("zero_shot_cot",)

    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        return user_message(question)
