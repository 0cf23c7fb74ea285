"""The distilled reward model: its loss, its input checks, and real training through OpenRLHF's train_rm on CPU."""

import json
import math
import random
import subprocess
import sys
import textwrap

import pytest

from openrlhf_distill.compat import flash_attn_stub, patches
from openrlhf_distill.records import RecordError

flash_attn_stub.install()  # openrlhf.models imports flash_attn at module top; nothing else is patched here


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("pairwise_coef, pointwise_coef", [(1.0, 0.5), (1.0, 0.0), (0.0, 1.0)])
def test_combined_loss_matches_a_hand_computation(pairwise_coef, pointwise_coef):
    import torch
    from openrlhf.models import PairWiseLoss

    from openrlhf_distill.reward_model.trainer import pair_point_loss

    chosen, rejected = [1.0, -0.5], [0.2, 0.3]
    rewards, labels = [2.0, -1.0, 0.5, 0.0], [1.0, 0.0, 0.7, 0.2]  # 0.7 and 0.2: judge-style soft labels
    tensors = [torch.tensor(values) for values in (chosen, rejected, rewards, labels)]
    loss, pair, point = pair_point_loss(
        PairWiseLoss(), pairwise_coef, pointwise_coef, tensors[0], tensors[1], None, tensors[2], tensors[3]
    )
    want_pair = sum(-math.log(_sigmoid(c - r)) for c, r in zip(chosen, rejected, strict=True)) / 2
    want_point = (
        -sum(
            y * math.log(_sigmoid(r)) + (1 - y) * math.log(1 - _sigmoid(r))
            for r, y in zip(rewards, labels, strict=True)
        )
        / 4
    )
    assert pair.item() == pytest.approx(want_pair, rel=1e-5)
    assert point.item() == pytest.approx(want_point, rel=1e-5)
    assert loss.item() == pytest.approx(pairwise_coef * want_pair + pointwise_coef * want_point, rel=1e-5)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_unusable_pairs_are_dropped_and_counted(tmp_path):
    from openrlhf_distill.reward_model.data import clean_pairs

    rows = [
        {"prompt": "q1", "chosen": "#### 5", "rejected": "#### 6"},  # kept
        {"prompt": "q2", "chosen": "#### 5", "rejected": " #### 5 "},  # the same response twice: teaches nothing
        {"prompt": "q3", "chosen": "", "rejected": "#### 6"},  # empty response
        {"prompt": "q4 " + "x" * 50, "chosen": "#### 5", "rejected": "#### 6"},  # prompt leaves no room
        {
            "prompt": "q5",
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": ""}],
        },  # empty chat response
    ]
    kept, counts = clean_pairs(
        _write(tmp_path / "pairs.jsonl", rows),
        prompt_key="prompt",
        chosen_key="chosen",
        rejected_key="rejected",
        max_len=20,
        prompt_length=len,
    )
    assert counts == {"read": 5, "kept": 1, "identical_chosen_rejected": 1, "empty_response": 2, "prompt_too_long": 1}
    assert [row["prompt"] for row in kept] == ["q1"]


@pytest.mark.parametrize("chosen", [42, None, {"content": "a"}, [{"content": "no role"}], []])
def test_a_response_that_is_not_text_is_an_error_not_a_dropped_row(tmp_path, chosen):
    from openrlhf_distill.reward_model.data import clean_pairs

    rows = [
        {"prompt": "q1", "chosen": "#### 5", "rejected": "#### 6"},
        {"prompt": "q2", "chosen": chosen, "rejected": "#### 6"},
    ]
    with pytest.raises(
        RecordError, match=r"pairs.jsonl:2 field 'chosen': must be a string or a non-empty list of chat"
    ):
        clean_pairs(
            _write(tmp_path / "pairs.jsonl", rows),
            prompt_key="prompt",
            chosen_key="chosen",
            rejected_key="rejected",
            max_len=20,
            prompt_length=len,
        )


