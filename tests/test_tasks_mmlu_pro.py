"""MMLU-Pro answers read from literal model outputs: ten letters A-J, explicit statements only, the last one wins."""

import pytest

from openrlhf_distill.tasks import Extraction, get_task

MMLU_PRO = get_task("mmlu_pro")

# (response, letter, rule that must read it)
EXTRACTIONS = [
    # The format our prompt and lm-evaluation-harness ask for.
    ("Photosynthesis takes in carbon dioxide. The answer is (E).", "E", "answer_is"),
    # Without parentheses.
    ("Mercury is closest to the Sun, so the answer is B.", "B", "answer_is"),
    # Lowercase letter in parentheses, lowercase phrase.
    ("the answer is (c)", "C", "answer_is"),
    # Letters beyond E are options too: MMLU-Pro has ten of them, A to J.
    ("The answer is (F).", "F", "answer_is"),
    ("The answer is (G)", "G", "answer_is"),
    ("Therefore, the answer is H.", "H", "answer_is"),
    ("The answer is (J).", "J", "answer_is"),
    # "I" is an option when it stands alone or in parentheses...
    ("A decagon has ten sides, listed as option I. The answer is (I).", "I", "answer_is"),
    ("The answer is I.", "I", "answer_is"),
    ("The answer is I", "I", "answer_is"),
    # ...and the pronoun "I" in running text never is: this statement names B.
    ("I think about it carefully. I am sure the answer is B", "B", "answer_is"),
    # "the correct answer is", with bold markup and a colon.
    ("The correct answer is: **(D)**", "D", "answer_is"),
    # The word "option" between the phrase and the letter.
    ("After eliminating the others, the answer is option A because it is the only prime.", "A", "answer_is"),
    # A letter followed by its option text.
    ("The answer is C) 42", "C", "answer_is"),
    # The "Answer: X" label.
    ("Mars is red because of iron oxide.\nAnswer: D", "D", "answer_colon"),
    ("**Final Answer:** (J)", "J", "answer_colon"),
    # lm-eval's few-shot prompt ends "Answer: Let's think step by step."; "Let's" is not an option letter.
    ("Answer: Let's think step by step. Water boils at 100 C. The answer is (A).", "A", "answer_is"),
    # "the correct choice / option is X".
    ("Comparing all ten, the correct choice is G.", "G", "correct_choice"),
    ("The best option is (h).", "H", "correct_choice"),
    # A boxed letter, as math-tuned models write.
    ("So the final answer is $\\boxed{B}$.", "B", "boxed"),
    ("\\boxed{\\text{(I)}}", "I", "boxed"),
    # Several statements: the LAST wins, the model revised itself.
    ("The answer is (B). Wait, I misread the units; recomputing gives 12 m/s. The answer is (D).", "D", "answer_is"),
    ("Answer: A. On reflection the correct option is D.", "D", "correct_choice"),
    # ...but a hallucinated next question's statement is never read.
    ("The answer is (C).\n\nQuestion: Which gas is inert?\nOptions:\nA. Neon\nB. Oxygen\nAnswer: A", "C", "answer_is"),
    # A far-away answer: the whole response is searched, not its last 300 characters.
    ("The answer is (G). " + "Checking the other options once more just to be sure. " * 40, "G", "answer_is"),
]

# Responses that name no option: no guess, no random letter, no first letter in sight.
NO_ANSWERS = [
    "",  # empty
    "I think it depends on the context.",  # the pronoun I, and no statement
    "I am not sure. It could be several things.",  # capital letters in running text are not answers
    "Option B looks plausible but so does C.",  # letters without an answer statement
    "The answer is (K).",  # K is beyond J: MMLU-Pro has ten options
    "The answer is Z",  # not an option letter at all
    "The answer is I think B",  # "I think": the pronoun, and the statement then names nothing
    "the answer is a bit unclear to me",  # the article "a", not option A
    "The answer is: Let me reconsider.",  # a word, not a letter
    "The answer is not obvious.",  # a word
]


