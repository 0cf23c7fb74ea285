"""The reward function of the vote / gold / hybrid schemes on literal responses, its labels, its config, the file
OpenRLHF loads, and the same file driven through OpenRLHF's own rollout code (SingleTurnAgentExecutor)."""

import asyncio
import importlib.util
import json
import logging
import math
import os
from types import SimpleNamespace

import pytest

from openrlhf_distill.build import build_datasets
from openrlhf_distill.compat.formats import reward_model_input
from openrlhf_distill.label import label_samples
from openrlhf_distill.records import RewardLabel, decode_reward_label, encode_reward_label
from openrlhf_distill.rewards import (
    FUNCTION_SCHEMES,
    SCHEMES,
    RewardConfig,
    RewardModelServer,
    make_reward_func,
    write_reward_file,
)
from openrlhf_distill.rewards.function import LOG_KEYS, RM_LOG_KEY

EOS = "<|im_end|>"
# A prompt as OpenRLHF passes it: after the chat template (the tiny models' ChatML template), generation prompt on.
PROMPT = "<|im_start|>user\nA pen costs 3 dollars. How much do 6 pens cost?<|im_end|>\n<|im_start|>assistant\n"
# The pseudo-label is WRONG on purpose (the teacher's vote said 20, gold says 18), so that every row shows which
# of the two a scheme rewards.
LABEL = encode_reward_label(id="q1", task="gsm8k", label="20", gold="18")

# (response as decoded after the prompt, vote reward, gold reward, answer found)
RESPONSES = [
    ("3 * 6 = 18\n#### 18", 0.0, 1.0, 1.0),  # right by gold, against the (wrong) pseudo-label
    ("3 * 6 = 20\n#### 20", 1.0, 0.0, 1.0),  # agrees with the pseudo-label
    ("#### 20.00", 1.0, 0.0, 1.0),  # an equivalent form of 20
    ("The answer is $20.", 1.0, 0.0, 1.0),  # another rule, another form
    ("#### 20<|im_end|>", 1.0, 0.0, 1.0),  # the EOS text vLLM leaves at the end
    ("#### 20<|im_end|>\n<|endoftext|>", 1.0, 0.0, 1.0),  # several special tokens and whitespace
    ("#### 18.0<|im_end|>", 0.0, 1.0, 1.0),
    ("#### 7", 0.0, 0.0, 1.0),  # a wrong answer
    ("I do not know how to solve this.<|im_end|>", 0.0, 0.0, 0.0),  # no answer at all
    ("", 0.0, 0.0, 0.0),  # an empty response
]


def _call(func, response, label=LABEL, prompt=PROMPT, query=None):
    out = func([prompt + response if query is None else query], [prompt], [label])
    return out["rewards"].tolist()[0], out


@pytest.mark.parametrize("response, vote, gold, found", RESPONSES)
def test_vote_and_gold_rewards_of_literal_responses(response, vote, gold, found):
    for scheme, want in (("vote", vote), ("gold", gold)):
        reward, out = _call(make_reward_func(RewardConfig(scheme)), response)
        assert reward == want, (scheme, response)
        assert out["scores"].tolist() == [want]
        logs = {key: value.tolist() for key, value in out["extra_logs"].items()}
        assert logs == {
            "distill/pseudo_correct": [vote],
            "distill/has_pseudo_label": [1.0],
            "distill/gold_correct": [gold],
            "distill/has_gold": [1.0],
            "distill/answer_found": [found],
        }


def test_extra_logs_have_the_same_keys_whatever_the_row():
    # OpenRLHF averages extra_logs per step: a key missing from some calls would break or skew its log line.
    no_labels = encode_reward_label(id="q2", task="gsm8k", label=None, gold=None)
    labels = [LABEL, no_labels, "20", {"label": "20"}, 20]
    func = make_reward_func(RewardConfig("vote", task="gsm8k"))
    keys = {tuple(sorted(_call(func, r, label=lab)[1]["extra_logs"])) for r, *_ in RESPONSES for lab in labels}
    assert keys == {tuple(sorted(LOG_KEYS))}
    for response, *_ in RESPONSES:
        reward, out = _call(func, response, label=no_labels)
        assert reward == 0.0  # no pseudo-label: nothing to agree with
        assert (
            out["extra_logs"]["distill/has_pseudo_label"].item() == out["extra_logs"]["distill/has_gold"].item() == 0
        )