def test_a_label_outside_zero_one_is_an_error_naming_file_line_and_field(tmp_path):
    from openrlhf_distill.reward_model.data import clean_points

    rows = [{"prompt": "q", "response": "r", "label": 1}, {"prompt": "q", "response": "r", "label": 1.5}]
    path = _write(tmp_path / "points.jsonl", rows)
    with pytest.raises(RecordError, match=r"points.jsonl:2 field 'label': must be a number in \[0, 1\]"):
        clean_points(path, prompt_key="prompt", max_len=20, prompt_length=len)
    missing = _write(tmp_path / "points2.jsonl", [{"prompt": "q", "label": 1}])
    with pytest.raises(RecordError, match=r"points2.jsonl:1 field 'response': missing"):
        clean_points(missing, prompt_key="prompt", max_len=20, prompt_length=len)


# Separable on purpose: a correct response ends "correct", a wrong one "wrong".
# The RM trained below (3 epochs, pointwise term on) measured 0.247 on the held-out points. A constant 0.5 would
# score 0.5 on these balanced points, inverted probabilities about 0.75, and raw rewards read as probabilities
# fall outside [0, 1]: any of those breaks the bound.
ECE_BOUND = 0.4


def _separable(n, seed):
    rng = random.Random(seed)
    pairs, points = [], []
    for _ in range(n):
        a, b = rng.randint(0, 50), rng.randint(0, 50)
        prompt = [{"role": "user", "content": f"what is {a} + {b}?"}]
        good = [{"role": "assistant", "content": f"#### {a + b} correct"}]
        bad = [{"role": "assistant", "content": f"#### {a + b + rng.randint(1, 9)} wrong"}]
        pairs.append({"prompt": prompt, "chosen": good, "rejected": bad})
        points += [{"prompt": prompt, "response": good, "label": 1}, {"prompt": prompt, "response": bad, "label": 0}]
    return pairs, points


def _train(tmp_path, tiny_model, name, *extra):
    pairs, points = _separable(64, seed=1)
    cmd = [
        sys.executable,
        "-m",
        "openrlhf_distill.cli",
        "train-rm",
        "--engine",
        "cpu",
        "--model.model_name_or_path",
        tiny_model,
        "--data.dataset",
        _write(tmp_path / "pairs.jsonl", pairs),
        "--data.prompt_key",
        "prompt",
        "--data.apply_chat_template",
        "--data.max_len",
        "64",
        "--train.batch_size",
        "8",
        "--train.micro_batch_size",
        "4",
        "--train.max_epochs",
        "3",
        "--adam.lr",
        "2e-3",
        "--ds.param_dtype",
        "bf16",
        "--ckpt.output_dir",
        str(tmp_path / name),
        "--distill.rm.points",
        _write(tmp_path / "points.jsonl", points),
        "--distill.rm.metrics_file",
        str(tmp_path / f"{name}.metrics.jsonl"),
        *extra,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return result


SCORE = textwrap.dedent(
    """
    import json, sys, torch
    from openrlhf.models import get_llm_for_sequence_regression
    from transformers import AutoTokenizer
    from openrlhf_distill.compat.formats import reward_model_input
    path, pairs = sys.argv[1], json.loads(sys.argv[2])
    model = get_llm_for_sequence_regression(path, "reward", normalize_reward=False, attn_implementation="eager",
                                            param_dtype="bf16").eval()
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    def score(key):
        texts = [reward_model_input(tok.apply_chat_template(p["prompt"] + p[key], tokenize=False), tok.eos_token)
                 for p in pairs]
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            return model(batch.input_ids, attention_mask=batch.attention_mask).float().tolist()
    print("RESULT", json.dumps({"chosen": score("chosen"), "rejected": score("rejected"),
                                "head": model.value_head_prefix}))
    """
)


def _score(model_dir, pairs):
    cmd = [sys.executable, "-c", SCORE, model_dir, json.dumps(pairs)]
    result = subprocess.run(cmd, env=patches.subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))[7:])


@pytest.fixture(scope="module")
def trained_rm(tmp_path_factory, tiny_model):
    work = tmp_path_factory.mktemp("distill_rm")
    result = _train(work, tiny_model, "rm")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # our trainer, not OpenRLHF's, trained it: the marker it prints when it is built
    assert "[openrlhf-distill] distilled RM trainer: pairwise x1.0, pointwise x1.0 on 128 points" in result.stdout
    return work


