"""`openrlhf-distill eval`: the statistics (Wilson, pass@k, bootstrap) against known values, the scoring on
hand-written samples with known answers, and the whole evaluation with the transformers backend on a tiny model
(resumed without loading the model again), plus what bad input gets."""

import argparse
import itertools
import json
import os
import statistics
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrlhf_distill.evaluation import (
    EvalSettings,
    add_arguments,
    evaluate,
    run,
    samples_dir_for,
    score_sample_files,
    score_samples,
)
from openrlhf_distill.generation.backend import Backend, BackendInfo, Completion
from openrlhf_distill.records import RecordError
from openrlhf_distill.stats import bootstrap_mean_interval, pass_at_k, wilson_interval

# --- statistics ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "successes, n, expected",
    [
        (8, 10, (0.4902, 0.9433)),  # the textbook example
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (50, 100, (0.4038, 0.5962)),
        (1, 1, (0.2065, 1.0)),
    ],
)
def test_wilson_interval_known_values(successes, n, expected):
    low, high = wilson_interval(successes, n)
    assert (round(low, 4), round(high, 4)) == expected


def test_wilson_interval_refuses_nonsense():
    with pytest.raises(ValueError, match="n >= 1"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


@given(n=st.integers(1, 9), data=st.data())
def test_pass_at_k_is_the_share_of_k_subsets_holding_a_correct_sample(n, data):
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    brute_force = sum(any(subset) for subset in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute_force, abs=1e-12)
    assert pass_at_k(k, c if c <= k else k, k) == (1.0 if min(c, k) > 0 else 0.0)  # n = k: "any correct"


def test_pass_at_k_table_and_refusals():
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)  # C(7,5)/C(10,5)
    assert pass_at_k(200, 0, 100) == 0.0 and pass_at_k(200, 150, 100) == 1.0
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 0)


def test_bootstrap_interval_is_seeded_and_close_to_the_normal_one():
    values = [(i * 37 % 101) / 100 for i in range(2000)]
    low, high = bootstrap_mean_interval(values, resamples=2000, seed=0)
    assert (low, high) == bootstrap_mean_interval(values, resamples=2000, seed=0)
    assert (low, high) != bootstrap_mean_interval(values, resamples=2000, seed=1)
    mean, half = statistics.fmean(values), 1.96 * statistics.stdev(values) / len(values) ** 0.5
    assert low < mean < high
    assert low == pytest.approx(mean - half, abs=0.15 * half) and high == pytest.approx(mean + half, abs=0.15 * half)
    assert bootstrap_mean_interval([0.25] * 5, resamples=50) == (0.25, 0.25)


# --- scoring known samples -------------------------------------------------------------------------------------


def _sample(question_id, index, response, temperature=0.0):
    return {
        "id": question_id,
        "source": "student",
        "model": "m",
        "temperature": temperature,
        "sample_index": index,
        "response": response,
    }


GSM8K_PROMPTS = [
    {"id": "q1", "task": "gsm8k", "prompt": "3 + 4?", "gold": "3 + 4 = 7\n#### 7"},
    {"id": "q2", "task": "gsm8k", "prompt": "5.50 * 2?", "gold": "11"},
    {"id": "q3", "task": "gsm8k", "prompt": "5 * 2?", "gold": "10"},
    {"id": "q4", "task": "gsm8k", "prompt": "6 * 2?", "gold": "12"},
]
GSM8K_GREEDY = [
    _sample("q1", 0, "3 + 4 = 7\n#### 7"),  # right
    _sample("q2", 0, "The answer is $11.00."),  # right, another spelling
    _sample("q3", 0, "I am not sure."),  # no answer
    _sample("q4", 0, "#### 13"),  # wrong
]
GSM8K_SAMPLED = [  # k = 3 per question
    *[_sample("q1", i, r, 0.7) for i, r in enumerate(["#### 7", "#### 7.0", "#### 8"])],  # maj right, pass
    *[_sample("q2", i, r, 0.7) for i, r in enumerate(["#### 11", "#### 10", "no idea"])],  # tie -> wrong, pass
    *[_sample("q3", i, r, 0.7) for i, r in enumerate(["#### 12", "#### 12", "#### 10"])],  # maj wrong, pass
    *[_sample("q4", i, r, 0.7) for i, r in enumerate(["hmm", "what", "#### 11"])],  # maj wrong, no pass
]