# --- the response inside the query ------------------------------------------------------------------------------
def test_the_response_is_found_when_the_query_does_not_start_with_the_prompt(caplog):
    func = make_reward_func(RewardConfig("vote"))
    # OpenRLHF cut the prompt's start to fit max_len: the prompt's end is still there.
    assert _call(func, "", query=PROMPT[25:] + "#### 20<|im_end|>")[0] == 1.0
    # decoding changed a space in the middle of the prompt: its end (the last 64 characters) is intact
    assert _call(func, "", query=PROMPT.replace("A pen", "A  pen") + "#### 20")[0] == 1.0
    # nothing of the prompt's end matches: the response is taken from the prompt's length on
    changed = PROMPT.replace("assistant", "Assistant")
    assert _call(func, "", query=changed + "#### 20")[0] == 1.0
    assert "does not start with the prompt" in caplog.text


def test_answers_inside_the_prompt_never_earn_a_reward():
    # A few-shot prompt whose examples end in "#### 20": with a mismatched query the prompt must still not be
    # read as the response.
    few_shot = "Q: 4 * 5?\nA: #### 20\n\nQ: A pen costs 3 dollars. How much do 6 pens cost?\nA:"
    func = make_reward_func(RewardConfig("vote"))
    assert _call(func, " I am not sure.", prompt=few_shot)[0] == 0.0
    assert _call(func, "", prompt=few_shot, query=few_shot[5:] + " I am not sure.")[0] == 0.0
    assert _call(func, "", prompt=few_shot, query=few_shot.replace("Q:", "Q :") + " I am not sure.")[0] == 0.0


# --- labels ---------------------------------------------------------------------------------------------------------
def test_reward_labels_decode_from_json_string_dict_and_plain_string():
    assert decode_reward_label(LABEL) == RewardLabel(id="q1", task="gsm8k", label="20", gold="18")
    assert decode_reward_label({"label": "20", "task": "math"}) == RewardLabel(task="math", label="20")
    assert decode_reward_label({"id": 3, "label": None, "gold": 18}) == RewardLabel(id=3, gold="18")
    assert decode_reward_label("20") == RewardLabel(label="20", from_plain_string=True)
    assert decode_reward_label(20) == RewardLabel(label="20", from_plain_string=True)  # a numeric column
    assert decode_reward_label("") == RewardLabel(label=None, from_plain_string=True)  # judged tasks: no label
    # Plain strings are never read as JSON: "7" stays a string, and a set written with braces stays a label.
    assert decode_reward_label("7").label == "7" and decode_reward_label("{1, 2}").label == "{1, 2}"
    row = json.loads(LABEL)
    assert row == {"id": "q1", "task": "gsm8k", "label": "20", "gold": "18"}


@pytest.mark.parametrize(
    "value, message",
    [
        ('{"id": "q1", "label": "7"', r"looks like JSON but is malformed"),
        ('{"id": "q1"}', r"field 'label': missing"),
        ({"id": "q1"}, r"field 'label': missing"),
        ({"label": ["7"]}, r"field 'label': must be a string, a number or null"),
        ({"label": "7", "task": 3}, r"field 'task': must be a task name or null"),
        ({"label": "7", "gold": True}, r"field 'gold': must be a string, a number or null"),
        ({"label": "7", "id": ""}, r"field 'id': must be a non-empty string"),
        (None, r"must be a JSON string of \{id, task, label, gold\}"),
        (True, r"got bool"),
        (["7"], r"got list"),
    ],
)
def test_malformed_reward_labels_are_errors_naming_the_field(value, message):
    with pytest.raises(ValueError, match=message):
        decode_reward_label(value)