GUARD = textwrap.dedent(
    """
    from openrlhf_distill.compat import boot_install
    boot_install()
    import openrlhf.trainer.rm_trainer as rm_trainer
    from openrlhf_distill.reward_model.trainer import DistillRewardModelTrainer, refuse_the_stock_trainer
    refuse_the_stock_trainer(rm_trainer.RewardModelTrainer)
    try:  # what train_rm would do if the swap had not reached it
        rm_trainer.RewardModelTrainer.__new__(rm_trainer.RewardModelTrainer).__init__()
    except RuntimeError as error:
        print("REFUSED:", error)
    try:  # ours passes the guard and goes on into OpenRLHF's own __init__ (which wants its arguments)
        DistillRewardModelTrainer.__new__(DistillRewardModelTrainer).__init__()
    except TypeError as error:
        print("OURS REACHED OPENRLHF:", error)
    """
)


def test_if_the_trainer_swap_did_not_take_effect_openrlhfs_stock_trainer_refuses_to_train(run_python):
    result = run_python(GUARD, env=patches.subprocess_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REFUSED: openrlhf.cli.train_rm built OpenRLHF's own RewardModelTrainer" in result.stdout
    assert "the pointwise loss would be missing" in result.stdout
    assert "OURS REACHED OPENRLHF:" in result.stdout and "missing" in result.stdout


@pytest.mark.slow
def test_pairs_and_points_train_a_reward_model_that_ranks_held_out_pairs(trained_rm):
    steps = [json.loads(line) for line in open(trained_rm / "rm.metrics.jsonl")]
    assert steps and {"pairwise_loss", "pointwise_loss", "pointwise_acc", "reward_label1", "reward_label0"} <= set(
        steps[-1]
    )
    assert steps[-1]["pointwise_loss"] < steps[0]["pointwise_loss"]
    config = json.load(open(trained_rm / "rm" / "config.json"))
    assert config["value_head_prefix"] == "score" and config["std"] > 0  # an ordinary OpenRLHF RM checkpoint
    held_out, _ = _separable(20, seed=99)
    first = _score(str(trained_rm / "rm"), held_out)
    wins = sum(c > r for c, r in zip(first["chosen"], first["rejected"], strict=True))
    assert wins / len(held_out) >= 0.95, f"held-out pairwise accuracy {wins}/{len(held_out)}"
    # Reload round trip: a second fresh load through OpenRLHF's loader gives identical rewards.
    assert _score(str(trained_rm / "rm"), held_out) == first


@pytest.mark.slow
def test_eval_rm_reports_pairs_auc_calibration_and_best_of_n(trained_rm, tmp_path):
    held_out, points = _separable(12, seed=77)
    rng = random.Random(3)
    prompts, samples = [], []
    for q in range(6):  # gold-labelled student samples: two right, two wrong per question
        a, b = rng.randint(0, 50), rng.randint(0, 50)
        prompts.append({"id": f"g{q}", "task": "arithmetic", "prompt": f"what is {a} + {b}?", "gold": str(a + b)})
        for i, answer in enumerate([a + b, a + b + 1, a + b, a + b + 3]):
            word = "correct" if answer == a + b else "wrong"
            samples.append(
                {
                    "id": f"g{q}",
                    "source": "student",
                    "model": "s",
                    "temperature": 1.0,
                    "sample_index": i,
                    "response": f"#### {answer} {word}",
                }
            )
    files = {
        name: _write(tmp_path / f"{name}.jsonl", rows)
        for name, rows in (("pairs", held_out), ("points", points), ("prompts", prompts), ("samples", samples))
    }
    cmd = [
        sys.executable,
        "-m",
        "openrlhf_distill.cli",
        "eval-rm",
        "--model",
        str(trained_rm / "rm"),
        *[arg for name, path in files.items() for arg in (f"--{name}", path)],
        "--out",
        str(tmp_path / "report.json"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(tmp_path / "report.json"))
    assert report["pseudo_pairs"]["n"] == 12 and report["pseudo_pairs"]["accuracy"] >= 0.9
    assert report["gold_pairs"]["n"] == 6 * 4 and report["gold_pairs"]["accuracy"] >= 0.9
    assert report["points"]["auc"] >= 0.9
    # sigmoid(reward) is calibrated better than a coin (see ECE_BOUND)
    assert report["points"]["ece"] < ECE_BOUND, report["points"]
    assert report["best_of_n"]["questions"] == 6 and report["best_of_n"]["random"] == 0.5
    assert report["best_of_n"]["rm_top"] >= 0.9 > report["best_of_n"]["random"]
    assert "best-of-N accuracy: RM's top" in result.stdout
    # the samples are all answers alone ("#### N ..."): every gold pair is direct against direct
    assert report["gold_pairs_by_type"]["direct_vs_direct"] == report["gold_pairs"]
    assert sum(t["n"] for t in report["gold_pairs_by_type"].values()) == report["gold_pairs"]["n"]


def test_auc_and_calibration_error_on_literal_values():
    from openrlhf_distill.stats import auc, expected_calibration_error

    assert auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert auc([0.1, 0.8, 0.9], [1, 1, 0]) == 0.0
    assert auc([0.5, 0.5], [1, 0]) == 0.5  # a tie counts half
    assert auc([0.5], [1]) is None  # no negatives: undefined
    assert expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0]) == pytest.approx(0.1)
    assert expected_calibration_error([0.95, 0.95], [0, 0]) == pytest.approx(0.95)