def test_scores_of_known_gsm8k_samples():
    result = score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, GSM8K_SAMPLED, task="gsm8k", k=3)
    assert result["n"] == 4 and result["accuracy"] == 0.5
    assert result["ci95"] == pytest.approx(wilson_interval(2, 4), abs=1e-6)
    assert result["ci_method"] == "wilson" and result["no_answer_rate"] == 0.25
    assert result["per_category"] is None  # gsm8k prompts have no categories
    ci = lambda successes: pytest.approx(wilson_interval(successes, 4), abs=1e-6)
    assert result["maj_at_k"] == {"k": 3, "n": 4, "accuracy": 0.25, "ci95": ci(1), "ci_method": "wilson"}
    assert result["pass_at_k"] == {
        "k": 3,
        "n": 4,
        "accuracy": 0.75,
        "ci95": ci(3),
        "ci_method": "wilson",
        "samples_per_question": 3,
    }
    greedy_only = score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, task="gsm8k", k=3)
    assert greedy_only["maj_at_k"] is None and greedy_only["pass_at_k"] is None
    # the order samples arrive in does not matter
    assert score_samples(GSM8K_PROMPTS, GSM8K_GREEDY[::-1], GSM8K_SAMPLED[::-1], task="gsm8k", k=3) == result


def test_pass_at_k_from_more_samples_than_k_uses_the_unbiased_estimator_and_a_bootstrap():
    sampled = [
        _sample(q["id"], i, f"#### {7 if (i < 2 and q['id'] == 'q1') else 0}", 0.7)
        for q in GSM8K_PROMPTS
        for i in range(4)
    ]  # q1: 2 of 4 right, others 0 of 4
    result = score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, sampled, task="gsm8k", k=2, seed=0)
    expected = (pass_at_k(4, 2, 2) + 0 + 0 + 0) / 4  # (1 - 1/6) / 4
    assert result["pass_at_k"]["accuracy"] == pytest.approx(expected)
    assert result["pass_at_k"]["ci_method"] == "percentile_bootstrap"
    assert result["pass_at_k"]["samples_per_question"] == 4
    low, high = result["pass_at_k"]["ci95"]
    assert low == 0.0 and expected < high <= pass_at_k(4, 2, 2)
    assert result["maj_at_k"]["accuracy"] == 0.25  # q1's first two samples: 7, 7


def test_per_category_scores_of_known_mmlu_pro_samples():
    prompts = [
        {
            "id": i,
            "task": "mmlu_pro",
            "prompt": f"question {i}",
            "gold": gold,
            "meta": {"options": list("abcd"), "category": category},
        }
        for i, (gold, category) in enumerate([("A", "law"), ("B", "law"), ("C", "law"), ("D", "math")])
    ]
    greedy = [
        _sample(0, 0, "The answer is (A)."),
        _sample(1, 0, "The answer is (C)."),
        _sample(2, 0, "The answer is (C)."),
        _sample(3, 0, "Answer: D"),
    ]
    result = score_samples(prompts, greedy, task="mmlu_pro", k=1)
    assert result["accuracy"] == 0.75
    assert result["per_category"] == {
        "law": {"n": 3, "accuracy": 2 / 3, "ci95": pytest.approx(wilson_interval(2, 3), abs=1e-6)},
        "math": {"n": 1, "accuracy": 1.0, "ci95": pytest.approx(wilson_interval(1, 1), abs=1e-6)},
    }


