"""GSM8K answers read from literal model outputs: the ordered rules, canonical numbers and the known traps."""

import pytest

from openrlhf_distill.tasks import Extraction, get_task
from openrlhf_distill.tasks.numbers import first_number

GSM8K = get_task("gsm8k")

# (response, canonical answer, rule that must read it)
EXTRACTIONS = [
    # The GSM8K solution format: reasoning, then "#### N" on the last line.
    ("Janet has 16 eggs, eats 3 and bakes with 4: 16 - 3 - 4 = 9.\n#### 9", "9", "hashes"),
    # Dollar sign, thousands separator and decimals after the hashes all canonicalise away.
    ("Total: 1,200 + 34 = 1,234 dollars.\n#### $1,234.00", "1234", "hashes"),
    # No space after the hashes.
    ("3 * 6 = 18\n####18", "18", "hashes"),
    # A negative answer keeps its sign.
    ("The temperature falls from 3 to -7.\n#### -7", "-7", "hashes"),
    # A markdown heading with four hashes is not an answer; the real "#### 7" at the end is.
    ("#### Step 1: add the apples\n3 + 4 = 7\n#### 7", "7", "hashes"),
    # "#### 18" beats a later "the answer is 20": the hashes rule comes first.
    ("#### 18\nSo the answer is 20 if we also count the two extra.", "18", "hashes"),
    # Several hashes: the FIRST wins, because the format closes the solution with it; the rest is run-on.
    ("5 * 4 = 20\n#### 20\n#### 20\n#### 25", "20", "hashes"),
    # Five hashes are a heading, not the answer marker; the boxed answer is read instead.
    ("##### 3 Results\nSo she has \\boxed{42} apples.", "42", "boxed"),
    # Math-tuned models box their answer.
    ("She pays 3 * 6 = 18 dollars in total.\nThe final answer is $\\boxed{18}$.", "18", "boxed"),
    # The LAST box wins: the model corrected itself.
    ("First try: \\boxed{16}. Wait, I forgot the tip: 16 + 2 = 18, so \\boxed{18}.", "18", "boxed"),
    # A box with units in \text{} still holds one number.
    ("\\boxed{18 \\text{ dollars}}", "18", "boxed"),
    # A LaTeX fraction in a box becomes its canonical decimal.
    ("Half of 3/2 is \\boxed{\\frac{3}{4}}", "0.75", "boxed"),
    # The lm-evaluation-harness chain-of-thought ending.
    ("Natalia sold 48 / 2 = 24 clips in May, so 48 + 24 = 72 altogether. The answer is 72.", "72", "answer_is"),
    # "The final answer is" with a dollar sign and a trailing period.
    ("So the total cost is 18 dollars. The final answer is $18.00.", "18", "answer_is"),
    # Case-insensitive, with a colon and bold markup between the phrase and the number.
    ("THE ANSWER IS: **1,000,000**", "1000000", "answer_is"),
    # Several "the answer is": the LAST one, the model revised itself.
    ("The answer is 15. Hmm, I forgot the 3 she gave away: 15 + 3 = 18. The answer is 18.", "18", "answer_is"),
    # A percentage loses its percent sign.
    ("The discount is 25 out of 100, so the answer is 25%.", "25", "answer_is"),
    # "the answer is" followed by no number does not count; the next rule (last number) reads the response.
    ("I computed 12 + 6 = 18, so the answer is what I found", "18", "last_number"),
    # A number word after the phrase is a number (issue 16; it used to fall through to the last number).
    ("I computed 12 + 6 = 18, so the answer is eighteen", "18", "answer_is"),
    # The "Final answer:" label, in markdown.
    ("Each box holds 6, and 3 boxes hold 18.\n\n**Final Answer:** 18", "18", "final_answer"),
    # "Final answer:" followed by a negative decimal.
    ("Final answer: -0.50", "-0.5", "final_answer"),
    # No phrase at all: the last number of the response.
    ("3 * 6 = 18", "18", "last_number"),
    # The last number comes before a hallucinated next question, whose numbers are never read.
    ("She has 3 + 4 = 7 apples.\n\nQuestion: Tom has 12 marbles and loses 5. How many are left?", "7", "last_number"),
    # "Q:"-style run-on after an lm-eval few-shot answer, with its own "The answer is".
    (
        "He runs 3 * 4 = 12 km. The answer is 12.\n\nQ: A cat has 4 legs. How many legs do 2 cats have?\n"
        "A: 2 * 4 = 8. The answer is 8.",
        "12",
        "answer_is",
    ),
    # A run-on "Problem 2:" after the hashes: its "####" is never reached.
    ("10 - 4 = 6\n#### 6\n\nProblem 2: A farmer has 30 cows...\n#### 30", "6", "hashes"),
    # A response that restates its own question first is not cut at that question.
    ("Question: how many legs do 3 spiders have?\n3 * 8 = 24\n#### 24", "24", "hashes"),
    # A subtraction written without spaces is not a negative number.
    ("x-18 = 2, so x = 20", "20", "last_number"),
    # A Unicode minus sign is a minus sign, and negative zero is zero.
    ("The change is \u22120.0", "0", "last_number"),
    # LaTeX thousands separator "1{,}234".
    ("The answer is $1{,}234$.", "1234", "answer_is"),
]

