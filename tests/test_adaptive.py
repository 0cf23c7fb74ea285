"""The exact stopping rule of adaptive teacher sampling: a vote it calls settled ends, after the full budget, with
the outcome it named, on any sample stream and any vote settings (hypothesis); and it is tight: where every
completion of the budget gives one outcome, it stops (checked by enumerating every completion of short budgets).
"""

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openrlhf_distill.adaptive import settled
from openrlhf_distill.voting import VoteRule, majority_vote

vote_settings = st.builds(
    VoteRule,
    min_ratio=st.sampled_from([0.0, 0.3, 0.5, 0.6, 1.0]),
    min_valid=st.integers(1, 4),
    min_valid_share=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    ratio_of=st.sampled_from(["valid", "all"]),
)
streams = st.lists(st.one_of(st.none(), st.sampled_from(["1", "2", "3", "4"])), max_size=24)


def _state(prefix):
    readable = Counter(a for a in prefix if a is not None)
    return readable, sum(a is None for a in prefix)


@settings(max_examples=400, deadline=None)
@given(streams, vote_settings)
def test_a_settled_vote_ends_with_the_outcome_it_named(stream, rule):
    final = majority_vote(stream, rule).pseudo_label
    for k in range(len(stream) + 1):
        counts, unreadable = _state(stream[:k])
        done, outcome = settled(counts, unreadable, len(stream) - k, rule)
        if done:
            assert outcome == final, (k, stream, rule)
    assert settled(*_state(stream), 0, rule) == (True, final)  # the whole budget: the vote itself


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["1", "2"])), max_size=8), st.integers(0, 3), vote_settings)
def test_it_stops_exactly_where_no_completion_can_change_the_outcome(prefix, remaining, rule):
    # Every completion: each remaining sample unreadable, an answer seen, or a new one (as many new ones as
    # remaining samples, so that they can all differ).
    choices = [None, "1", "2"] + [f"new{i}" for i in range(remaining)]
    outcomes = {
        majority_vote(prefix + list(rest), rule).pseudo_label for rest in itertools.product(choices, repeat=remaining)
    }
    done, outcome = settled(*_state(prefix), remaining, rule)
    assert done == (len(outcomes) == 1), (prefix, remaining, rule, outcomes)
    if done:
        assert {outcome} == outcomes


def test_typical_votes():
    rule = VoteRule(min_ratio=0.5, min_valid=1, min_valid_share=0.5, ratio_of="valid")
    # 7 of 8 agree, 4 to go: nothing can catch up or push the share below half
    assert settled({"18": 7, "20": 1}, 0, 4, rule) == (True, "18")
    # 3 against 1 with 4 to go: "20" could still tie
    assert settled({"18": 3, "20": 1}, 0, 4, rule) == (False, None)
    # nothing readable yet and too few samples left to make half of them readable: no label, whatever comes
    assert settled({}, 7, 5, rule) == (True, None)
    with pytest.raises(ValueError, match="must not be negative"):
        settled({"1": 1}, 0, -1, rule)


def test_leader_confidence_is_the_beta_posterior_of_the_leader_staying_ahead():
    from openrlhf_distill.adaptive import leader_confidence

    assert leader_confidence({}) == 0.5 and leader_confidence({"1": 3, "2": 3}) == 0.5  # no evidence, or a tie
    assert leader_confidence({"1": 1}) == 0.75  # Beta(2, 1): P(X > 1/2) = 3/4
    assert leader_confidence({"1": 5}) == pytest.approx(1 - 0.5**6)  # Beta(6, 1)
    # more agreement, more confidence; a third answer does not enter
    assert (
        leader_confidence({"1": 6, "2": 1}) > leader_confidence({"1": 4, "2": 1}) > leader_confidence({"1": 4, "2": 2})
    )
    assert leader_confidence({"1": 4, "2": 2, "3": 2}) == leader_confidence({"1": 4, "2": 2})
