"""Boxed math answers read from literal model outputs, and equivalence through math-verify, in any thread."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from openrlhf_distill.tasks import Extraction, get_task

MATH = get_task("math")

# (response, canonical answer, rule that must read it)
EXTRACTIONS = [
    # The usual ending.
    ("So $x = 6$. The final answer is $\\boxed{6}$.", "6", "boxed"),
    # Nested braces stay whole.
    ("The probability is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "boxed"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}", "boxed"),
    # \fbox is a box too.
    ("Hence \\fbox{12}.", "12", "boxed"),
    # The LAST box wins: earlier boxes were intermediate results or abandoned attempts.
    ("First \\boxed{3}, but that ignores the second root, so \\boxed{3, -2}.", "3, -2", "boxed"),
    # Whitespace inside the box is collapsed.
    ("\\boxed{ x^2 +\n  1 }", "x^2 + 1", "boxed"),
    # "\boxed 5" without braces.
    ("The answer is \\boxed 5", "5", "boxed"),
    # A box left open by a truncated response is skipped; the complete one before it is read.
    ("We get \\boxed{7}. Double-checking: \\boxed{\\frac{7", "7", "boxed"),
    # The Minerva format lm-evaluation-harness prompts for.
    ("Final Answer: The final answer is $5\\sqrt{2}$. I hope it is correct.", "5\\sqrt{2}", "final_answer"),
    # A box early and a long tail: the whole response is searched.
    ("\\boxed{42}\n" + "Let me verify this once more in another way. " * 60, "42", "boxed"),
    # A hallucinated next problem's box is never read.
    ("So the sum is \\boxed{10}.\n\nProblem:\nWhat is $2+2$?\n\nSolution: \\boxed{4}", "10", "boxed"),
]

NO_ANSWERS = [
    "",  # empty
    "The answer is 6.",  # no box: math answers must be boxed (or in the Minerva sentence)
    "\\boxed{}",  # an empty box
    "\\boxed{\\frac{1",  # a box truncated before it closed
    "\\boxed{" * 5000,  # a degenerate response that never closes its boxes (read in one linear pass)
]


@pytest.mark.parametrize("response, answer, rule", EXTRACTIONS)
def test_math_reads_the_last_box_of_each_literal_output(response, answer, rule):
    assert MATH.extract(response) == Extraction(answer, rule)


@pytest.mark.parametrize("response", NO_ANSWERS)
def test_math_returns_no_answer_without_a_complete_box(response):
    assert MATH.extract(response) == Extraction(None, None)


# (a, b, equivalent?) decided by math-verify
EQUIVALENCES = [
    ("\\frac{1}{2}", "\\frac{1}{2}", True),  # same LaTeX
    ("\\frac{1}{2}", "0.5", True),  # fraction and decimal
    ("\\frac12", "\\dfrac{1}{2}", True),  # two LaTeX spellings
    ("18", "18.0", True),  # trailing zero
    ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2", True),  # same expression, different layout
    ("(x+1)^2", "x^2+2x+1", True),  # symbolic equality
    ("\\{1, 2\\}", "\\{2, 1\\}", True),  # sets ignore order
    ("x = 2", "2", True),  # an assignment and its value: either direction of verify is enough
    ("2", "x = 2", True),  # ...so the relation is symmetric
    ("2", "3", False),
    ("\\pi", "3.14", False),  # an approximation is not the value
    ("[1, 2)", "[1, 2]", False),  # different intervals
    ("\\frac{1}{2}", None, False),  # None is never equivalent
    (None, None, False),
]


@pytest.mark.parametrize("a, b, equivalent", EQUIVALENCES)
def test_math_equivalence_goes_through_math_verify(a, b, equivalent):
    assert MATH.is_equivalent(a, b) is equivalent


def test_math_equivalence_works_in_worker_threads_where_signal_timeouts_are_impossible():
    # math-verify's default timeout uses signal.alarm, which raises ValueError outside the main thread.
    # Answers no other test uses, so that parsing (cached per answer) happens in the workers too.
    table = [("\\frac{2}{4}", "0.50", True), ("\\frac{9}{3}", "3.0", True), ("\\sqrt{16}", "5", False)]
    table += EQUIVALENCES
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda row: MATH.is_equivalent(row[0], row[1]), table))
    assert results == [equivalent for _, _, equivalent in table]


# (gold field, canonical gold)
GOLDS = [
    ("The roots sum to $-b/a = 3$, so the answer is $\\boxed{3}$.", "3"),  # a worked solution: its last box
    ("We get \\boxed{2} and then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # several boxes: the last
    ("\\frac{1}{2}", "\\frac{1}{2}"),  # a bare answer, as MATH-500's "answer" field stores it
    ("  5\\sqrt{2} ", "5\\sqrt{2}"),  # whitespace trimmed
    (7, "7"),  # a number
]


@pytest.mark.parametrize("gold, answer", GOLDS)
def test_math_gold_is_the_last_box_or_the_raw_answer(gold, answer):
    assert MATH.parse_gold({"id": "q1", "gold": gold}) == answer


@pytest.mark.parametrize("gold", [None, "", "   ", "\\boxed{ }"])
def test_math_gold_that_is_missing_or_empty_raises_naming_the_field(gold):
    with pytest.raises(ValueError, match="'gold'"):
        MATH.parse_gold({"id": "q1", "gold": gold})


def test_math_gold_and_a_differently_written_extracted_answer_are_equivalent():
    gold = MATH.parse_gold({"id": "q1", "gold": "Half of one is $\\boxed{\\frac{1}{2}}$."})
    assert MATH.is_equivalent(gold, MATH.extract_answer("So the answer is \\boxed{0.5}."))


def test_math_zero_shot_prompt_asks_for_a_box_and_few_shot_uses_the_minerva_layout():
    (message,) = MATH.format_prompt({"id": "q1", "prompt": "What is $1+1$?"})
    assert message["content"].startswith("What is $1+1$?") and "\\boxed{}" in message["content"]
    prompt = MATH.format_prompt({"id": "q1", "prompt": "What is $1+1$?"}, style="few_shot")
    assert prompt.endswith("Problem:\nWhat is $1+1$?\n\nSolution:")
    assert prompt.count("Final Answer: The final answer is $") == 4
