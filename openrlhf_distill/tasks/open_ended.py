"""Open-ended prompts (AlpacaEval-style instructions): there is no final answer to read or vote on.

Such responses are labelled by the teacher acting as a judge (`openrlhf-distill judge`), through the same record
fields, so `extract` always returns no answer and no two answers are ever equivalent. `is_equivalent` returns False
rather than raising, so generic code (a vote, a metric) that happens to meet an open task just finds no labels.
"""

from __future__ import annotations

from .base import NO_ANSWER, ChatMessages, Extraction, Task, gold_field, user_message


class OpenEnded(Task):
    name = "open"

    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        return user_message(question)

    def parse_gold(self, record: dict) -> str:
        """A reference response, when the dataset has one (a judge may compare against it)."""
        return gold_field(self.name, record)

    def _read(self, text: str) -> Extraction:
        return NO_ANSWER

    def is_equivalent(self, a: str | None, b: str | None) -> bool:
        return False