def test_plain_labels_mean_the_pseudo_label_or_for_the_gold_scheme_the_gold_answer():
    vote, gold = make_reward_func(RewardConfig("vote", task="gsm8k")), make_reward_func(RewardConfig("gold", "gsm8k"))
    assert _call(vote, "#### 20", label="20")[0] == 1.0 and _call(vote, "#### 18", label="20")[0] == 0.0
    assert _call(gold, "#### 18", label="18.00")[0] == 1.0 and _call(gold, "#### 20", label="18")[0] == 0.0
    assert _call(vote, "#### 20", label={"label": "20"})[0] == 1.0
    assert _call(vote, "#### 20", label=20)[0] == 1.0


def test_the_rows_task_wins_over_the_configs_and_one_of_them_is_needed():
    # mmlu_pro would read "#### 20" as no answer (letters only): the row's gsm8k is used
    assert _call(make_reward_func(RewardConfig("vote", task="mmlu_pro")), "#### 20")[0] == 1.0
    mmlu = encode_reward_label(id="m1", task="mmlu_pro", label="C", gold=None)
    assert _call(make_reward_func(RewardConfig("vote", task="gsm8k")), "The answer is (C).", label=mmlu)[0] == 1.0
    with pytest.raises(ValueError, match="no task for reward label"):
        _call(make_reward_func(RewardConfig("vote")), "#### 20", label="20")
    with pytest.raises(ValueError, match="task 'open', which has no answers"):
        _call(make_reward_func(RewardConfig("vote")), "x", label={"label": None, "task": "open"})


def test_the_gold_scheme_needs_gold_and_other_schemes_survive_unreadable_gold(caplog):
    no_gold = encode_reward_label(id="q9", task="gsm8k", label="20", gold=None)
    with pytest.raises(ValueError, match="scheme 'gold' needs a gold answer.*'q9'"):
        _call(make_reward_func(RewardConfig("gold")), "#### 20", label=no_gold)
    # gold the task cannot read only goes unlogged under vote: it is not what vote rewards
    bad_gold = encode_reward_label(id="q9", task="gsm8k", label="20", gold="twenty")
    reward, out = _call(make_reward_func(RewardConfig("vote")), "#### 20", label=bad_gold)
    assert reward == 1.0 and out["extra_logs"]["distill/has_gold"].item() == 0.0
    assert "field 'gold'" in caplog.text
    # ... while an unreadable pseudo-label under vote is an error naming the field
    with pytest.raises(ValueError, match="field 'label'"):
        _call(make_reward_func(RewardConfig("vote")), "#### 20", label={"label": "twenty", "task": "gsm8k"})


# --- hybrid, against a server with a stand-in scorer (the real RM is in test_reward_server.py) -------------------
class TextLengthScorer:
    """Reward = len(text) / 100, exactly: what the server scored can be read back from the reward."""

    eos_token = EOS

    def __init__(self):
        self.texts = []

    def scores(self, texts):
        self.texts += texts
        return [len(t) / 100 for t in texts]


@pytest.fixture
def length_server():
    scorer = TextLengthScorer()
    with RewardModelServer(None, scorer=scorer, max_wait_ms=1) as server:
        yield server, scorer


def test_hybrid_is_alpha_rm_plus_beta_vote_and_the_rm_scores_the_training_text(length_server):
    server, scorer = length_server
    func = make_reward_func(RewardConfig("hybrid", alpha=0.5, beta=2.0, rm_url=server.url))
    for response, vote, *_ in RESPONSES:
        reward, out = _call(func, response)
        # the RM input is built like its training text: prompt + response, " " + EOS unless it ends with EOS
        text = reward_model_input(PROMPT + response, EOS)
        assert scorer.texts[-1] == text
        assert out["extra_logs"][RM_LOG_KEY].item() == pytest.approx(len(text) / 100)
        assert reward == pytest.approx(0.5 * len(text) / 100 + 2.0 * vote, abs=1e-5)
        assert out["scores"].item() == vote  # what OpenRLHF's dynamic filtering reads: the 0/1 vote agreement
        assert set(out["extra_logs"]) == {*LOG_KEYS, RM_LOG_KEY}
    assert scorer.texts[0].endswith("#### 18 <|im_end|>") and scorer.texts[4].endswith("#### 20<|im_end|>")


