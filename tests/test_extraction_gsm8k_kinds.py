"""GSM8K outputs of the kinds issue 16 found misread, written for these tests in several model families' styles.

Each table is one kind: (response, the canonical answer a reader must take from it, or None for no answer).
The benchmark (`benchmarks/bench_extraction.py`) reads these tables too, beside its own corpus.
"""

import pytest

from openrlhf_distill.tasks import get_task

GSM8K = get_task("gsm8k")

# A fraction followed by sentence punctuation is the fraction, not its numerator; LaTeX and Unicode fractions too.
FRACTION_BEFORE_PUNCTUATION = [
    ("Each of the 4 friends gets 3 pizzas / 4 friends, so each friend gets 3/4.", "0.75"),
    ("Maria used 1/3 of the flour for bread and 1/3 for cake, so she has 1/3 left.", "1/3"),
    ("The fraction of blue marbles is 6/15, which simplifies to 2/5.", "0.4"),
    ("So the tank is 7/8 full; that leaves 1/8!", "0.125"),
    ("Thus the probability that both are red is 3/10.\n", "0.3"),
    ("He ran for 5/4 hours, and that is his answer: 5/4.", "1.25"),
    ("Therefore the answer is $\\frac{3}{4}$.", "0.75"),
    ("We get $x = \\dfrac{7}{2}$.", "3.5"),
    ("**Answer:** \\frac{2}{3}.", "2/3"),
    ("The share of the cake each child eats is \\(\\tfrac{1}{6}\\).", "1/6"),
    ("In total she walks \\frac{9}{4}. That is all.", "2.25"),
    ("Ratio of boys to all students: 12/20 = 3/5.", "0.6"),
    ("So the glass is ¾.", "0.75"),
    ("The remaining part is 1⁄8.", "0.125"),
    ("Final answer: \\frac34.", "0.75"),
    ("The answer is \\boxed{\\frac{5}{8}}.", "0.625"),
]

# An "Answer:" line (plain or in bold) followed by words, units or a parenthetical with other numbers.
ANSWER_LINE_WITH_WORDS = [
    ("Janet sells 16 - 3 - 4 = 9 eggs at $2 each.\n\nAnswer: 18 dollars (9 eggs at $2 each)", "18"),
    ("**Step 1:** 3 boxes of 6 pencils.\n**Step 2:** 3 x 6 = 18.\n\n**Answer:** 18 pencils (3 boxes of 6)", "18"),
    (
        "First, 120 / 4 = 30 per group. Then 30 - 5 = 25.\nAnswer: 25 students remain in each group after 5 leave.",
        "25",
    ),
    ("Answer: $42 (she spends $8 on lunch and $34 on books)", "42"),
    ("The total is 7 + 8 = 15.\n\n**Answer:** She has 15 apples left, after giving 2 to Tom.", "15"),
    ("Answer (in minutes): 45, because 3 laps take 15 minutes each.", "45"),
    ("Let me compute 250 * 4 = 1000.\nAnswer: 1,000 meters in total (4 laps of 250 m)", "1000"),
    ("The cost is 12 * 3 = 36.\n\nAnswer:\n36 (12 dollars per ticket for 3 tickets)", "36"),
    (
        "### Solution\n5 + 6 + 7 = 18 hours.\n\n**Answer: 18 hours** (5 on Monday, 6 on Tuesday and 7 on Wednesday)",
        "18",
    ),
    ("Answer: 64 cookies. (He bakes 8 trays of 8 and gives none away.)", "64"),
    ("So the farmer has 40 - 12 = 28 cows.\n\n> **Answer:** 28 cows (12 were sold)", "28"),
    ("Answer: about 7 days (the 20 liters run out after 7 days at 3 liters a day)", "7"),
    # An answer line that works the sum out names its last result, not its first number.
    ("Answer: Janet has 16 - 3 - 4 = 9 eggs left, so she makes 9 * 2 = 18 dollars.", "18"),
]

