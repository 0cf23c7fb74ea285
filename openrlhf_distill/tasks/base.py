"""What every task shares: the `Task` interface, the `Extraction` result, and helpers for reading responses.

A task turns a prompt record into a prompt, reads the gold answer of a record (`parse_gold`, used only for
metrics) and reads a model's final answer from a response (`extract`). `parse_gold` and `extract` are kept
apart on purpose: gold is written by dataset authors, responses by models, and they follow different rules.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

ChatMessages = list[dict[str, str]]


@dataclass(frozen=True)
class Extraction:
    """A canonical answer read from a response, and the name of the rule that read it (both None if none did)."""

    answer: str | None
    rule: str | None


NO_ANSWER = Extraction(None, None)


class Task(ABC):
    """One benchmark: prompt template, gold parsing, answer extraction with ordered rules, and equivalence."""

    name: str = ""
    # Prompt styles this task can write; "zero_shot_cot" is the default everywhere.
    styles: tuple[str, ...] = ("zero_shot_cot",)

    def format_prompt(self, record: dict, *, style: str = "zero_shot_cot") -> str | ChatMessages:
        """The prompt for a record: chat messages for zero-shot styles, a plain string for few-shot styles.

        A record whose `prompt` is already a list of chat messages was formatted upstream (for example by a
        user's own template), so it comes back unchanged, as a copy the caller may modify.
        """
        prompt = record.get("prompt")
        if isinstance(prompt, list):
            return [dict(message) for message in prompt]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{self.name} record {record.get('id')!r}: field 'prompt' must be a non-empty string")
        if style not in self.styles:
            raise ValueError(f"task {self.name!r} has no prompt style {style!r}; known styles: {list(self.styles)}")
        return self._format(prompt.strip(), record, style)

    @abstractmethod
    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        """Writes the prompt for a question given as a plain string, in a style from `styles`."""

    @abstractmethod
    def parse_gold(self, record: dict) -> str:
        """The canonical gold answer of a record; ValueError naming the field when it is missing or unreadable."""

    # Rules that read an answer the response never stated as final (GSM8K's last number). When the token limit
    # cut a response off (finish reason "length"), such a reading is the last number of an unfinished step, not
    # an answer, so `extract` gives no answer instead.
    unstated_rules: frozenset[str] = frozenset()

    def extract(self, text: str | None, *, finish_reason: str | None = None) -> Extraction:
        """The canonical final answer of a response and the rule that read it.

        The response is read up to any continuation it invented (`cut_at_continuation`). A response that thinks
        first (`<think>...</think>`) is read after its thinking when that part states an answer, and as a whole
        otherwise. `finish_reason` is the sample's ("stop" or "length"); None, the default, means unknown.
        """
        extraction = NO_ANSWER
        for part in reading_order(text or ""):
            extraction = self._read(cut_at_continuation(part))
            if extraction.answer is not None:
                break
        if finish_reason == "length" and extraction.rule in self.unstated_rules:
            return NO_ANSWER
        return extraction

    @abstractmethod
    def _read(self, text: str) -> Extraction:
        """The canonical final answer stated in a response already cut at its continuation, and the rule."""

    def extract_answer(self, text: str | None, *, finish_reason: str | None = None) -> str | None:
        return self.extract(text, finish_reason=finish_reason).answer

    def is_equivalent(self, a: str | None, b: str | None) -> bool:
        """Whether two canonical answers mean the same; None (no answer) is never equivalent to anything."""
        return a is not None and b is not None and a == b


def user_message(content: str) -> ChatMessages:
    return [{"role": "user", "content": content}]


def gold_field(task: str, record: dict) -> str:
    """The record's `gold` as a stripped string; ints and floats are accepted (datasets store numbers)."""
    gold = record.get("gold")
    if isinstance(gold, bool) or not isinstance(gold, (str, int, float)) or not str(gold).strip():
        raise ValueError(f"{task} record {record.get('id')!r}: field 'gold' is missing or empty (got {gold!r})")
    return str(gold).strip()


# A line that starts a new question: models often run on past their answer and invent the next exemplar
# ("Question: ...", "Q: ...", "Problem 2: ...", "Example 3:", "### Instruction:"). Nothing after it answers the
# question that was asked.
_NEW_QUESTION = re.compile(
    r"""^[ \t>#*]*(?:(?:new|next)[ \t]+)?(?:
        (?:question|q|problem|human|user|instruction)(?:[ \t]*\d+)?[ \t*]*(?::|$)
        | (?:example|exercise)[ \t]*\d+[ \t*]*(?::|$)  # "Example 2:"; an unnumbered one only as a heading, as
        | (?:example|exercise)[ \t*]*:?[ \t*]*$         # "Example: if she had 10 eggs..." may be the reasoning
    )""",
    re.I | re.M | re.X,
)
# Chat-template tokens: an end of turn or the start of a new one. A model that writes one and goes on is
# writing another turn (often a user's next question and its own reply), which answers nothing asked of it.
# ChatML and Llama 3 (<|im_end|>, <|eot_id|>, <|start_header_id|>...), DeepSeek (<｜end▁of▁sentence｜>, <｜User｜>),
# Llama 2 / Mistral (</s>, [INST]), Gemma (<end_of_turn>, <start_of_turn>).
_TURN_TOKEN = re.compile(r"<\|[^<>|\s]{1,40}\|>|<｜[^<>｜]{1,40}｜>|</s>|<eos>|<(?:end|start)_of_turn>|\[INST\]")


def cut_at_new_question(text: str) -> str:
    """The response up to the first line that starts a new question, ignoring one that opens the response.

    A response may begin by restating its own question ("Question: ..."), so a marker counts only once some
    text precedes it.
    """
    for match in _NEW_QUESTION.finditer(text):
        if text[: match.start()].strip():
            return text[: match.start()]
    return text


def cut_at_turn_token(text: str) -> str:
    """The response up to its first chat-template token, ignoring one that opens the response."""
    for match in _TURN_TOKEN.finditer(text):
        if text[: match.start()].strip():
            return text[: match.start()]
    return text


def cut_at_continuation(text: str) -> str:
    """The response up to anything it invented after answering: another turn, or a new question or example."""
    return cut_at_new_question(cut_at_turn_token(text))


def reading_order(text: str) -> list[str]:
    """The parts of a response to read, in order: what follows the last `</think>` (reasoning models think
    first, and their drafts inside the thinking are not their answer), then the whole response."""
    closing = text.rfind("</think>")
    if closing < 0:
        return [text]
    return [text[closing + len("</think>") :], text]


_BOXED_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_BARE = re.compile(r"\\boxed[ \t]+([^\s${}]+)")


def boxed_contents(text: str) -> list[tuple[int, str]]:
    """(position, content) of every `\\boxed{...}` / `\\fbox{...}` in order, braces balanced, plus `\\boxed 5`.

    Nested braces (`\\boxed{\\frac{1}{2}}`) are kept whole; a box left open by a truncated response is skipped.
    One pass over the braces with a stack, so a degenerate response repeating "\\boxed{" stays linear.
    """
    box_openings = {m.end() - 1: m.start() for m in _BOXED_START.finditer(text)}  # "{" index -> "\\boxed" index
    found, open_braces = [], []
    for brace in re.finditer(r"[{}]", text):
        if brace[0] == "{":
            open_braces.append(brace.start())
        elif open_braces:
            opening = open_braces.pop()
            if opening in box_openings:
                found.append((box_openings[opening], text[opening + 1 : brace.start()]))
    found += [(m.start(), m.group(1)) for m in _BOXED_BARE.finditer(text)]
    return sorted(found)