# Scored samples as eval-rm's scorer yields them, (response, RM score) per question, written by hand: a1 and a2
# are arithmetic questions whose samples are "worked" or "direct", g1 the same numbers under gsm8k (no styles).
SCORED = {
    "a1": [
        ("14 / 2 = 7. 7 - 4 = 3. 3 + 3 = 6. #### 6", 2.0),
        ("#### 6", 0.5),  # right: worked, direct
        ("14 / 2 = 8. 8 - 4 = 4. 4 + 3 = 7. #### 7", 1.0),
        ("#### 5", -1.0),
    ],  # wrong: worked, direct
    "a2": [("#### 7", 0.3), ("#### 8", 0.4), ("#### 9", 0.3)],  # right direct below one wrong, tied with one
    "g1": [("#### 6", 0.9), ("#### 5", 0.1)],
}


def _scored(tmp_path, task_of):
    from openrlhf_distill.questions import load_questions

    prompts = [
        {"id": q, "task": task_of(q), "prompt": f"question {q}", "gold": {"a2": "7"}.get(q, "6")} for q in SCORED
    ]
    questions = load_questions(_write(tmp_path / f"prompts_{task_of('a1')}.jsonl", prompts))
    out = []
    for key, rows in SCORED.items():
        question = questions[key]
        scored_rows = []
        for index, (response, score) in enumerate(rows):
            answer = question.task.extract(response).answer
            sample = {"id": key, "source": "student", "sample_index": index, "response": response, "answer": answer}
            scored_rows.append((sample, score, question.task.is_equivalent(answer, question.gold)))
        out.append((question, scored_rows))
    return out


