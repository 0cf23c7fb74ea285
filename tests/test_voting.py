"""The majority vote: literal cases, then properties that must hold for any answers (hypothesis)."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrlhf_distill.voting import (
    BELOW_THRESHOLD,
    NO_VALID_ANSWER,
    TIE,
    TOO_FEW_VALID,
    VoteRule,
    majority_vote,
)


@pytest.mark.parametrize(
    "answers, label, ratio, reason",
    [
        (["18", "18", "20"], "18", 2 / 3, None),  # a plain majority
        (["18", "20"], None, 0.5, TIE),  # a tie for first place is never accepted
        (["18", "18", "20", "20", "7"], None, 0.4, TIE),  # ... however many others there are
        (["1", "2", "3", "1"], "1", 0.5, None),  # exactly the threshold (0.5) is enough
        (["1", "2", "3", "4", "1"], None, 0.4, BELOW_THRESHOLD),  # a strict winner but under half
        ([None, None], None, 0.0, NO_VALID_ANSWER),  # unreadable answers never vote
        ([None, "5", None], None, 1.0, TOO_FEW_VALID),  # one readable answer of three: not enough to label
        ([None, "5", "5", None], "5", 1.0, None),  # half the samples readable, and they agree
        ([], None, 0.0, NO_VALID_ANSWER),  # a question nobody answered
    ],
)
def test_vote_outcomes(answers, label, ratio, reason):
    vote = majority_vote(answers)
    assert (vote.pseudo_label, vote.reason, vote.accepted) == (label, reason, label is not None)
    assert vote.majority_ratio == pytest.approx(ratio)
    assert vote.total == len(answers) and vote.valid == sum(a is not None for a in answers)


def test_min_valid_refuses_a_label_resting_on_too_few_readable_answers():
    vote = majority_vote(["5", "5", None, None], VoteRule(min_valid=3))
    assert not vote.accepted and vote.reason == TOO_FEW_VALID


def test_one_readable_answer_in_ten_is_no_label_unless_the_share_is_lowered():
    answers = [None] * 9 + ["5"]
    assert majority_vote(answers).reason == TOO_FEW_VALID
    assert majority_vote(answers, VoteRule(min_valid_share=0.0)).pseudo_label == "5"  # the rule before, as a setting


def test_ratio_of_all_divides_by_every_sample():
    answers = ["18", "18", "18", "20", None, None]  # 3 of 4 readable, 3 of 6 samples
    assert majority_vote(answers).pseudo_label == "18"
    assert majority_vote(answers, VoteRule(ratio_of="all")).pseudo_label == "18"  # exactly half
    assert majority_vote(answers + [None], VoteRule(ratio_of="all")).reason == BELOW_THRESHOLD  # 3 of 7
    assert majority_vote(answers + [None]).pseudo_label == "18"  # 4 of 7 readable, 3 of 4 agree
    with pytest.raises(ValueError, match="ratio_of"):
        VoteRule(ratio_of="readable")
    with pytest.raises(ValueError, match="min_valid_share"):
        VoteRule(min_valid_share=2)


def test_equivalent_spellings_are_counted_as_one_answer_named_by_the_commonest_spelling():
    same_number = lambda a, b: float(a) == float(b)  # noqa: E731  (what a numeric task's is_equivalent does)
    vote = majority_vote(["18.0", "18", "20", "18", "20"], is_equivalent=same_number)
    assert vote.pseudo_label == "18" and vote.counts == {"18": 3, "20": 2}
    assert majority_vote(["18.0", "18", "20", "18", "20"]).reason == TIE  # without it the vote splits


def test_min_ratio_outside_zero_one_is_an_error():
    with pytest.raises(ValueError, match="min_ratio"):
        VoteRule(min_ratio=1.5)


answers = st.lists(st.one_of(st.none(), st.sampled_from(["1", "2", "3", "4", "10"])), max_size=30)


@given(answers, st.randoms(use_true_random=False))
def test_the_vote_does_not_depend_on_the_order_of_the_answers(values, rnd):
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert majority_vote(shuffled) == majority_vote(values)


@given(answers, st.integers(min_value=0, max_value=5), st.sampled_from(["valid", "all"]))
def test_adding_unreadable_answers_never_creates_or_changes_a_label(values, extra_nones, ratio_of):
    before = majority_vote(values, VoteRule(ratio_of=ratio_of))
    after = majority_vote(values + [None] * extra_nones, VoteRule(ratio_of=ratio_of))
    assert (after.counts, after.majority_ratio, after.valid) == (before.counts, before.majority_ratio, before.valid)
    assert after.total == before.total + extra_nones
    assert after.pseudo_label in (None, before.pseudo_label)  # it may lose its label, never gain another
    # With no share of readable answers required and the ratio over them, unreadable answers change nothing.
    relaxed = VoteRule(min_valid_share=0.0)
    assert (
        majority_vote(values + [None] * extra_nones, relaxed).pseudo_label
        == majority_vote(values, relaxed).pseudo_label
    )


settings_strategy = st.builds(
    VoteRule,
    min_ratio=st.sampled_from([0.0, 0.3, 0.5, 2 / 3, 1.0]),
    min_valid=st.integers(1, 4),
    min_valid_share=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    ratio_of=st.sampled_from(["valid", "all"]),
)


@given(answers, settings_strategy)
def test_the_rule_a_label_is_accepted_by(values, setting):
    """Accepted exactly when: enough readable answers (by number and by share of all), a strict winner, and the
    winner's share (of the readable answers, or of all) at least min_ratio. "all" never accepts what "valid"
    refuses."""
    vote = majority_vote(values, setting)
    readable = [a for a in values if a is not None]
    counts = sorted((readable.count(a) for a in set(readable)), reverse=True)
    top = counts[0] if counts else 0
    denominator = len(readable) if setting.ratio_of == "valid" else len(values)
    expected = (
        bool(readable)
        and len(readable) >= setting.min_valid
        and (len(readable) >= setting.min_valid_share * len(values))
        and (len(counts) == 1 or counts[1] < top)
        and (top / denominator >= setting.min_ratio)
    )
    assert vote.accepted == expected and (vote.pseudo_label is not None) == expected
    if vote.accepted:
        assert readable.count(vote.pseudo_label) == top
    if setting.ratio_of == "all" and vote.accepted:
        assert majority_vote(values, dataclasses.replace(setting, ratio_of="valid")).pseudo_label == vote.pseudo_label


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
