"""The majority vote: literal cases, then properties that must hold for any answers (hypothesis)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrlhf_distill.voting import BELOW_THRESHOLD, NO_VALID_ANSWER, TIE, TOO_FEW_VALID, majority_vote


@pytest.mark.parametrize(
    "answers, label, ratio, reason",
    [
        (["18", "18", "20"], "18", 2 / 3, None),  # a plain majority
        (["18", "20"], None, 0.5, TIE),  # a tie for first place is never accepted
        (["18", "18", "20", "20", "7"], None, 0.4, TIE),  # ... however many others there are
        (["1", "2", "3", "1"], "1", 0.5, None),  # exactly the threshold (0.5) is enough
        (["1", "2", "3", "4", "1"], None, 0.4, BELOW_THRESHOLD),  # a strict winner but under half
        ([None, None], None, 0.0, NO_VALID_ANSWER),  # unreadable answers never vote
        ([None, "5", None, None], "5", 1.0, None),  # one valid answer wins all the valid votes
        ([], None, 0.0, NO_VALID_ANSWER),  # a question nobody answered
    ],
)
def test_vote_outcomes(answers, label, ratio, reason):
    vote = majority_vote(answers)
    assert (vote.pseudo_label, vote.reason, vote.accepted) == (label, reason, label is not None)
    assert vote.majority_ratio == pytest.approx(ratio)
    assert vote.total == len(answers) and vote.valid == sum(a is not None for a in answers)


def test_min_valid_refuses_a_label_resting_on_too_few_readable_answers():
    vote = majority_vote(["5", None, None, None], min_valid=2)
    assert not vote.accepted and vote.reason == TOO_FEW_VALID


def test_equivalent_spellings_are_counted_as_one_answer_named_by_the_commonest_spelling():
    same_number = lambda a, b: float(a) == float(b)  # noqa: E731  (what a numeric task's is_equivalent does)
    vote = majority_vote(["18.0", "18", "20", "18", "20"], is_equivalent=same_number)
    assert vote.pseudo_label == "18" and vote.counts == {"18": 3, "20": 2}
    assert majority_vote(["18.0", "18", "20", "18", "20"]).reason == TIE  # without it the vote splits


def test_min_ratio_outside_zero_one_is_an_error():
    with pytest.raises(ValueError, match="min_ratio"):
        majority_vote(["1"], min_ratio=1.5)


answers = st.lists(st.one_of(st.none(), st.sampled_from(["1", "2", "3", "4", "10"])), max_size=30)


@given(answers, st.randoms(use_true_random=False))
def test_the_vote_does_not_depend_on_the_order_of_the_answers(values, rnd):
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert majority_vote(shuffled) == majority_vote(values)


@given(answers, st.integers(min_value=0, max_value=5))
def test_adding_unreadable_answers_never_changes_the_winner(values, extra_nones):
    before, after = majority_vote(values), majority_vote(values + [None] * extra_nones)
    assert (after.pseudo_label, after.counts, after.majority_ratio) == (
        before.pseudo_label, before.counts, before.majority_ratio)  # fmt: skip
    assert after.total == before.total + extra_nones


@given(answers)
def test_an_accepted_label_is_a_strict_winner_with_at_least_half_the_valid_votes(values):
    vote = majority_vote(values)
    if vote.accepted:
        top = vote.counts[vote.pseudo_label]
        assert all(n < top for a, n in vote.counts.items() if a != vote.pseudo_label)
        assert top / vote.valid >= 0.5
    assert sum(vote.counts.values()) == vote.valid


spellings = st.lists(st.one_of(st.none(), st.sampled_from(["1", "1.0", "01", "2", "2.0"])), max_size=30)


@given(spellings, st.randoms(use_true_random=False))
def test_grouping_equivalent_spellings_does_not_depend_on_order_either(values, rnd):
    same_number = lambda a, b: float(a) == float(b)  # noqa: E731
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert majority_vote(shuffled, is_equivalent=same_number) == majority_vote(values, is_equivalent=same_number)