ARITHMETIC_PROMPTS = [
    {"id": "a1", "task": "arithmetic", "prompt": "What is 14 / 2 - 4 + 3?", "gold": "6"},
    {"id": "a2", "task": "arithmetic", "prompt": "What is 3 + 4?", "gold": "7"},
    {"id": "a3", "task": "arithmetic", "prompt": "What is 9 - 5?", "gold": "4"},
    {"id": "a4", "task": "arithmetic", "prompt": "What is 5 * 2?", "gold": "10"},
]
ARITHMETIC_GREEDY = [
    _sample("a1", 0, "14 / 2 = 7. 7 - 4 = 3. 3 + 3 = 6. #### 6"),  # worked, right
    _sample("a2", 0, "#### 7"),  # direct, right
    _sample("a3", 0, "#### 4"),  # direct, right
    _sample("a4", 0, "#### 11"),  # direct, wrong
]
ARITHMETIC_SAMPLED = [  # two per question
    *[_sample("a1", i, r, 0.7) for i, r in enumerate(["14 / 2 = 7. 7 - 4 = 3. 3 + 3 = 6. #### 6", "#### 6"])],
    *[_sample("a2", i, r, 0.7) for i, r in enumerate(["3 + 4 = 7. #### 7", "3 + 4 = 8. #### 8"])],
    *[_sample("a3", i, r, 0.7) for i, r in enumerate(["#### 4", "I do not know."])],  # no answer: direct, wrong
    *[_sample("a4", i, r, 0.7) for i, r in enumerate(["5 * 2 = 10. #### 10", "#### 12"])],
]


def test_arithmetic_scores_give_the_share_and_accuracy_of_each_answer_style():
    result = score_samples(ARITHMETIC_PROMPTS, ARITHMETIC_GREEDY, ARITHMETIC_SAMPLED, task="arithmetic", k=2)
    assert result["accuracy"] == 0.75
    assert result["styles"] == {
        "greedy": {
            "worked": {"n": 1, "share": 0.25, "accuracy": 1.0},
            "direct": {"n": 3, "share": 0.75, "accuracy": pytest.approx(2 / 3)},
        },
        "sampled": {  # all 8 sampled answers: 4 worked (3 right), 4 direct (2 right)
            "worked": {"n": 4, "share": 0.5, "accuracy": 0.75},
            "direct": {"n": 4, "share": 0.5, "accuracy": 0.5},
        },
    }
    assert list(result["styles"]["greedy"]) == ["worked", "direct"]  # the task's order, whatever the samples'
    reordered = score_samples(
        ARITHMETIC_PROMPTS, ARITHMETIC_GREEDY[::-1], ARITHMETIC_SAMPLED[::-1], task="arithmetic", k=2
    )
    assert reordered == result and list(reordered["styles"]["sampled"]) == ["worked", "direct"]
    # greedy only: no sampled styles; a style no sample has is listed with n = 0 and no accuracy
    direct_only = [_sample(s["id"], 0, "#### 6") for s in ARITHMETIC_GREEDY]
    greedy_only = score_samples(ARITHMETIC_PROMPTS, direct_only, task="arithmetic")
    assert greedy_only["styles"] == {
        "greedy": {
            "worked": {"n": 0, "share": 0.0, "accuracy": None},
            "direct": {"n": 4, "share": 1.0, "accuracy": 0.25},
        },
        "sampled": None,
    }


def test_tasks_without_answer_styles_get_no_styles_field():
    assert "styles" not in score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, GSM8K_SAMPLED, task="gsm8k", k=3)
    assert "styles" not in score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, task="gsm8k")


def test_style_shares_list_every_style_of_the_task_then_unexpected_ones_by_name():
    from openrlhf_distill.evaluation import style_shares

    graded = [("direct", True), ("zeta", False), ("alpha", True), ("direct", False)]
    assert style_shares(("worked", "direct"), graded) == {
        "worked": {"n": 0, "share": 0.0, "accuracy": None},
        "direct": {"n": 2, "share": 0.5, "accuracy": 0.5},
        "alpha": {"n": 1, "share": 0.25, "accuracy": 1.0},
        "zeta": {"n": 1, "share": 0.25, "accuracy": 0.0},
    }
    assert list(style_shares(("worked", "direct"), graded)) == ["worked", "direct", "alpha", "zeta"]
    with pytest.raises(ValueError, match="no samples"):
        style_shares(("worked", "direct"), [])