def test_gold_pairs_are_split_by_the_styles_of_the_right_and_the_wrong_sample(tmp_path, capsys):
    from openrlhf_distill.reward_model.eval_rm import _gold_measures, print_report

    scored = _scored(tmp_path, lambda q: "gsm8k" if q.startswith("g") else "arithmetic")
    measures = _gold_measures(scored, max_pairs=16, seed=0)
    # a1: 2 right x 2 wrong pairs, a2: 2, g1: 1; the RM ranks wrongly a1's direct-right vs worked-wrong and one
    # pair of a2, and ties a2's other pair: a tie is no preference, half a win, not a loss
    assert measures["gold_pairs"] == {"accuracy": pytest.approx(4.5 / 7), "n": 7, "ties": pytest.approx(1 / 7)}
    assert measures["gold_pairs_by_type"] == {  # g1 (gsm8k: no styles) is in no type
        "worked_vs_worked": {"accuracy": 1.0, "n": 1, "ties": 0.0},
        "worked_vs_direct": {"accuracy": 1.0, "n": 1, "ties": 0.0},
        "direct_vs_worked": {"accuracy": 0.0, "n": 1, "ties": 0.0},
        "direct_vs_direct": {"accuracy": 0.5, "n": 3, "ties": pytest.approx(1 / 3)},
    }
    assert list(measures["gold_pairs_by_type"]) == [
        "worked_vs_worked",
        "worked_vs_direct",
        "direct_vs_worked",
        "direct_vs_direct",
    ]
    # Fewer pairs per question: the types count exactly the pairs kept (a1: 2 of its 4, a2: 1).
    capped = _gold_measures(scored, max_pairs=2, seed=0)
    assert capped["gold_pairs"]["n"] == 2 + 2 + 1
    assert sum(t["n"] for t in capped["gold_pairs_by_type"].values()) == 2 + 2

    # The same questions under a task without styles: the same pairs, no split.
    plain = _gold_measures(_scored(tmp_path, lambda q: "gsm8k"), max_pairs=2, seed=0)
    assert "gold_pairs_by_type" not in plain and plain["gold_pairs"] == capped["gold_pairs"]
    assert plain["best_of_n"] == capped["best_of_n"]

    print_report(measures)
    printed = capsys.readouterr().out
    assert "pairwise accuracy, gold-labelled pairs     0.643 (n=7, 14% tied)" in printed
    assert "  direct_vs_worked (right vs wrong)" in printed and "0.000 (n=1, 0% tied)" in printed
    print_report(plain)
    assert "_vs_" not in capsys.readouterr().out


def test_a_style_without_pairs_has_no_accuracy(tmp_path):
    from openrlhf_distill.reward_model.eval_rm import _gold_measures

    scored = [item for item in _scored(tmp_path, lambda q: "arithmetic") if item[0].id == "a2"]
    by_type = _gold_measures(scored, max_pairs=16, seed=0)["gold_pairs_by_type"]
    assert by_type["direct_vs_direct"] == {"accuracy": 0.25, "n": 2, "ties": 0.5}
    assert by_type["worked_vs_direct"] == {"accuracy": None, "n": 0, "ties": None}


@pytest.mark.slow
def test_each_loss_alone_also_learns_and_bad_labels_stop_the_run(tmp_path, tiny_model):
    held_out, _ = _separable(20, seed=98)
    for name, coef in (("pointwise", "--distill.rm.pairwise_coef"), ("pairwise", "--distill.rm.pointwise_coef")):
        result = _train(tmp_path, tiny_model, name, coef, "0")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        scores = _score(str(tmp_path / name), held_out)
        assert sum(c > r for c, r in zip(scores["chosen"], scores["rejected"], strict=True)) >= 18, name
    # Pairs alone: the metrics file still gets every logged step (OpenRLHF's loss and accuracy), and no
    # pointwise term.
    steps = [json.loads(line) for line in open(tmp_path / "pairwise.metrics.jsonl")]
    assert steps and "loss" in steps[-1] and "pointwise_loss" not in steps[-1]

    bad = _write(tmp_path / "bad_points.jsonl", [{"prompt": "q", "response": "r", "label": 2}])
    failed = _train(tmp_path, tiny_model, "bad", "--distill.rm.points", bad)
    assert failed.returncode == 2 and "bad_points.jsonl:1 field 'label'" in failed.stderr


def test_train_rm_takes_every_openrlhf_train_rm_flag_plus_ours():
    # OpenRLHF's own parser is extended, not copied: its flags (and help) come from the installed train_rm.
    cmd = [sys.executable, "-m", "openrlhf_distill.reward_model.train", "--help"]
    result = subprocess.run(cmd, env=patches.subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for flag in (
        "--ds.value_head_prefix",
        "--data.chosen_key",
        "--eval.dataset",
        "--distill.rm.points",
        "--distill.rm.pairwise_coef",
        "--distill.rm.pointwise_coef",
    ):
        assert flag in result.stdout
    dry = subprocess.run(
        [
            sys.executable,
            "-m",
            "openrlhf_distill.cli",
            "train-rm",
            "--engine",
            "cpu",
            "--dry_run",
            "--data.dataset",
            "p.jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "-m openrlhf_distill.reward_model.train --data.dataset p.jsonl" in dry.stdout
    assert "--eval.dataset p.jsonl" in dry.stdout  # the CPU engine's eval set, as for OpenRLHF's own train_rm