# "the answer is a x b = c": the result of the arithmetic, not its first number.
ANSWER_IS_ARITHMETIC = [
    ("She buys 3 packs of 6 cups. The answer is 3 x 6 = 18.", "18"),
    ("The answer is 12 * 4 = 48 cookies.", "48"),
    ("So the answer is 48 / 2 = 24 clips.", "24"),
    ("The final answer is 2 × 9 = 18", "18"),
    ("The answer is $5 + $7 = $12.", "12"),
    ("Hence the answer is 100 - 35 = 65 pages.", "65"),
    ("The answer is 2.5 * 4 = 10 miles.", "10"),
    ("The answer is 3 \\times 15 = 45.", "45"),
    ("The answer is (20 + 4) = 24.", "24"),
    ("The answer is 6 + 6 + 6 = 18 legs.", "18"),
    ("The answer is 10 * 3 = 30 - 2 = 28.", "28"),
    ("The answer is 7 apples.", "7"),  # no arithmetic: the number itself
    ("The answer is 1,200 + 300 = 1,500 dollars.", "1500"),
    ("\\boxed{3 \\times 6 = 18}", "18"),
]

# A self-correction after a first "####": the corrected answer; a plain repetition or run-on keeps the first.
SELF_CORRECTION_AFTER_HASHES = [
    ("16 - 3 - 4 = 9 eggs, 9 * 2 = 16.\n#### 16\nWait, 9 * 2 is 18, not 16.\n#### 18", "18"),
    ("#### 24\n\nActually, I forgot the 6 she gave away: 24 - 6 = 18.\n#### 18", "18"),
    ("Total = 5 * 12 = 60\n#### 60\nOops, I made a mistake: it is 5 * 11 = 55.\n#### 55", "55"),
    ("#### 30\nHold on, the question asks for the difference: 30 - 12 = 18. The answer is 18.", "18"),
    ("#### 7\nI miscalculated; 56 / 7 = 8.\n\\boxed{8}", "8"),
    ("He earns 15 * 8 = 120.\n#### 120\nCorrection: he works 9 hours, so 15 * 9 = 135.\n#### 135", "135"),
    ("#### 44\nLet me recheck: 4 * 11 = 44. Yes.\n#### 44", "44"),
    ("#### 3.5\nWait, that's wrong: 7 / 4 = 1.75.\nFinal answer: 1.75", "1.75"),
    ("#### 200\nActually, the discount is 20%, so 250 * 0.8 = 200. The answer stays 200.\n#### 200", "200"),
    ("#### 90\nI forgot the tax: 90 + 9 = 99.\n#### 99", "99"),
    ("5 * 4 = 20\n#### 20\n#### 20\n#### 25", "20"),  # repetition and drift, no correction: the first
    ("#### 18\nSo the answer is 20 if we also count the two extra.", "18"),  # no correction word: the first
    ("#### 12\nWait, let me double-check: 3 * 4 = 12, which is right.", "12"),  # a check with no new statement
]

# Continuations made up after the answer: a new "Example"/"Question" block, or chat-template tokens and a new turn.
MADE_UP_CONTINUATIONS = [
    ("3 + 4 = 7 apples.\n#### 7\n\nExample 2:\nTom has 12 marbles and loses 5.\n#### 7", "7"),
    ("The answer is 42.\n\nExample:\nA farmer has 30 cows and buys 12 more. The answer is 42.", "42"),
    ("She saves 6 * 4 = 24 dollars.\n\n### Question 2\nA car travels 60 miles in 1 hour... #### 60", "24"),
    ("So the total is 9.<|im_end|>\n<|im_start|>user\nWhat is 5 + 5?<|im_end|>\n<|im_start|>assistant\n10", "9"),
    ("He needs 4 more boxes.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nThanks! Now 3 * 3?\n9", "4"),
    ("2 * 8 = 16 legs. #### 16</s>[INST] Another one: 7 + 8? [/INST] #### 15", "16"),
    ("The answer is 11.<｜end▁of▁sentence｜><｜User｜>And 12 + 12?<｜Assistant｜>24", "11"),
    ("Total cost: $35.<end_of_turn>\n<start_of_turn>user\nWhat about 4 shirts?<end_of_turn>\n$140", "35"),
    ("Final answer: 56\n\nNext question: Lily has 3 cats. How many legs? Final answer: 12", "56"),
    ("30 / 5 = 6 groups.\n\nExercise 3: A baker sells 48 rolls in 4 hours. Answer: 12", "6"),
    ("He walks 2 * 3 = 6 km.\n\nHuman: how far in 5 days?\n\nAssistant: 6 * 5 = 30 km.", "6"),
    ("The answer is 250.\n<|endoftext|>Question: A pool holds 1000 liters... The answer is 500.", "250"),
    ("\\boxed{81}\n\n### Instruction:\nSolve 9 * 10.\n\n### Response:\n\\boxed{90}", "81"),
    # An unnumbered "Example:" that goes on on its own line is reasoning, not a new block.
    (
        "Take an example.\nExample: with 10 eggs she sells 10 - 7 = 3.\nWith 16: 16 - 7 = 9 and 9 * 2 = 18.\n#### 18",
        "18",
    ),
]

