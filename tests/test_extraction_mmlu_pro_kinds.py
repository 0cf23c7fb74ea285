"""MMLU-Pro outputs of the kinds issue 16 found misread, written for these tests in several model families' styles.

Each table is one kind: (response, the letter a reader must take from it, or None for no answer).
The benchmark (`benchmarks/bench_extraction.py`) reads these tables too, beside its own corpus.
"""

import pytest

from openrlhf_distill.tasks import get_task

MMLU_PRO = get_task("mmlu_pro")

# A letter wrapped in quotes, bold or LaTeX after an answer statement.
WRAPPED_LETTERS = [
    ('Comparing the yields, the answer is "B".', "B"),
    ("The answer is 'C'.", "C"),
    ("So the correct answer is \u201cD\u201d.", "D"),
    ("Answer: `E`", "E"),
    ("The answer is $\\text{(G)}$.", "G"),
    ("The answer is \\(\\text{(H)}\\).", "H"),
    ("Therefore, the final answer is $\\textbf{F}$.", "F"),
    ("The answer is $\\mathrm{(A)}$", "A"),
    ("**Final Answer:** $\\boxed{\\text{J}}$", "J"),
    ("The answer is \\[\\text{(I)}\\]", "I"),
    ("Answer: **(C)**", "C"),
    ("The answer is option \u2018D\u2019.", "D"),
]

# "(F) is the correct answer", "option (X) is correct" and the like: a letter, then the verdict.
LETTER_CALLED_CORRECT = [
    ("Reviewing each option, the rate law only fits one. (F) is the correct answer.", "F"),
    ("So option (C) is correct.", "C"),
    ("Therefore, Option D is the right answer.", "D"),
    ("After checking the units, B is correct.", "B"),
    ("(G) 42 m/s is the correct answer, since v = at.", "G"),
    ("Thus option (A) is the best answer here.", "A"),
    ("**(E)** is the correct answer.", "E"),
    ("Choice H is correct because the other choices ignore friction.", "H"),
    ('"J" is the correct answer.', "J"),
    ("A is incorrect, C is incorrect, so (B) is correct.", "B"),
    ("Statement I is correct, but statement II is not.", None),  # a roman-numeral statement, not option I
    ("Is (D) the correct answer? Let me check the others first.", None),  # a question, not a verdict
]

# A final line that is just the option: "(X) value".
FINAL_LINE_OPTION = [
    ("The energy is E = mc^2 = 9 x 10^16 J.\n\n(C) 9 x 10^16 J", "C"),
    ("Working through the integral gives 1/3.\n\n**(D) 1/3**", "D"),
    ("Comparing the three countries, the highest GDP per capita is Norway's.\n(B) Norway", "B"),
    ("We need the smallest prime factor of 91, which is 7.\n\n(A) 7", "A"),
    ("The reaction is exothermic, releasing heat.\n\n(H)", "H"),
    ("Final result:\n(J) 2.5 mol/L", "J"),
    ("Using Ohm's law, I = V/R = 12/4 = 3 A.\n\n**(F)** 3 A", "F"),
    ("The author argues for utilitarianism.\n\n> (E) utilitarianism", "E"),
    ("Net present value works out to $1,200.\n\n(G) $1,200\n", "G"),
    ("The answer is (B). Hmm, recomputing the angle gives 60 degrees.\n\n(D) 60 degrees", "D"),
    ("The options are:\n(A) 1\n(B) 2\n(C) 3", None),  # a listing of the options answers nothing
    ("Let me list what remains:\n(H) 14\n(I) 15", None),
]

# Words between "Answer:" and the letter: "I think it's (B)" and its kin.
ANSWER_WITH_LEAD_IN = [
    ("Answer: I think it's (B)", "B"),
    ("Answer: I believe it is (D).", "D"),
    ("The answer is probably (C).", "C"),
    ("Answer: It's (G), since the others contradict the data.", "G"),
    ("Answer: I'd go with (A).", "A"),
    ("The answer is most likely (J).", "J"),
    ("Answer: I think it\u2019s (E)", "E"),
    ("Answer: I'm fairly sure it is (F).", "F"),
    ("The answer is clearly (H).", "H"),
    ("Answer: That's (I).", "I"),
    ("Answer: I would say (C)", "C"),
    ("Answer: I'll go with option B.", "B"),
    ("The answer is I think B", None),  # "I think B": the statement names nothing for sure
]

# A hedge between two letters: no answer, rather than the first.
HEDGES = [
    ("The answer is either (B) or (D).", None),
    ("The answer is (B) or (D).", None),
    ("Answer: B/D", None),
    ("The answer is between (C) and (F).", None),
    ("Answer: A or C, I can't decide.", None),
    ("The answer is (B), or possibly (E).", None),
    ("The correct option is either G or H.", None),
    ("B or D is correct.", None),
    ("The answer is (A). Or maybe (C).", None),
    ("I am torn. The answer is B, C.", None),
    ("The answer is (B) or (D). Rechecking the second condition rules out B, so the answer is (D).", "D"),
    ("The answer is (B), not (D).", "B"),  # a contrast, not a hedge
    ("The answer is (C) and I am confident about it.", "C"),  # "and I am": the pronoun, not a second option
]


@pytest.mark.parametrize("response, want", WRAPPED_LETTERS)
def test_a_letter_wrapped_in_quotes_or_latex_is_read(response, want):
    assert MMLU_PRO.extract_answer(response) == want


@pytest.mark.parametrize("response, want", LETTER_CALLED_CORRECT)
def test_a_letter_called_the_correct_answer_is_read(response, want):
    assert MMLU_PRO.extract_answer(response) == want


@pytest.mark.parametrize("response, want", FINAL_LINE_OPTION)
def test_a_final_line_that_is_just_the_option_is_read(response, want):
    assert MMLU_PRO.extract_answer(response) == want


@pytest.mark.parametrize("response, want", ANSWER_WITH_LEAD_IN)
def test_an_answer_statement_with_a_lead_in_is_read(response, want):
    assert MMLU_PRO.extract_answer(response) == want


@pytest.mark.parametrize("response, want", HEDGES)
def test_a_hedge_between_two_letters_gives_no_answer(response, want):
    assert MMLU_PRO.extract_answer(response) == want


def test_mmlu_pro_has_no_unstated_rule_so_a_cut_off_statement_still_counts():
    # Every MMLU-Pro rule is an explicit statement; the finish reason changes nothing.
    assert MMLU_PRO.extract_answer("The answer is (C). To double-check, the", finish_reason="length") == "C"
    assert MMLU_PRO.extract_answer("Option B looks plausible but", finish_reason="length") is None


def test_mmlu_pro_reads_a_reasoning_model_after_its_thinking():
    response = "<think>The answer is (A)? No: the units rule A out.</think>\n\nThe answer is (C)."
    assert MMLU_PRO.extract_answer(response) == "C"