def test_scoring_a_samples_folder_written_by_hand(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in GSM8K_PROMPTS))
    os.makedirs(tmp_path / "greedy")
    os.makedirs(tmp_path / "sampled")
    (tmp_path / "greedy" / "shard-00000.jsonl").write_text("".join(json.dumps(s) + "\n" for s in GSM8K_GREEDY[:2]))
    (tmp_path / "greedy" / "shard-00001.jsonl").write_text("".join(json.dumps(s) + "\n" for s in GSM8K_GREEDY[2:]))
    (tmp_path / "sampled" / "all.jsonl").write_text("".join(json.dumps(s) + "\n" for s in GSM8K_SAMPLED))
    result = score_sample_files(str(prompts), str(tmp_path / "greedy"), str(tmp_path / "sampled"), task="gsm8k", k=3)
    assert result == score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, GSM8K_SAMPLED, task="gsm8k", k=3)

    (tmp_path / "greedy" / "shard-00001.jsonl").write_text(json.dumps(_sample("q9", 0, "#### 1")) + "\n")
    with pytest.raises(RecordError, match="not among the prompts evaluated") as error:
        score_sample_files(str(prompts), str(tmp_path / "greedy"), task="gsm8k")
    assert (error.value.path, error.value.line, error.value.field) == (
        str(tmp_path / "greedy" / "shard-00001.jsonl"),
        1,
        "id",
    )


def test_scoring_refuses_missing_repeated_and_uneven_samples():
    with pytest.raises(RecordError, match="1 questions have no greedy sample"):
        score_samples(GSM8K_PROMPTS, GSM8K_GREEDY[:3], task="gsm8k")
    with pytest.raises(RecordError, match="repeats a greedy sample_index"):
        score_samples(GSM8K_PROMPTS, GSM8K_GREEDY + GSM8K_GREEDY[:1], task="gsm8k")
    with pytest.raises(RecordError, match="different numbers of sampled answers"):
        score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, GSM8K_SAMPLED[:-1], task="gsm8k", k=2)
    with pytest.raises(ValueError, match="fewer than k=4"):
        score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, GSM8K_SAMPLED, task="gsm8k", k=4)
    with pytest.raises(ValueError, match="--k must be >= 1"):
        score_samples(GSM8K_PROMPTS, GSM8K_GREEDY, task="gsm8k", k=0)


# --- the evaluation, end to end on a tiny model ----------------------------------------------------------------

RESULT_KEYS = {
    "name",
    "seed",
    "model",
    "task",
    "split",
    "decoding",
    "n",
    "accuracy",
    "ci95",
    "ci_method",
    "maj_at_k",
    "pass_at_k",
    "per_category",
    "no_answer_rate",
    "tokens_generated",
    "wall_seconds",
    "samples_dir",
    "settings",
}


def _prompts_file(path, rows=GSM8K_PROMPTS):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _counting_backend(tiny_model, starts):
    from openrlhf_distill.generation.hf_backend import HFBackend

    def start():
        starts.append(1)
        return HFBackend(tiny_model, batch_size=8, dtype="float32")

    return start