# Numbers written as words.
NUMBER_WORDS = [
    ("She had 20 books and gave away 8, so she has twelve books left.", "12"),
    ("The answer is eighteen.", "18"),
    ("So in total there are eighteen books on the shelf.", "18"),
    ("#### twenty-five", "25"),
    ("Final answer: one hundred and five", "105"),
    ("The answer is Seventy-Two.", "72"),
    ("Answer: zero, because all 6 cookies were eaten.", "0"),
    ("The answer is one.", "1"),
    ("Altogether he planted two thousand three hundred trees.", "2300"),
    ("So she needs fifteen more stickers.", "15"),
    ("\\boxed{\\text{nine}}", "9"),
    ("Each friend gets 3 slices, one for each hour. In total they eat 3 * 4 = 12.", "12"),  # "one" is no answer
    ("There are 7 kids and each one gets a balloon.", "7"),  # a lone "one" in running text is a pronoun
]

# Mixed numbers: a whole number and a proper fraction.
MIXED_NUMBERS = [
    ("She needs 2 1/2 cups of flour.", "2.5"),
    ("The answer is 3 3/4 pounds.", "3.75"),
    ("#### 1 1/2", "1.5"),
    ("Final answer: 5 1/3 hours", "16/3"),
    ("So each piece is 2\\frac{1}{4} feet long.", "2.25"),
    ("The answer is \\boxed{4\\frac{1}{2}}.", "4.5"),
    ("He walked 6 and 1/2 miles.", "6.5"),
    ("The recipe uses two and a half cups of sugar.", "2.5"),
    ("The answer is 7 and a half.", "7.5"),
    ("The rope is 3½ meters long.", "3.5"),
    ("The temperature changed by -1 1/2 degrees.", "-1.5"),
    ("She has 3 6/4 pies.", "1.5"),  # an improper "fraction part" is no mixed number: two numbers, the last
]

# Numbers scaled by a word.
SCALED_NUMBERS = [
    ("The city has 1.2 million people.", "1200000"),
    ("The answer is 3 billion.", "3000000000"),
    ("The company earned $2.5 million last year.", "2500000"),
    ("#### 12 thousand", "12000"),
    ("Final answer: 4.75 million dollars", "4750000"),
    ("The answer is 1,500 thousand.", "1500000"),
    ("So the stadium holds 45 thousand fans.", "45000"),
    ("The answer is 0.5 million.", "500000"),
    ("The answer is \\boxed{2.4 \\text{ million}}.", "2400000"),
    ("They raised twelve thousand dollars.", "12000"),
    ("The answer is 3 hundred.", "300"),
]

