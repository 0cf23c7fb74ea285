"""The task registry, prompt formatting for string and chat-message prompts, and the arithmetic and open tasks."""

import dataclasses

import pytest

from openrlhf_distill.tasks import TASK_NAMES, Extraction, Task, get_task


def test_the_registry_knows_the_five_tasks_by_name():
    assert TASK_NAMES == ("gsm8k", "mmlu_pro", "math", "arithmetic", "open")
    for name in TASK_NAMES:
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name


def test_an_unknown_task_name_raises_an_error_listing_the_known_names():
    with pytest.raises(ValueError, match="gsm8kk.*gsm8k, mmlu_pro, math, arithmetic, open"):
        get_task("gsm8kk")


def test_task_options_reach_the_constructor():
    assert get_task("gsm8k", last_number_fallback=False).last_number_fallback is False
    with pytest.raises(TypeError):
        get_task("mmlu_pro", last_number_fallback=False)


def test_an_extraction_is_a_frozen_answer_and_rule_pair():
    extraction = Extraction("18", "hashes")
    with pytest.raises(dataclasses.FrozenInstanceError):
        extraction.answer = "19"


RECORDS = {
    "gsm8k": {"id": "g1", "prompt": "What is 3 * 6?", "task": "gsm8k"},
    "mmlu_pro": {"id": "m1", "prompt": "Pick one.", "task": "mmlu_pro", "meta": {"options": ["x", "y"]}},
    "math": {"id": "h1", "prompt": "What is $1+1$?", "task": "math"},
    "arithmetic": {"id": "a1", "prompt": "what is 12 + 7?", "task": "arithmetic"},
    "open": {"id": "o1", "prompt": "Write a haiku about rain.", "task": "open"},
}


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_formats_a_string_prompt_as_one_user_message_by_default(name):
    (message,) = get_task(name).format_prompt(RECORDS[name])
    assert message["role"] == "user" and RECORDS[name]["prompt"] in message["content"]


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_returns_a_chat_message_prompt_unchanged_as_a_copy(name):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "what is 2 + 2?"}]
    formatted = get_task(name).format_prompt({"id": "c1", "prompt": messages, "task": name})
    assert formatted == messages
    formatted[0]["content"] = "changed"
    assert messages[0]["content"] == "Be brief."  # the caller's record is never modified


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize("prompt", [None, "", "   ", 42])
def test_every_task_rejects_a_missing_or_empty_prompt_naming_the_field(name, prompt):
    with pytest.raises(ValueError, match="'prompt'"):
        get_task(name).format_prompt({"id": "x1", "prompt": prompt})


@pytest.mark.parametrize("name", ["arithmetic", "open"])
def test_tasks_without_a_few_shot_style_say_which_styles_they_have(name):
    with pytest.raises(ValueError, match="zero_shot_cot"):
        get_task(name).format_prompt(RECORDS[name], style="few_shot")


def test_arithmetic_prompt_is_the_bare_question_the_toy_models_were_trained_on():
    assert get_task("arithmetic").format_prompt(RECORDS["arithmetic"]) == [
        {"role": "user", "content": "what is 12 + 7?"}
    ]


# (toy model response, answer, rule) for the arithmetic task, which reads answers with GSM8K's rules
ARITHMETIC_EXTRACTIONS = [
    ("12 + 7 = 19. #### 19", "19", "hashes"),  # the toy world's SFT format
    ("#### 19 correct", "19", "hashes"),  # words after the answer are ignored
    ("12 + 7 = 19", "19", "last_number"),  # no marker: the last number
    ("19", "19", "last_number"),  # a bare number
    ("#### 019", "19", "hashes"),  # leading zeros are not a different answer
    ("#### 20\n#### 19", "20", "hashes"),  # the first hashes answer, as in GSM8K
    ("I do not know", None, None),  # nothing to read
]


@pytest.mark.parametrize("response, answer, rule", ARITHMETIC_EXTRACTIONS)
def test_arithmetic_reads_toy_model_outputs_with_the_gsm8k_rules(response, answer, rule):
    assert get_task("arithmetic").extract(response) == Extraction(answer, rule)


def test_arithmetic_gold_and_equivalence_are_integers():
    task = get_task("arithmetic")
    assert task.parse_gold({"id": "a1", "gold": "19"}) == "19"
    assert task.parse_gold({"id": "a1", "gold": 19}) == "19"
    assert task.is_equivalent("19", "19.0") and not task.is_equivalent("19", "20")


@pytest.mark.parametrize(
    "response",
    [
        "Rain on the window, / soft drums in the quiet night, / the street lamps listen.",  # a real answer
        "#### 18",  # even what would be an answer elsewhere is not read: open tasks are judged, not voted
        "The answer is (B).",
        "",
    ],
)
def test_open_tasks_never_extract_an_answer(response):
    assert get_task("open").extract(response) == Extraction(None, None)


def test_open_tasks_never_call_two_answers_equivalent():
    task = get_task("open")
    assert task.is_equivalent("same", "same") is False
    assert task.is_equivalent(None, None) is False


def test_open_task_gold_is_a_reference_response_and_missing_gold_names_the_field():
    task = get_task("open")
    assert task.parse_gold({"id": "o1", "gold": " A reference haiku. "}) == "A reference haiku."
    with pytest.raises(ValueError, match="o1.*'gold'"):
        task.parse_gold({"id": "o1"})