def test_gold_never_changes_vote_or_hybrid_rewards(length_server):
    server, _ = length_server
    rows = [
        (r, encode_reward_label(id=f"q{i}", task="gsm8k", label="20", gold="18"))
        for i, (r, *_) in enumerate(RESPONSES)
    ]
    for scheme in ("vote", "hybrid"):
        func = make_reward_func(RewardConfig(scheme, rm_url=server.url))
        before = [_call(func, r, label=lab)[1] for r, lab in rows]
        changed = [
            encode_reward_label(id=json.loads(lab)["id"], task="gsm8k", label="20", gold=gold)
            for (_, lab), gold in zip(rows, ["20", "7", None, "999", "19", "0", "20", "1", "5", None], strict=True)
        ]
        after = [_call(func, r, label=lab)[1] for (r, _), lab in zip(rows, changed, strict=True)]
        assert [b["rewards"].tolist() for b in before] == [a["rewards"].tolist() for a in after], scheme
        assert [b["scores"].tolist() for b in before] == [a["scores"].tolist() for a in after], scheme
        # every gold answer changed (or removed), and gold was read: for the logs only
        assert [b["extra_logs"]["distill/gold_correct"].item() for b in before] != [
            a["extra_logs"]["distill/gold_correct"].item() for a in after
        ]


def test_rl_prompts_carry_the_reward_label_and_rewards_ignore_their_gold(tmp_path):
    # End to end on the README's worked example: build rl_prompts.jsonl twice, with gold changed the second
    # time, and reward the same responses from the distill_label column.
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "worked_example")
    prompts = [json.loads(line) for line in open(os.path.join(example, "prompts.jsonl"))]
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps({**p, "gold": "#### 999"}) + "\n" for p in prompts))
    rewards = {}
    for name, prompts_file in (("original", os.path.join(example, "prompts.jsonl")), ("changed", str(changed))):
        label_samples(prompts_file, os.path.join(example, "teacher.jsonl"), str(tmp_path / name / "labels"))
        build_datasets(prompts_file, str(tmp_path / name / "labels"), str(tmp_path / name / "data"))
        rows = [json.loads(line) for line in open(tmp_path / name / "data" / "rl_prompts.jsonl")]
        assert all(isinstance(row["distill_label"], str) for row in rows)  # a plain string column for HF datasets
        labels = [decode_reward_label(row["distill_label"]) for row in rows]
        assert [(x.id, x.task, x.label) for x in labels] == [("q1", "gsm8k", "7"), ("q3", "gsm8k", "12")]
        assert [x.gold for x in labels] == (["7", "10"] if name == "original" else ["999", "999"])
        vote = make_reward_func(RewardConfig("vote"))
        rewards[name] = [_call(vote, r, label=row["distill_label"])[0] for row in rows for r in ("#### 7", "#### 12")]
    assert rewards["original"] == rewards["changed"] == [1.0, 0.0, 0.0, 1.0]


# --- the controls: random and style ---------------------------------------------------------------------------------
TOY_LABEL = encode_reward_label(id="t1", task="arithmetic", label="4", gold="4")


def test_the_random_control_ignores_the_response_and_pays_about_random_p():
    func = make_reward_func(RewardConfig("random", task="arithmetic", random_p=0.3, seed=1))
    right, wrong = "7 / 2 = 3. 3 + 1 = 4. #### 4", "#### 9"
    rewards = [_call(func, response, label=TOY_LABEL)[0] for response in (right, wrong) * 400]
    assert set(rewards) == {0.0, 1.0}
    assert 0.25 < sum(rewards) / len(rewards) < 0.35
    # the right answer is paid no more often than the wrong one
    assert abs(sum(rewards[0::2]) - sum(rewards[1::2])) / 400 < 0.1
    assert _call(make_reward_func(RewardConfig("random", task="arithmetic", random_p=0.0)), right, TOY_LABEL)[0] == 0