# Responses with no answer at all: nothing is guessed.
NO_ANSWERS = [
    "",  # an empty response (the model stopped at once)
    "I am not sure how to solve this problem.",  # words only
    "#### \n",  # the marker with nothing after it
    "Question: Tom has some apples. How many does he have?",  # only a restated question, which has no number
    "1" * 5000,  # a degenerate run of digits is not an answer (and too long to print as an integer)
]


@pytest.mark.parametrize("response, answer, rule", EXTRACTIONS)
def test_gsm8k_reads_each_literal_output_with_the_expected_rule(response, answer, rule):
    assert GSM8K.extract(response) == Extraction(answer, rule)
    assert GSM8K.extract_answer(response) == answer


@pytest.mark.parametrize("response", NO_ANSWERS)
def test_gsm8k_returns_no_answer_when_the_response_holds_none(response):
    assert GSM8K.extract(response) == Extraction(None, None)


def test_gsm8k_returns_no_answer_for_none():
    assert GSM8K.extract(None) == Extraction(None, None)


def test_gsm8k_reads_the_hashes_answer_even_with_a_long_tail():
    # Implementations that search only the last 300 characters miss an answer given early.
    tail = "\n".join(f"Let me double-check step {i}: it was fine." for i in range(1, 80))
    response = f"3 * 6 = 18\n#### 18\n{tail}"
    assert len(response) > 3000
    assert GSM8K.extract(response) == Extraction("18", "hashes")


def test_gsm8k_reads_the_answer_phrase_even_with_a_long_tail_full_of_other_numbers():
    tail = " ".join(f"Also {i} + 1 = {i + 1}." for i in range(200))
    assert GSM8K.extract(f"The answer is 42. {tail}") == Extraction("42", "answer_is")


def test_gsm8k_without_the_last_number_fallback_reads_no_answer_from_bare_arithmetic():
    strict = get_task("gsm8k", last_number_fallback=False)
    assert strict.extract("3 * 6 = 18") == Extraction(None, None)
    assert strict.extract("3 * 6 = 18\n#### 18") == Extraction("18", "hashes")


# (how a number was written, its canonical form)
CANONICAL_NUMBERS = [
    ("18", "18"),  # already canonical
    ("18.0", "18"),  # trailing zero decimals go, so "18" and "18.0" never split a vote
    ("18.00", "18"),
    ("$18", "18"),  # currency sign
    ("$18.00.", "18"),  # currency, decimals and the sentence's full stop
    ("18 dollars", "18"),  # a unit after the number
    ("\\$18", "18"),  # LaTeX-escaped dollar sign
    ("1,234", "1234"),  # thousands separator
    ("1,234,567.50", "1234567.5"),
    ("0.50", "0.5"),  # trailing zero of a decimal
    (".5", "0.5"),  # no leading zero
    ("-7", "-7"),  # negative numbers keep their sign
    ("-$7", "-7"),  # sign before the currency
    ("$-7", "-7"),  # sign after the currency
    ("-0", "0"),  # negative zero is zero
    ("25%", "25"),  # percent sign dropped
    ("3/4", "0.75"),  # terminating fraction -> its decimal
    ("6/8", "0.75"),  # same value, same string
    ("2/6", "1/3"),  # non-terminating fraction -> reduced fraction
    ("6/3", "2"),  # whole fraction -> integer
    ("\\frac{3}{4}", "0.75"),  # LaTeX fraction
    ("007", "7"),  # leading zeros
]


@pytest.mark.parametrize("written, canonical", CANONICAL_NUMBERS)
def test_every_spelling_of_a_number_canonicalises_to_one_string(written, canonical):
    assert first_number(written) == canonical
    assert GSM8K.extract_answer(f"#### {written}") == canonical


def test_eighteen_written_four_ways_gives_one_answer():
    answers = {GSM8K.extract_answer(r) for r in ("#### 18", "The answer is 18.0.", "\\boxed{18.00}", "Total: $18")}
    assert answers == {"18"}


