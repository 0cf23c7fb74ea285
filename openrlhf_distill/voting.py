"""The pseudo-label: a majority vote over the teacher's canonical final answers.

A question gets a pseudo-label only when its winner is strict (no tie for first place), holds at least
``min_ratio`` of the valid (readable) answers, and enough answers could be read: at least ``min_valid`` of them
and at least ``min_valid_share`` of all the question's voting samples. Answers that could not be read (``None``)
never vote. Answers are grouped by the task's ``is_equivalent``, so two spellings of one value can never split a
vote.

Why the share of readable answers (default 0.5): the winner's ratio is taken over the answers that could be
read, as self-consistency does (Wang et al. 2023 vote over the answers they could parse), so samples cut off by
the token limit or that never state an answer do not dilute an agreement among those that did. Alone, that
would let one readable answer in ten become a confident label (ratio 1.0); requiring half of the samples to be
readable refuses such a vote. ``ratio_of="all"`` instead divides by every sample, readable or not (the stricter
rule: an accepted "all" vote is an accepted "valid" vote). TTRL's vote differs on both points: it breaks a tie
for first place by the order the answers came in, and counts an unreadable answer as the empty answer "", which
can win.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .argtypes import int_at_least, number_in
from .settings import add_flags, from_args, refuse_bad_fields, setting

# Why a question got no pseudo-label; counted in metrics.json.
NO_VALID_ANSWER = "no_valid_answer"
TOO_FEW_VALID = "too_few_valid"  # fewer readable answers than min_valid, or than min_valid_share of all
TIE = "tie"
BELOW_THRESHOLD = "below_threshold"


@dataclass(frozen=True)
class Vote:
    pseudo_label: str | None  # None unless accepted
    counts: dict[str, int]  # canonical answer -> votes, most votes first
    valid: int  # answers that could be read
    total: int  # all answers, None included
    majority_ratio: float  # winner's share of the valid answers (0 when none), whatever ratio_of decides on
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


RATIO_OF = ("valid", "all")  # what the winner's count is divided by before min_ratio: readable answers, or all


@dataclass(frozen=True)
class VoteRule:
    """When a vote's winner becomes the pseudo-label (the module's docstring says why each setting). The one home
    of these settings and their defaults: the `label` command's flags, the pipeline's ``vote`` section and the
    adaptive stopping rule all read them from here."""

    min_ratio: float = setting(
        0.5, "winner's share of valid answers needed (of all answers with --vote.ratio_of all)", check=number_in(0, 1)
    )
    min_valid: int = setting(1, "readable answers a question needs to vote", check=int_at_least(1))
    min_valid_share: float = setting(
        0.5,
        "... and as a share of its voting samples (0.5: one readable answer in ten is no label)",
        check=number_in(0, 1),
    )
    ratio_of: str = setting(
        "valid", "divide the winner's count by the valid answers (default) or by every sample", choices=RATIO_OF
    )

    def __post_init__(self):
        refuse_bad_fields(self, "vote.")

    def refusal(self, count: int, rival: int, valid: int, total: int) -> str | None:
        """Why an answer with ``count`` votes, its strongest rival having ``rival``, out of ``valid`` readable
        answers and ``total`` samples, does not become the pseudo-label; None when it does.

        >>> VoteRule().refusal(count=3, rival=1, valid=4, total=5) is None
        True
        >>> VoteRule().refusal(count=2, rival=2, valid=4, total=4)
        'tie'
        """
        if valid == 0:
            return NO_VALID_ANSWER
        if valid < self.min_valid or valid < self.min_valid_share * total:
            return TOO_FEW_VALID
        if rival >= count:
            return TIE
        if count / (valid if self.ratio_of == "valid" else total) < self.min_ratio:
            return BELOW_THRESHOLD
        return None

    def accepts(self, count: int, rival: int, valid: int, total: int) -> bool:
        return self.refusal(count, rival, valid, total) is None


@dataclass(frozen=True)
class VotingSamples:
    """Which of a question's samples vote: `label`'s and `generate`'s --vote.max_temperature, the run config's
    vote.max_temperature."""

    max_temperature: float | None = setting(
        None, "only teacher samples at or below this temperature vote (default: all)", check=number_in(0)
    )


DEFAULT_RULE = VoteRule()  # the pipeline's and the `label` command's defaults
# maj@k in evaluation: the strict plurality of the readable answers, with no threshold on share or readability.
PLURALITY = VoteRule(min_ratio=0.0, min_valid_share=0.0)


def majority_vote(
    answers: Iterable[str | None],
    rule: VoteRule = DEFAULT_RULE,
    *,
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
    return vote_from_counts(counter, total, rule, is_equivalent=is_equivalent)


def vote_from_counts(
    counter: Counter,
    total: int,
    rule: VoteRule = DEFAULT_RULE,
    *,
    is_equivalent: Callable[[str, str], bool] | None = None,
) -> Vote:
    """The same vote from already-counted answers (``total`` includes the unreadable ones): lets the labelling
    stage count a question's answers while streaming, without holding them."""
    merged = group_equivalent(counter, is_equivalent)
    ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    counts = dict(ranked)
    valid = sum(counts.values())
    if valid == 0:
        return Vote(None, counts, 0, total, 0.0, False, NO_VALID_ANSWER)
    winner, top = ranked[0]
    rival = ranked[1][1] if len(ranked) > 1 else 0
    reason = rule.refusal(top, rival, valid, total)
    accepted = reason is None
    return Vote(winner if accepted else None, counts, valid, total, top / valid, accepted, reason)


# --- The vote's flags, for every command that votes (`label`) or stops on the vote (`generate --adaptive.rule`)


def add_vote_arguments(p) -> None:
    """The vote's flags (`label`, and `generate --adaptive.rule exact`, which must stop on the same rule)."""
    add_flags(p, VoteRule, "vote")
    add_flags(p, VotingSamples, "vote")


def vote_samples(args) -> float | None:
    """The highest temperature whose samples vote (--vote.max_temperature; None: all)."""
    return from_args(args, VotingSamples, "vote").max_temperature


def vote_rule_from_args(args) -> VoteRule:
    """The VoteRule of parsed `--vote.*` flags."""
    return from_args(args, VoteRule, "vote")