@pytest.mark.parametrize(
    "response, worked",
    [
        ("7 / 2 = 3. 3 + 1 = 4. #### 4", 1.0),  # worked and right
        ("7 / 2 = 4. 4 + 1 = 5. #### 5", 1.0),  # worked and wrong: the style alone is paid
        ("#### 4", 0.0),  # right, but the answer alone
        ("#### 4<|im_end|>", 0.0),
        ("7 / 2 = 3. 3 + 1 = 4.<|im_end|>", 1.0),
    ],  # worked, cut before its answer
)
def test_the_style_control_pays_the_style_whatever_the_answer(response, worked):
    reward, out = _call(make_reward_func(RewardConfig("style", task="arithmetic")), response, label=TOY_LABEL)
    assert reward == worked and out["scores"].tolist() == [worked]
    direct = make_reward_func(RewardConfig("style", task="arithmetic", style="direct"))
    assert _call(direct, response, label=TOY_LABEL)[0] == 1.0 - worked


# --- config ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config, message",
    [
        (RewardConfig("best"), r"unknown reward scheme 'best'; valid schemes: rm, vote, gold, hybrid, judge, random"),
        (RewardConfig("rm"), r"'rm' uses OpenRLHF's learned reward model .* no reward function"),
        (RewardConfig("judge"), r"'judge' uses OpenRLHF's learned reward model"),
        (RewardConfig("hybrid"), r"'hybrid' needs rm_url"),
        (RewardConfig("hybrid", rm_url="localhost:8000"), r"rm_url must be an http\(s\) URL"),
        (RewardConfig("hybrid", rm_url="http://h:1", alpha=0, beta=0), r"alpha = beta = 0"),
        (RewardConfig("vote", alpha=math.nan), r"alpha must be a finite number"),
        (RewardConfig("vote", rm_timeout_s=0), r"rm_timeout_s must be > 0"),
        (RewardConfig("vote", task="gsm9k"), r"unknown task 'gsm9k'; known tasks: gsm8k"),
        (RewardConfig("gold", task="open"), r"task 'open' has none"),
        (RewardConfig("random", random_p=1.5), r"random_p must be in \[0, 1\]"),
        (RewardConfig("style", task="gsm8k"), r"'style' needs a task whose responses have styles"),
        (RewardConfig("style"), r"'style' needs a task whose responses have styles"),
        (RewardConfig("style", task="arithmetic", style="verbose"), r"style 'verbose' is not one of worked, direct"),
    ],
)
def test_reward_config_errors_say_what_is_wrong(config, message):
    with pytest.raises(ValueError, match=message):
        config.check()
    with pytest.raises(ValueError, match=message):
        make_reward_func(config)


def test_reward_config_round_trips_through_a_dict():
    config = RewardConfig("hybrid", task="math", alpha=0.3, beta=0.7, rm_url="http://127.0.0.1:8000", rm_timeout_s=9)
    assert RewardConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['alhpa'\]"):
        RewardConfig.from_dict({"scheme": "vote", "alhpa": 1})
    with pytest.raises(ValueError, match="field 'scheme' is missing"):
        RewardConfig.from_dict({"task": "gsm8k"})
    assert set(FUNCTION_SCHEMES) < set(SCHEMES)