def test_evaluate_tiny_model_then_resume_without_the_model(tmp_path, tiny_model):
    prompts = _prompts_file(tmp_path / "prompts.jsonl")
    out = str(tmp_path / "eval" / "sft.json")
    starts = []
    settings = EvalSettings(k=3, temperature=1.0, max_new_tokens=6, shard_size=2)
    options = dict(backend="hf", progress=False)
    result = evaluate(
        tiny_model, prompts, "gsm8k", out, settings, make_backend=_counting_backend(tiny_model, starts), **options
    )
    assert starts == [1]  # one engine for the greedy and the sampled pass
    assert set(result) == RESULT_KEYS and json.loads(open(out).read()) == result
    assert result["name"] == "sft" and result["decoding"] == "greedy" and result["n"] == 4
    assert result["samples_dir"] == samples_dir_for(out) == str(tmp_path / "eval" / "sft_samples")
    assert 0 <= result["accuracy"] <= 1 and result["ci95"] == pytest.approx(
        wilson_interval(round(result["accuracy"] * 4), 4), abs=1e-6
    )
    assert result["maj_at_k"]["k"] == 3 and result["maj_at_k"]["temperature"] == 1.0
    assert result["pass_at_k"]["samples_per_question"] == 3 and result["pass_at_k"]["ci_method"] == "wilson"
    assert 0 < result["tokens_generated"] <= 4 * (1 + 3) * 6
    samples = result["samples_dir"]
    assert sorted(os.listdir(samples)) == ["greedy", "prompts.jsonl", "sampled"]
    assert sorted(n for n in os.listdir(os.path.join(samples, "sampled")) if n.startswith("shard-")) == [
        "shard-00000.jsonl",
        "shard-00001.jsonl",
    ]
    # the scores are those of the samples on disk
    rescored = score_sample_files(
        prompts, os.path.join(samples, "greedy"), os.path.join(samples, "sampled"), task="gsm8k", k=3
    )
    for key in ("maj_at_k", "pass_at_k"):
        rescored[key]["temperature"] = 1.0
    assert rescored == {key: result[key] for key in rescored}

    # A finished evaluation reruns without loading the model; a killed one (a shard lost) loads it once and ends
    # with the same samples.
    with open(os.path.join(samples, "sampled", "shard-00001.jsonl")) as f:
        lost = f.read()
    again = evaluate(
        tiny_model, prompts, "gsm8k", out, settings, make_backend=_counting_backend(tiny_model, starts), **options
    )
    assert starts == [1]
    os.remove(os.path.join(samples, "sampled", "shard-00001.jsonl"))
    resumed = evaluate(
        tiny_model, prompts, "gsm8k", out, settings, make_backend=_counting_backend(tiny_model, starts), **options
    )
    assert starts == [1, 1]
    with open(os.path.join(samples, "sampled", "shard-00001.jsonl")) as f:
        assert f.read() == lost
    same = lambda r: {k: v for k, v in r.items() if k != "wall_seconds"}
    assert same(again) == same(result) and same(resumed) == same(result)


def test_eval_command_on_mmlu_pro_heldout_from_a_local_copy(tmp_path, tiny_model, capsys):
    rows = [
        {
            "question_id": i,
            "question": f"question {i}?",
            "options": ["yes", "no", "maybe"],
            "answer": "A",
            "answer_index": 0,
            "category": "law" if i < 4 else "math",
            "src": "x",
        }
        for i in range(6)
    ]
    source = _prompts_file(tmp_path / "mmlu_pro_test.jsonl", rows)  # MMLU-Pro's own columns
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "eval" / "base.json"
    args = parser.parse_args(
        [
            "--model",
            tiny_model,
            "--task",
            "mmlu_pro",
            "--split",
            "heldout",
            "--source",
            source,
            "--run_dir",
            str(tmp_path / "run"),
            "--out",
            str(out),
            "--k",
            "1",
            "--max-new-tokens",
            "4",
            "--backend",
            "hf",
            "--hf.dtype",
            "float32",
            "--no-progress",
            "--name",
            "student base",
        ]
    )
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("student base: greedy ") and "(n=3)" in printed
    result = json.loads(out.read_text())
    assert result["split"] == "heldout" and result["n"] == 3 and result["maj_at_k"] is None
    assert set(result["per_category"]) == {"law", "math"}
    assert sum(c["n"] for c in result["per_category"].values()) == 3
    assert (tmp_path / "run" / "mmlu_pro_split.json").exists()


class ScriptedModel(Backend):
    """A test double for a model: answers each arithmetic question with the samples scripted for it (the
    greedy one at temperature 0, the sampled ones in order otherwise)."""

    info = BackendInfo(name="scripted", model="scripted", reproducible="fully")

    def __init__(self, greedy: list[dict], sampled: list[dict]):
        prompts = {p["id"]: p["prompt"] for p in ARITHMETIC_PROMPTS}
        self.greedy = {prompts[s["id"]]: s["response"] for s in greedy}
        self.sampled = defaultdict(list)
        for s in sorted(sampled, key=lambda s: s["sample_index"]):
            self.sampled[prompts[s["id"]]].append(s["response"])

    def generate(self, requests):
        out = []
        for request in requests:
            question = request.prompt[-1]["content"]
            texts = [self.greedy[question]] if request.temperature == 0 else self.sampled[question][: request.n]
            out.append([Completion(text, "stop", len(text.split())) for text in texts])
        return out


