"""What a sampling backend is: requests in, completions out. Backends: hf (transformers), vllm, openai.

The generation stage owns prompts, shards, seeds and records; a backend only turns formatted prompts into
completions. Prompts arrive formatted by the task layer: a plain string is sent as is, chat messages go through
the model's chat template (local backends) or the chat endpoint (openai).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

TEMPERATURE_RANGE = (0.0, 2.0)  # 0 is greedy decoding


class BackendError(RuntimeError):
    """A backend could not be started or could not answer; the message says what to do."""


@dataclass(frozen=True)
class Request:
    prompt: str | list  # a plain string, or chat messages [{"role": ..., "content": ...}]
    temperature: float
    n: int  # completions wanted for this prompt at this temperature
    max_new_tokens: int
    seed: int  # derived per (question, temperature) by the stage, so a request's samples do not depend on batching
    stop: tuple[str, ...] = ()  # strings that end a completion (not included in it)
    top_p: float = 1.0


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length" (max_new_tokens reached)
    num_tokens: int  # generated tokens


@dataclass
class BackendInfo:
    name: str
    model: str
    reproducible: str  # one line: in what sense the same seed gives the same samples
    extra: dict = field(default_factory=dict)


class Backend(ABC):
    info: BackendInfo

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        """For each request, its ``n`` completions, in request order."""

    def close(self) -> None:  # noqa: B027  (optional: backends with nothing to free keep this)
        """Frees the engine or connections; the backend is not used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def derived_seed(*parts) -> int:
    """A request seed derived from its parts (seed, question, temperature, ...): the same parts, the same seed,
    whichever requests ran before it."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF
