"""When a question's vote is settled before its sampling budget is spent: the exact stopping rule.

The teacher is sampled in rounds; after each round a question whose vote can no longer change, whatever its
remaining samples say, needs no more of them. "Change" means the vote's outcome under the configured rule
(`voting.VoteRule`): which answer becomes the pseudo-label, or that none does. Samples are then labelled
exactly as after the full budget, since a sample's label depends only on that outcome.

The rule looks at the extreme completions of the remaining ``remaining`` samples, each of which may be
unreadable, any answer seen so far, or an answer not seen yet:

- an answer ``a`` can end as the accepted pseudo-label only if it does when every remaining sample says ``a``
  (that maximises its count, its lead, its share and the number of readable answers at once);
- the current leader is accepted whatever comes only if it is in each worst case taken alone: every remaining
  sample unreadable (the fewest readable answers), all of them for its strongest rival (its lead), all of them
  readable but not for it (its share of the readable answers).

The vote is settled when the leader is certain to be accepted, or when no answer can be accepted.

`leader_confidence` is the optional probabilistic rule: it stops earlier, when the leader is only very likely to
stay ahead, and trades a measured share of changed labels for fewer samples (benchmarks/bench_adaptive_sampling.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

from .voting import DEFAULT_RULE, VoteRule, vote_from_counts


def settled(
    counts: Mapping[str, int], unreadable: int, remaining: int, rule: VoteRule = DEFAULT_RULE
) -> tuple[bool, str | None]:
    """(settled, outcome): whether no ``remaining`` further samples can change the vote's outcome under ``rule``,
    given the readable answers so far (``counts``, grouped by the task's equivalence) and the ``unreadable`` ones;
    the outcome is the pseudo-label the full budget will give, or None for no label (meaningful only when settled).
    """
    if remaining < 0 or unreadable < 0 or any(n < 0 for n in counts.values()):
        raise ValueError("counts, unreadable and remaining must not be negative")
    valid = sum(counts.values())
    total = valid + unreadable + remaining  # the samples the full budget will have drawn
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if remaining == 0:  # the whole budget drawn: the vote itself
        return True, vote_from_counts(Counter(counts), total, rule).pseudo_label

    # Which answers could still end accepted: each seen one, and one not seen yet (count 0), given everything.
    def could_win(count: int, others_top: int) -> bool:
        return rule.accepts(count + remaining, others_top, valid + remaining, total)

    contenders = []
    for i, (answer, count) in enumerate(ranked):
        others_top = max((n for j, (_, n) in enumerate(ranked) if j != i), default=0)
        if could_win(count, others_top):
            contenders.append(answer)
    unseen_could_win = could_win(0, ranked[0][1] if ranked else 0)
    if not contenders and not unseen_could_win:
        return True, None  # whatever comes, no answer is accepted
    if ranked and not unseen_could_win and contenders == [ranked[0][0]]:
        leader, top = ranked[0]
        rival = ranked[1][1] if len(ranked) > 1 else 0
        certain = (
            rule.accepts(top, rival, valid, total)  # every remaining sample unreadable
            and rule.accepts(top, rival + remaining, valid + remaining, total)  # all for the strongest rival
        )
        if certain:
            return True, leader
    return False, None


def leader_confidence(counts: Mapping[str, int]) -> float:
    """The posterior probability that the leading answer is more likely than the runner-up, with a uniform Beta
    prior on their relative share (the stopping criterion of Adaptive-Consistency, Aggarwal et al. 2023):
    P(X > 1/2) for X ~ Beta(c1 + 1, c2 + 1), which for whole counts is P(Binomial(c1 + c2 + 1, 1/2) <= c1)."""
    top = sorted(counts.values(), reverse=True)[:2] + [0, 0]
    c1, c2 = top[0], top[1]
    n = c1 + c2 + 1
    return sum(math.comb(n, k) for k in range(c1 + 1)) / 2**n