@pytest.mark.parametrize("response, letter, rule", EXTRACTIONS)
def test_mmlu_pro_reads_each_literal_output_with_the_expected_rule(response, letter, rule):
    assert MMLU_PRO.extract(response) == Extraction(letter, rule)


@pytest.mark.parametrize("response", NO_ANSWERS)
def test_mmlu_pro_never_guesses_a_letter_when_no_statement_names_one(response):
    assert MMLU_PRO.extract(response) == Extraction(None, None)
    assert MMLU_PRO.extract_answer(response) is None


@pytest.mark.parametrize("letter", list("ABCDEFGHIJ"))
def test_mmlu_pro_reads_every_one_of_the_ten_letters(letter):
    assert MMLU_PRO.extract_answer(f"The answer is ({letter}).") == letter
    assert MMLU_PRO.extract_answer(f"Answer: {letter.lower()})") == letter


# (gold field, canonical letter)
GOLDS = [("C", "C"), ("c", "C"), (" J ", "J"), (0, "A"), (2, "C"), (9, "J")]


@pytest.mark.parametrize("gold, letter", GOLDS)
def test_mmlu_pro_gold_is_a_letter_from_a_letter_or_an_index(gold, letter):
    assert MMLU_PRO.parse_gold({"id": "q1", "gold": gold}) == letter


@pytest.mark.parametrize("gold", [None, "", "K", "AB", 10, -1, True, 2.0])
def test_mmlu_pro_gold_that_is_not_a_letter_a_to_j_or_an_index_raises_naming_the_field(gold):
    with pytest.raises(ValueError, match="'gold'"):
        MMLU_PRO.parse_gold({"id": "q1", "gold": gold})


# (a, b, equivalent?)
EQUIVALENCES = [("B", "B", True), ("b", "B", True), ("B", "D", False), ("B", None, False), (None, None, False)]


@pytest.mark.parametrize("a, b, equivalent", EQUIVALENCES)
def test_mmlu_pro_equivalence_is_same_letter_and_none_never_matches(a, b, equivalent):
    assert MMLU_PRO.is_equivalent(a, b) is equivalent


OPTIONS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]


def test_mmlu_pro_zero_shot_prompt_lists_all_ten_options_lettered_a_to_j():
    record = {"id": "q1", "prompt": "How many sides does a decagon have?", "meta": {"options": OPTIONS}}
    (message,) = MMLU_PRO.format_prompt(record)
    assert message["role"] == "user"
    assert "\nA. 1\nB. 2\n" in message["content"] and "\nJ. 10\n" in message["content"]
    assert "The answer is (X)" in message["content"]


def test_mmlu_pro_reads_options_from_the_top_level_field_of_the_hugging_face_layout():
    (message,) = MMLU_PRO.format_prompt({"id": "q1", "prompt": "Pick one.", "options": ["yes", "no"]})
    assert "\nA. yes\nB. no\n" in message["content"]


@pytest.mark.parametrize("options", [None, [], [str(i) for i in range(11)], "A. yes B. no"])
def test_mmlu_pro_prompt_without_one_to_ten_options_raises_naming_the_field(options):
    with pytest.raises(ValueError, match="options"):
        MMLU_PRO.format_prompt({"id": "q1", "prompt": "Pick one.", "meta": {"options": options}})


def test_mmlu_pro_few_shot_prompt_ends_like_lm_evaluation_harness_and_its_exemplars_read_back():
    record = {"id": "q1", "prompt": "Pick one.", "meta": {"options": OPTIONS, "category": "math"}}
    prompt = MMLU_PRO.format_prompt(record, style="few_shot")
    assert prompt.startswith("The following are multiple choice questions (with answers) about math.")
    assert prompt.endswith(
        "Question:\nPick one.\nOptions:\nA. 1\n"
        + "\n".join(f"{letter}. {option}" for letter, option in zip("BCDEFGHIJ", OPTIONS[1:], strict=True))
        + "\nAnswer: Let's think step by step."
    )
    exemplars = prompt.split("\n\nQuestion:")[1:-1]
    assert [MMLU_PRO.extract_answer(e) for e in exemplars] == ["B", "C", "I"]