# --- the reward file ------------------------------------------------------------------------------------------------
def _load_by_path(path):
    # exactly how OpenRLHF's SingleTurnAgentExecutor loads --reward.remote_url FILE.py
    spec = importlib.util.spec_from_file_location("reward_func", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


def test_the_generated_reward_file_loads_by_path_and_gives_the_same_rewards(tmp_path):
    for scheme in ("vote", "gold"):
        config = RewardConfig(scheme, task="gsm8k")
        path = write_reward_file(str(tmp_path / "sub" / f"reward_{scheme}.py"), config)
        assert path == str(tmp_path / "sub" / f"reward_{scheme}.py")
        text = open(path).read()
        assert text.startswith("# Generated by openrlhf-distill") and f"--reward.remote_url {path}" in text
        loaded, direct = _load_by_path(path), make_reward_func(config)
        assert loaded.config == config
        for response, *_ in RESPONSES:
            a, b = _call(loaded, response)[1], _call(direct, response)[1]
            assert a["rewards"].tolist() == b["rewards"].tolist()
            assert {k: v.tolist() for k, v in a["extra_logs"].items()} == {
                k: v.tolist() for k, v in b["extra_logs"].items()
            }
    assert sorted(os.listdir(tmp_path / "sub")) == ["reward_gold.py", "reward_vote.py"]  # no temporary files left
    with pytest.raises(ValueError, match="must end in .py"):
        write_reward_file(str(tmp_path / "reward.txt"), RewardConfig("vote"))
    with pytest.raises(ValueError, match="no reward function"):
        write_reward_file(str(tmp_path / "reward.py"), RewardConfig("rm"))


def test_an_exception_inside_is_logged_with_its_traceback_and_reraised(tmp_path, capsys, caplog):
    func = _load_by_path(write_reward_file(str(tmp_path / "reward.py"), RewardConfig("vote", task="gsm8k")))
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="field 'label'"):
        func([PROMPT + "#### 20"], [PROMPT], ['{"id": "q1"}'])
    err = capsys.readouterr().err
    assert "reward_func (scheme 'vote') failed: ValueError" in err and "Traceback (most recent call last)" in err
    assert "reward_model_group is required" in err  # names the confusing error OpenRLHF would show later
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert record.exc_info is not None and "field 'label'" in record.getMessage()


# --- through OpenRLHF's own rollout code -----------------------------------------------------------------------
class ScriptedEngine:
    """Stands in for OpenRLHF's vLLM engine: returns the token ids of a given literal response.

    The test is about the reward path with KNOWN responses (a random tiny model would generate noise);
    real vLLM generation inside OpenRLHF's loop is covered by the PPO tests.
    """

    def __init__(self, tokenizer, response):
        self.token_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        self.prompts = []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.prompts.append(prompt_token_ids)
        output = SimpleNamespace(token_ids=list(self.token_ids), text="", finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


@pytest.fixture(scope="module")
def openrlhf_agent():
    from openrlhf_distill.compat import boot_install

    boot_install()
    from openrlhf.utils import agent

    return agent


def _execute(agent, reward_file, tokenizer, response, label):
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=reward_file)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "A pen costs 3 dollars. How much do 6 pens cost?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    params = SimpleNamespace(max_tokens=64, logprobs=None)  # the two fields the executor reads
    engine = ScriptedEngine(tokenizer, response)
    return asyncio.run(executor.execute(prompt, label, params, 256, tokenizer, engine)), prompt


def test_the_reward_file_through_openrlhfs_single_turn_agent_executor(openrlhf_agent, tiny_model, tmp_path, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    reward_file = write_reward_file(str(tmp_path / "reward.py"), RewardConfig("vote", task="gsm8k"))
    for response, vote, gold, found in RESPONSES[:3] + RESPONSES[7:9]:
        output, prompt = _execute(openrlhf_agent, reward_file, tokenizer, response, LABEL)
        # what OpenRLHF decoded and passed on: prompt + response + the EOS text
        assert tokenizer.decode(output["observation_tokens"]).startswith(prompt)
        assert output["reward"].tolist() == [vote] and output["scores"].tolist() == [vote]
        logs = {key: value.item() for key, value in output["extra_logs"].items()}
        assert logs["distill/gold_correct"] == gold and logs["distill/answer_found"] == found
    # OpenRLHF catches the exception and logs it at INFO (the reward stays None) ...
    output, _ = _execute(openrlhf_agent, reward_file, tokenizer, "#### 20", '{"id": "q1"}')
    assert output["reward"] is None
    # ... but ours has already reached stderr, with its traceback
    err = capsys.readouterr().err
    assert "reward_func (scheme 'vote') failed: ValueError" in err and "Traceback" in err


def test_the_reward_functions_examples_hold():
    """vote_reward, gold_reward and style_reward carry their examples as doctests: they are run here."""
    import doctest

    from openrlhf_distill.rewards import function

    result = doctest.testmod(function, raise_on_error=False)
    assert result.attempted >= 6 and result.failed == 0
