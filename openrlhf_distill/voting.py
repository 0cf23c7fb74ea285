"""The pseudo-label: a majority vote over the teacher's canonical final answers (../shared/PAPER.md).

A question gets a pseudo-label only when its winner is strict (no tie for first place), holds at least
``min_ratio`` of the valid answers, and at least ``min_valid`` answers could be read at all. Answers that could
not be read (``None``) never vote. Answers are grouped by the task's ``is_equivalent``, so two spellings of one
value can never split a vote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Why a question got no pseudo-label; counted in metrics.json.
NO_VALID_ANSWER = "no_valid_answer"
TOO_FEW_VALID = "too_few_valid"
TIE = "tie"
BELOW_THRESHOLD = "below_threshold"


@dataclass(frozen=True)
class Vote:
    pseudo_label: str | None  # None unless accepted
    counts: dict[str, int]  # canonical answer -> votes, most votes first
    valid: int  # answers that could be read
    total: int  # all answers, None included
    majority_ratio: float  # winner's share of the valid answers (0 when none)
    accepted: bool
    reason: str | None = None  # why not accepted

    def to_record(self, question_id) -> dict:
        return {
            "id": question_id,
            "pseudo_label": self.pseudo_label,
            "counts": self.counts,
            "valid": self.valid,
            "total": self.total,
            "majority_ratio": self.majority_ratio,
            "accepted": self.accepted,
            "reason": self.reason,
        }


def group_equivalent(counts: Counter, is_equivalent: Callable[[str, str], bool] | None) -> dict[str, int]:
    """Merges counts of equivalent answers. Each group is named by its most frequent spelling (ties: the
    smallest string), so the result does not depend on the order the answers arrived in."""
    if is_equivalent is None:
        return dict(counts)
    groups: list[list[str]] = []
    for answer in sorted(counts):  # a fixed order, whatever the input order was
        for group in groups:
            if is_equivalent(group[0], answer):
                group.append(answer)
                break
        else:
            groups.append([answer])
    merged = {}
    for group in groups:
        name = min(group, key=lambda a: (-counts[a], a))
        merged[name] = sum(counts[a] for a in group)
    return merged


def majority_vote(
    answers: Iterable[str | None],
    *,
    min_ratio: float = 0.5,
    min_valid: int = 1,
    is_equivalent: Callable[[str, str], bool] | None = None,
) -> Vote:
    """Votes over canonical answers; ``is_equivalent`` (the task's) merges different spellings of one value.

    >>> majority_vote(["18", "18", None, "20"]).pseudo_label
    '18'
    >>> majority_vote(["18", "20"]).reason
    'tie'
    """
    counter: Counter = Counter()
    total = 0
    for answer in answers:
        total += 1
        if answer is not None:
            counter[answer] += 1
    return vote_from_counts(counter, total, min_ratio=min_ratio, min_valid=min_valid, is_equivalent=is_equivalent)


def vote_from_counts(
    counter: Counter,
    total: int,
    *,
    min_ratio: float = 0.5,
    min_valid: int = 1,
    is_equivalent: Callable[[str, str], bool] | None = None,
) -> Vote:
    """The same vote from already-counted answers (``total`` includes the unreadable ones): lets the labelling
    stage count a question's answers while streaming, without holding them."""
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
    merged = group_equivalent(counter, is_equivalent)
    ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    counts = dict(ranked)
    valid = sum(counts.values())
    if valid == 0:
        return Vote(None, counts, 0, total, 0.0, False, NO_VALID_ANSWER)
    winner, top = ranked[0]
    ratio = top / valid
    if valid < min_valid:
        reason = TOO_FEW_VALID
    elif len(ranked) > 1 and ranked[1][1] == top:
        reason = TIE
    elif ratio < min_ratio:
        reason = BELOW_THRESHOLD
    else:
        return Vote(winner, counts, valid, total, ratio, True)
    return Vote(None, counts, valid, total, ratio, False, reason)