def test_eval_command_on_arithmetic_writes_and_prints_the_answer_styles(tmp_path, monkeypatch, capsys):
    from openrlhf_distill.generation import options

    scripted = lambda: ScriptedModel(ARITHMETIC_GREEDY, ARITHMETIC_SAMPLED)
    monkeypatch.setattr(options, "backend_from_args", lambda args: ("scripted", scripted))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "eval" / "sft_seed0.json"
    args = parser.parse_args(
        [
            "--model",
            "m",
            "--task",
            "arithmetic",
            "--prompts",
            _prompts_file(tmp_path / "p.jsonl", ARITHMETIC_PROMPTS),
            "--out",
            str(out),
            "--k",
            "2",
            "--no-progress",
        ]
    )
    assert run(args) == 0
    result = json.loads(out.read_text())
    assert set(result) == RESULT_KEYS | {"styles"}
    expected = score_samples(ARITHMETIC_PROMPTS, ARITHMETIC_GREEDY, ARITHMETIC_SAMPLED, task="arithmetic", k=2)
    assert result["styles"] == expected["styles"] and result["accuracy"] == 0.75
    assert "greedy styles worked 25.0% (accuracy 100.0%), direct 75.0% (accuracy 66.7%)" in capsys.readouterr().out


# --- bad input -------------------------------------------------------------------------------------------------


def test_evaluate_refuses_bad_input_before_loading_a_model(tmp_path):
    never = lambda: pytest.fail("the model was loaded")
    out = str(tmp_path / "r.json")
    prompts = _prompts_file(tmp_path / "p.jsonl")
    with pytest.raises(ValueError, match="unknown task 'gsm9k'"):
        evaluate("m", prompts, "gsm9k", out, make_backend=never)
    with pytest.raises(ValueError, match="--k: must be an integer >= 1, got 0"):
        evaluate("m", prompts, "gsm8k", out, EvalSettings(k=0), make_backend=never)
    with pytest.raises(ValueError, match=r"--n_samples \(2\) must be >= --k \(3\)"):
        evaluate("m", prompts, "gsm8k", out, EvalSettings(k=3, n_samples=2), make_backend=never)
    with pytest.raises(ValueError, match="--temperature must be in"):
        evaluate("m", prompts, "gsm8k", out, EvalSettings(k=3, temperature=0.0), make_backend=never)

    rows = [GSM8K_PROMPTS[0], {"id": "q2", "task": "gsm8k", "prompt": "2 + 2?"}]
    with pytest.raises(RecordError, match="gold.*missing: evaluation needs the gold answer") as error:
        evaluate("m", _prompts_file(tmp_path / "nogold.jsonl", rows), "gsm8k", out, make_backend=never)
    assert (error.value.path, error.value.line, error.value.field) == (str(tmp_path / "nogold.jsonl"), 2, "gold")
    rows = [GSM8K_PROMPTS[0], {**GSM8K_PROMPTS[1], "gold": "eleven"}]
    with pytest.raises(RecordError, match="holds no number") as error:
        evaluate("m", _prompts_file(tmp_path / "badgold.jsonl", rows), "gsm8k", out, make_backend=never)
    assert (error.value.line, error.value.field) == (2, "gold")
    with pytest.raises(RecordError, match="'mmlu_pro', but this evaluation is of task 'gsm8k'") as error:
        evaluate("m", [GSM8K_PROMPTS[0], {**GSM8K_PROMPTS[1], "task": "mmlu_pro"}], "gsm8k", out, make_backend=never)
    assert (error.value.path, error.value.line, error.value.field) == ("prompt records (in memory)", 2, "task")
    assert not os.path.exists(out) and not os.path.exists(samples_dir_for(out))


def test_eval_command_refuses_k_below_one_and_an_unknown_task(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--model", str(tmp_path), "--out", str(tmp_path / "r.json"), "--prompts", "p.jsonl"]
    with pytest.raises(SystemExit):  # the flag's own range (EvalSettings.k): an argparse error, exit 2
        parser.parse_args([*base, "--task", "gsm8k", "--k", "0"])
    with pytest.raises(ValueError, match="unknown task"):
        run(parser.parse_args([*base, "--task", "nope"]))