# Cut off by the token limit (finish reason "length") before any final answer: the last number of an unfinished
# step is no answer. (response, finish reason, canonical answer or None)
TRUNCATED = [
    ("First, 16 - 3 = 13 eggs. Then 13 - 4 = 9 eggs. She sells 9 eggs at $2 each, so 9 * 2 =", "length", None),
    ("Step 1: 120 / 4 = 30\nStep 2: 30 * 3 = 90\nStep 3: 90 - 15", "length", None),
    ("<think>\nOkay, let's see. Janet has 16 eggs. She eats 3, so 13 left. She bakes with 4, so", "length", None),
    ("Let me set up the equation: 5x + 12 = 47, so 5x = 35, x", "length", None),
    ("## Step 1: Find the cost of the shirts\nThe shirts cost 3 * 12 = 36 dollars.\n\n## Step 2:", "length", None),
    ("To solve this, we first find 25% of 80, which is 20. Then we subtract it from 80 to get", "length", None),
    ("1. He runs 3 km on Monday.\n2. He runs 5 km on Tuesday.\n3. On Wednesday he runs twice", "length", None),
    ("We know the train covers 60 miles per hour. After 2.5 hours it has covered 60 * 2.5 = 150", "length", None),
    ("She has 12 apples. She gives one to each of her 7 friends", "length", None),
    ("Let's compute the total: 1,200 + 3,450 + 780 = 5,430. Now subtract the", "length", None),
    ("The answer is 18. Let me double-check by recounting: 3 * 6 = 18, and then 18 + ", "length", "18"),
    ("#### 42\nTo verify, 6 * 7 = 42, and then we also", "length", "42"),
    ("So she pays \\boxed{25} dollars. Checking: 5 * 5", "length", "25"),
    ("First, 16 - 3 = 13 eggs. Then 13 - 4 = 9 eggs.", "stop", "9"),  # stopped: the last number is read
    ("First, 16 - 3 = 13 eggs. Then 13 - 4 = 9 eggs.", None, "9"),  # finish reason unknown: as before
]


def _read(response: str, finish_reason: str | None = None) -> str | None:
    return GSM8K.extract_answer(response, finish_reason=finish_reason)


@pytest.mark.parametrize("response, want", FRACTION_BEFORE_PUNCTUATION)
def test_a_fraction_before_punctuation_is_read_whole(response, want):
    assert _read(response) == want


@pytest.mark.parametrize("response, want", ANSWER_LINE_WITH_WORDS)
def test_an_answer_line_with_words_or_a_parenthetical_gives_its_number(response, want):
    assert _read(response) == want


@pytest.mark.parametrize("response, want", ANSWER_IS_ARITHMETIC)
def test_the_answer_is_followed_by_arithmetic_gives_the_result(response, want):
    assert _read(response) == want


@pytest.mark.parametrize("response, want", SELF_CORRECTION_AFTER_HASHES)
def test_a_correction_after_the_first_hashes_gives_the_corrected_answer(response, want):
    assert _read(response) == want


@pytest.mark.parametrize("response, want", MADE_UP_CONTINUATIONS)
def test_a_made_up_continuation_is_never_read(response, want):
    assert _read(response) == want


@pytest.mark.parametrize("response, want", NUMBER_WORDS)
def test_number_words_are_numbers(response, want):
    assert _read(response) == want


@pytest.mark.parametrize("response, want", MIXED_NUMBERS)
def test_mixed_numbers_are_one_value(response, want):
    assert _read(response) == want


@pytest.mark.parametrize("response, want", SCALED_NUMBERS)
def test_scaled_numbers_are_multiplied_out(response, want):
    assert _read(response) == want


@pytest.mark.parametrize("response, finish_reason, want", TRUNCATED)
def test_a_response_cut_off_before_stating_an_answer_has_none(response, finish_reason, want):
    assert _read(response, finish_reason) == want


def test_the_default_call_without_a_finish_reason_still_reads_the_last_number():
    # Existing callers pass only the text; for them nothing changes.
    assert GSM8K.extract("Step 1: 120 / 4 = 30\nStep 2: 30 * 3 = 90").answer == "90"
    assert GSM8K.extract("Step 1: 120 / 4 = 30", finish_reason="length").rule is None


def test_a_reasoning_model_is_read_after_its_thinking():
    response = "<think>\nSo the answer is 16? No wait, 16 + 2 = 18.\n</think>\n\nShe has 18 apples.\n\n**Answer:** 18"
    assert GSM8K.extract(response).answer == "18"
    # A draft inside the thinking is read only when nothing after it states an answer.
    assert GSM8K.extract("<think>The answer is 12.</think>\n").answer == "12"


def test_number_words_do_not_make_a_word_equivalent_to_a_number():
    # Equivalence compares canonical answers; reading words is extraction's job.
    assert GSM8K.is_equivalent("18", "eighteen") is False