# (a, b, equivalent?)
EQUIVALENCES = [
    ("18", "18", True),
    ("18", "18.0", True),  # not canonical, still equal in value
    ("0.75", "3/4", True),  # a fraction and its decimal
    ("1234", "1,234", True),
    ("-7", "7", False),  # the sign matters
    ("18", "81", False),
    ("18", None, False),  # None is never equivalent to anything
    (None, None, False),  # not even to None
    ("18", "eighteen", False),  # words are not numbers
]


@pytest.mark.parametrize("a, b, equivalent", EQUIVALENCES)
def test_gsm8k_equivalence_is_numeric_and_none_never_matches(a, b, equivalent):
    assert GSM8K.is_equivalent(a, b) is equivalent
    assert GSM8K.is_equivalent(b, a) is equivalent


# (gold field, canonical gold)
GOLDS = [
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72.\n#### 72", "72"),
    ("The total is 1,000 + 234.\n#### 1,234", "1234"),  # commas removed
    ("#### -3", "-3"),
    ("18", "18"),  # a bare answer, as some prompt files store it
    (18, "18"),  # a number, as JSON may store it
    ("18.0", "18"),
]


@pytest.mark.parametrize("gold, canonical", GOLDS)
def test_gsm8k_gold_is_the_canonical_number_after_the_hashes(gold, canonical):
    assert GSM8K.parse_gold({"id": "q1", "prompt": "?", "gold": gold}) == canonical


@pytest.mark.parametrize("record", [{"id": "q1", "prompt": "?"}, {"id": "q1", "gold": ""}, {"id": "q1", "gold": None}])
def test_gsm8k_gold_that_is_missing_raises_an_error_naming_the_field(record):
    with pytest.raises(ValueError, match="'gold'"):
        GSM8K.parse_gold(record)


def test_gsm8k_gold_without_a_number_raises_an_error_naming_the_field_and_record():
    with pytest.raises(ValueError, match="q7.*'gold'"):
        GSM8K.parse_gold({"id": "q7", "gold": "#### unknown"})


def test_gsm8k_zero_shot_prompt_is_a_chat_message_asking_for_the_hashes_format():
    messages = GSM8K.format_prompt({"id": "q1", "prompt": "What is 3 * 6?", "task": "gsm8k"})
    assert len(messages) == 1 and messages[0]["role"] == "user"
    assert messages[0]["content"].startswith("What is 3 * 6?") and "####" in messages[0]["content"]


def test_gsm8k_few_shot_prompt_is_eight_q_a_exemplars_then_the_question():
    prompt = GSM8K.format_prompt({"id": "q1", "prompt": "What is 3 * 6?"}, style="few_shot")
    assert isinstance(prompt, str)
    assert prompt.count("Q: ") == 9 and prompt.count("The answer is ") == 8
    assert prompt.endswith("\n\nQ: What is 3 * 6?\nA:")
    # Every exemplar's own answer is read back by the answer_is rule.
    for block in prompt.split("\n\n")[:-1]:
        assert GSM8K.extract(block.split("\nA: ")[1]).rule == "answer_is"


def test_gsm8k_rejects_an_unknown_prompt_style():
    with pytest.raises(ValueError, match="few_shot"):
        GSM8K.format_prompt({"id": "q1", "prompt": "?"}, style="five_shot")


# A fraction that ends a sentence is the fraction, not its numerator (it was read as "3" from "3/4."): the
# period after the denominator is punctuation unless a digit follows it.
FRACTIONS_BEFORE_PUNCTUATION = [
    ("So each friend gets 3/4.", "0.75"),
    ("The share of red marbles is 2/5.", "0.4"),
    ("The answer is 1/3.", "1/3"),
    ("Each slice is 5/8, and that is all.", "0.625"),
    ("She ate 7/2; that is three and a half.", "3.5"),
    ("So the probability is 1/6!", "1/6"),
    ("The ratio comes to 9/12.", "0.75"),
    ("Therefore x = 3/4.\n", "0.75"),
    ("The final answer is \\frac{3}{4}.", "0.75"),
    ("The answer is $\\frac{1}{8}$.", "0.125"),
    ("He walks \\dfrac{5}{2}.", "2.5"),
    ("The answer is -3/4.", "-0.75"),
]


@pytest.mark.parametrize("response, want", FRACTIONS_BEFORE_PUNCTUATION)
def test_a_fraction_ending_a_sentence_is_read_whole(response, want):
    assert GSM8K.extract(response).answer == want


@pytest.mark.parametrize("text, want", [("on 12/25/2020.", "12"), ("it was 3/4.5 of it", "3")])
def test_a_date_or_a_fraction_running_into_a_decimal_is_still_not_a_fraction(text, want):
    assert first_number(text) == want
