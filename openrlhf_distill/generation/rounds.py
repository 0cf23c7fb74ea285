"""Adaptive teacher sampling: a shard's questions are sampled in rounds, and a question leaves once its vote is
settled (`adaptive.settled`, the exact rule) or its leader is likely enough to stay ahead (`leader_confidence`,
the Beta rule).

A question's samples are drawn in a fixed order that cycles through the temperatures of the schedule (the first
sample at each temperature, then the second at each, ...), ``round_size`` of them a round, so a question that
stops early keeps the schedule's temperature mix. Sample ``k`` of temperature ``t`` keeps its index
``t * n_per_temperature + k`` of the full schedule and its own seed (seed, question, temperature, k): what a
question draws does not depend on the round size or on when other questions stopped (on the hf backend with
``--hf.batch_size 1`` the samples themselves do not either; in a larger batch, rows share a random stream).

Why the exact rule's labels equal the full budget's: `settled` decides on the vote over the whole budget, whatever
the undrawn samples would say; the `label` stage votes over the samples drawn, and that vote has the same outcome
(a settled leader also wins with the remaining samples unreadable, which is the drawn vote with more unreadable
answers; and an answer the drawn vote accepts would also be accepted with every remaining sample for it, so a
vote settled as "no label" leaves none to accept). Only the samples at or below ``max_temperature`` count, as in
`label --vote.max_temperature`.

Each shard's stops go to ``stops-NNNNN.json`` beside it: per question the samples drawn, the voting samples drawn
and budgeted, the round and the reason (``settled``, ``confident``, or ``budget`` when it drew everything).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from ..adaptive import leader_confidence, settled
from ..argtypes import int_at_least
from ..settings import refuse_bad_fields, setting
from ..voting import DEFAULT_RULE, VoteRule, group_equivalent
from .backend import Request, derived_seed

RULES = ("exact", "beta")


def _confidence(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.5 <= value < 1.0
    return None if ok else "must be a number in [0.5, 1)"


@dataclass(frozen=True)
class AdaptiveConfig:
    """Adaptive teacher sampling: `generate`'s --adaptive.* flags and the run config's teacher.adaptive section
    are made from these fields (both off unless a rule is given)."""

    rule: str | None = setting(
        "exact",
        "teacher: sample in rounds and stop a question once its vote is settled (exact: the labels of the full "
        "budget) or its leader likely to stay ahead (beta; see --adaptive.confidence). Default: off",
        choices=RULES,
    )
    confidence: float = setting(0.95, "beta: stop when P(leader stays ahead) reaches it", check=_confidence)
    # 1 stops a question at the first sample that settles it (the fewest samples; a served teacher sees one request
    # per question per round); more: fewer, larger rounds.
    round_size: int = setting(
        1,
        "samples per question a round, cycling through the temperatures (1: stop at the first that settles)",
        check=int_at_least(1),
    )
    vote: VoteRule = setting(DEFAULT_RULE, flag=False)  # the `label` stage's rule (the exact rule must know it)
    # only samples at or below it vote (`label --vote.max_temperature`)
    max_temperature: float | None = setting(None, flag=False)

    def check(self) -> None:
        refuse_bad_fields(self, "--adaptive.")


# Leaving --adaptive.rule out (or the run config's teacher.adaptive.rule null) samples the whole budget.
ADAPTIVE_OFF = {"rule": None}


def sample_seed(seed: int, question_id, temperature_index: int, k: int) -> int:
    return derived_seed(seed, question_id, temperature_index, f"sample{k}")


def draw_order(n_temperatures: int, n_per_temperature: int) -> list[tuple[int, int]]:
    """(temperature index, k) in the order a question draws them: every temperature's first sample, then every
    temperature's second, ...

    >>> draw_order(3, 2)
    [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    """
    return [(t, k) for k in range(n_per_temperature) for t in range(n_temperatures)]


class _Tally:
    """One question's voting answers so far."""

    def __init__(self):
        self.answers: Counter = Counter()
        self.unreadable = 0
        self.drawn = 0  # every sample, voting or not

    def add(self, answer: str | None, votes: bool) -> None:
        self.drawn += 1
        if votes:
            if answer is None:
                self.unreadable += 1
            else:
                self.answers[answer] += 1


def _decide(tally: _Tally, remaining: int, config: AdaptiveConfig, is_equivalent) -> str | None:
    """Why the question stops now (None: it goes on)."""
    if remaining == 0:
        return "budget"
    counts = group_equivalent(tally.answers, is_equivalent)
    if config.rule == "exact":
        return "settled" if settled(counts, tally.unreadable, remaining, config.vote)[0] else None
    return "confident" if counts and leader_confidence(counts) >= config.confidence else None


def sample_shard(engine, shard, config, model: str, to_records) -> tuple[list[dict], dict]:
    """Samples one shard in rounds; returns its sample records and its stops (question id -> record).

    ``config`` is the `SamplingConfig` (its ``adaptive`` set); ``to_records(completions, meta)`` turns a round's
    completions into sample records (`sampling._shard_samples`)."""
    adaptive: AdaptiveConfig = config.adaptive
    order = draw_order(len(config.temperatures), config.n_per_temperature)
    votes = [adaptive.max_temperature is None or t <= adaptive.max_temperature for t in config.temperatures]
    budget = sum(votes[t] for t, _ in order)  # voting samples per question
    tallies = {question.id: _Tally() for question in shard}
    open_questions, rows, stops = list(shard), [], {}
    for round_index in range(math.ceil(len(order) / adaptive.round_size)):
        drawn = order[: (round_index + 1) * adaptive.round_size]
        requests, meta = [], []
        for question in open_questions:
            prompt = question.task.format_prompt(question.record, style=config.prompt_style)
            for t_index, k in drawn[round_index * adaptive.round_size :]:
                seed = sample_seed(config.seed, question.id, t_index, k)
                temperature = config.temperatures[t_index]
                requests.append(
                    Request(prompt, temperature, 1, config.max_new_tokens, seed, config.stop, config.top_p)
                )
                meta.append((question, temperature, t_index, k, 1))
        new = list(to_records(engine.generate(requests), meta))
        for row in new:
            tallies[row["id"]].add(row["answer"], votes[row["sample_index"] // config.n_per_temperature])
        rows += new
        voting_drawn = sum(votes[t] for t, _ in drawn)
        still_open = []
        for question in open_questions:
            reason = _decide(tallies[question.id], budget - voting_drawn, adaptive, question.task.is_equivalent)
            if reason is None:
                still_open.append(question)
                continue
            stops[str(question.id)] = {
                "drawn": tallies[question.id].drawn,
                "voting_drawn": voting_drawn,
                "voting_budget": budget,
                "round": round_index,
                "reason": reason,
            }
        open_questions = still_open
        if not open_questions:
            break
    return rows, stops
