"""`openrlhf-distill report`: results.json numbers against hand computations, report.md, plots, missing files;
and `eval-rm --scores-out`, the per-sample scores the report's histograms read."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openrlhf_distill import cli
from openrlhf_distill.label import label_samples
from openrlhf_distill.report import build_report, run
from openrlhf_distill.stats import sample_std, t_interval, t_quantile_975

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKED = os.path.join(REPO, "examples", "worked_example")
T2, T1 = 4.302653, 12.706205  # t(0.975) with 2 and 1 degrees of freedom (printed tables)

# name -> {seed: accuracy}; the teacher and the base student are evaluated once; rl_vote's seed 2 is missing.
ACCURACY = {
    "teacher": {0: 0.80},
    "student_base": {0: 0.30},
    "sft": {0: 0.50, 1: 0.52, 2: 0.54},
    "rl_rm": {0: 0.60, 1: 0.66, 2: 0.63},
    "rl_vote": {0: 0.55, 1: 0.57},
    "rl_gold": {0: 0.70, 1: 0.72, 2: 0.74},
    "rl_rm_teacher_only": {0: 0.58},
}


def _write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)


def _write_jsonl(path, rows, tail=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows) + tail)


def _eval(name, seed, accuracy, n=200):
    half = 1.96 * math.sqrt(accuracy * (1 - accuracy) / n)
    record = {
        "name": name,
        "seed": seed,
        "model": f"runs/x/{name}",
        "task": "gsm8k",
        "split": "test",
        "decoding": "greedy",
        "n": n,
        "accuracy": accuracy,
        "ci95": [accuracy - half, accuracy + half],
        "ci_method": "wilson",
        "maj_at_k": None,
        "pass_at_k": None,
        "per_category": None,
        "no_answer_rate": 0.01,
        "tokens_generated": 1000 * (seed + 1),
        "wall_seconds": 10.0,
        "samples_dir": f"eval/{name}_seed{seed}_samples",
    }
    if name == "sft":
        record["maj_at_k"] = {"k": 8, "n": n, "accuracy": accuracy + 0.05, "ci95": [accuracy, accuracy + 0.1]}
    if name in ("sft", "rl_rm"):  # two categories of 100 questions, 5 points either side of the overall accuracy
        record["per_category"] = {
            c: {"n": 100, "accuracy": accuracy + d, "ci95": [0, 1]}
            for c, d in (("algebra", 0.05), ("geometry", -0.05))
        }
    return record


def _scores(seed):
    """40 student samples: 16 gold-right scored 1 + x, 24 gold-wrong scored -1 + x (x small, seed-dependent)."""
    rows = []
    for i in range(40):
        right = i % 5 in (0, 1)
        rows.append(
            {
                "id": f"q{i // 4}",
                "source": "student",
                "sample_index": i % 4,
                "answer": str(i),
                "score": (1.0 if right else -1.0) + 0.01 * ((i * 7 + seed) % 11),
                "gold_correct": right,
                "pseudo_correct": right if i % 2 else None,
            }
        )
    rows.append(
        {
            "id": "t0",
            "source": "teacher",
            "sample_index": 0,
            "answer": "1",
            "score": 99.0,
            "gold_correct": True,
            "pseudo_correct": True,
        }
    )
    return rows


def make_run(root) -> str:
    """A realistic run directory: 3 seeds, seven models, labels from the worked example, two RM evaluations
    (seed 2's is missing), RM scores, RL metrics (one with a half-written last line), stage records."""
    run_dir = str(root / "run_gsm8k")
    _write_json(os.path.join(run_dir, "run.json"), {"task": "gsm8k", "seeds": [0, 1, 2], "config": {"x": 1}})
    prompts, teacher, student = (os.path.join(WORKED, f) for f in ("prompts.jsonl", "teacher.jsonl", "student.jsonl"))
    label_samples(prompts, teacher, os.path.join(run_dir, "labels"))
    for name, per_seed in ACCURACY.items():
        for seed, accuracy in per_seed.items():
            _write_json(os.path.join(run_dir, "eval", f"{name}_seed{seed}.json"), _eval(name, seed, accuracy))
    for seed in (0, 1, 2):
        label_samples(prompts, teacher, os.path.join(run_dir, f"seed{seed}", "labels"), student=student)
        _write_jsonl(os.path.join(run_dir, f"seed{seed}", "rm_scores.jsonl"), _scores(seed))
        tail = '{"step": 6, "rollout/rew' if seed == 1 else ""  # a run still writing its last line
        _write_jsonl(
            os.path.join(run_dir, f"seed{seed}", "rl_rm", "distill_ppo", "metrics.jsonl"),
            [{"step": s, "rollout/reward_mean": 0.1 * s + 0.01 * seed, "policy_loss": 0.5} for s in range(1, 6)],
            tail,
        )
        for scheme in ("vote", "gold"):
            _write_jsonl(
                os.path.join(run_dir, f"seed{seed}", f"rl_{scheme}", "distill_ppo", "metrics.jsonl"),
                [
                    {
                        "step": s,
                        "rollout/reward_mean": 0.2 * s,
                        "distill/gold_correct": 0.1 * s,
                        "distill/pseudo_correct": 0.2 * s,
                    }
                    for s in range(1, 4)
                ],
            )
    summary = {"steps": 5, "wall_seconds": 42.5}
    _write_json(os.path.join(run_dir, "seed0", "rl_rm", "distill_ppo", "summary.json"), summary)
    # A killed run of another scheme: the trainer's folder is still OUTPUT.partial (not a scheme called style.partial).
    _write_jsonl(
        os.path.join(run_dir, "seed2", "rl_style.partial", "distill_ppo", "metrics.jsonl"),
        [{"step": 1, "rollout/reward_mean": 0.3}],
    )
    rm_eval = {0: (0.9, 0.7, 0.85, 0.10, 0.8), 1: (0.8, 0.75, 0.95, 0.05, 0.7)}
    for seed, (pseudo, gold, auc, ece, top) in rm_eval.items():
        _write_json(
            os.path.join(run_dir, f"seed{seed}", "rm_eval.json"),
            {
                "model": "rm",
                "pseudo_pairs": {"accuracy": pseudo, "n": 50},
                "gold_pairs": {"accuracy": gold, "n": 40},
                "points": {"auc": auc, "ece": ece, "n": 100, "mean_reward_label_1": 1.0, "mean_reward_label_0": -1.0},
                "best_of_n": {"rm_top": top, "random": 0.5, "majority": 0.6, "questions": 10},
            },
        )
    # Stage records as the pipeline's runner writes them; rl_rm@seed2 is still running; the report's own is left out.
    stages = [
        ("teacher_samples", None, 100.0, 400, 40000, "done"),
        ("teacher_labels", None, 1.5, None, None, "done"),
        ("sft", 0, 30.0, None, None, "done"),
        ("sft", 1, 31.0, None, None, "done"),
        ("student_samples", 0, 20.0, 1200, 9000, "done"),
        ("student_samples", 1, 22.0, 1200, 9100, "done"),
        ("rl", 2, 5.0, None, None, "started"),
        ("report", None, 3.0, None, None, "started"),
    ]
    for stage, seed, seconds, samples, tokens, status in stages:
        key = stage if seed is None else (f"rl_rm@seed{seed}" if stage == "rl" else f"{stage}@seed{seed}")
        record = {
            "stage": stage,
            "key": key,
            "seed": seed,
            "fingerprint": "abc",
            "status": status,
            "command": ["openrlhf-distill"],
            "wall_seconds": seconds,
            "samples": samples,
            "tokens": tokens,
        }
        _write_json(os.path.join(run_dir, "stages", key.replace("@", "_") + ".json"), record)
    return run_dir


@pytest.fixture
def report(tmp_path):
    run_dir = make_run(tmp_path)
    results = build_report(run_dir)
    return run_dir, results


def test_t_quantile_and_interval_match_printed_tables():
    for df, value in ((1, T1), (2, T2), (4, 2.776445), (10, 2.228139), (30, 2.042272), (100, 1.983972)):
        assert t_quantile_975(df) == pytest.approx(value, abs=1e-6)
    assert sample_std([0.5, 0.52, 0.54]) == pytest.approx(0.02)
    lo, hi = t_interval([0.5, 0.52, 0.54])
    assert (lo, hi) == pytest.approx((0.52 - T2 * 0.02 / math.sqrt(3), 0.52 + T2 * 0.02 / math.sqrt(3)), abs=1e-6)
    assert t_interval([0.5]) is None
    # three seeds near 100%: the interval stops at what an accuracy can reach, and only where it would pass it
    lo, hi = t_interval([0.94, 0.963, 0.977], within=(0.0, 1.0))
    assert (
        hi == 1.0
        and lo == pytest.approx(t_interval([0.94, 0.963, 0.977])[0])
        and t_interval([0.94, 0.963, 0.977])[1] > 1
    )
    # two seeds' gains of about 92 points: a difference of accuracies cannot pass 100 points either
    assert t_interval([0.913, 0.94], within=(-1.0, 1.0))[1] == 1.0 < t_interval([0.913, 0.94])[1]


def test_results_json_numbers_match_hand_computation(report):
    run_dir, results = report
    assert json.loads(Path(run_dir, "results.json").read_text()) == results  # what is returned is what is written
    assert results["task"] == "gsm8k" and results["seeds"] == [0, 1, 2] and results["run"] == "run_gsm8k"

    # rows: one per evaluation, in the paper's order (ablations before the gold upper bound)
    assert [(r["name"], r["seed"]) for r in results["rows"]] == [
        ("teacher", 0),
        ("student_base", 0),
        ("sft", 0),
        ("sft", 1),
        ("sft", 2),
        ("rl_rm", 0),
        ("rl_rm", 1),
        ("rl_rm", 2),
        ("rl_vote", 0),
        ("rl_vote", 1),
        ("rl_rm_teacher_only", 0),
        ("rl_gold", 0),
        ("rl_gold", 1),
        ("rl_gold", 2),
    ]
    sft_row = results["rows"][2]
    assert sft_row["accuracy"] == 0.5 and sft_row["n"] == 200 and sft_row["decoding"] == "greedy"
    assert sft_row["maj_at_k"]["k"] == 8 and "pass_at_k" not in sft_row and sft_row["file"] == "eval/sft_seed0.json"

    summary = results["summary"]
    assert list(summary) == ["teacher", "student_base", "sft", "rl_rm", "rl_vote", "rl_rm_teacher_only", "rl_gold"]
    sft = summary["sft"]
    assert sft["mean"] == pytest.approx(0.52) and sft["std"] == pytest.approx(0.02)
    assert (sft["min"], sft["max"], sft["n_seeds"]) == (0.5, 0.54, 3)
    assert sft["ci95_mean"] == pytest.approx([0.52 - T2 * 0.02 / math.sqrt(3), 0.52 + T2 * 0.02 / math.sqrt(3)])
    assert sft["ci95_mean_method"] == "t-interval over seeds, cut to [0, 1]"
    assert sft["maj_at_k"]["mean"] == pytest.approx(0.57)
    geometry = sft["per_category"]["geometry"]
    assert geometry["mean"] == pytest.approx(0.47) and geometry["n_seeds"] == 3
    rl_rm = summary["rl_rm"]
    assert rl_rm["mean"] == pytest.approx(0.63) and rl_rm["std"] == pytest.approx(0.03)
    assert rl_rm["ci95_mean"] == pytest.approx([0.63 - T2 * 0.03 / math.sqrt(3), 0.63 + T2 * 0.03 / math.sqrt(3)])
    teacher = summary["teacher"]
    assert teacher["mean"] == 0.8 and teacher["std"] is None and teacher["ci95_mean"] is None
    assert summary["rl_gold"]["kind"] == "upper_bound" and "upper bound" in summary["rl_gold"]["description"]
    assert summary["rl_rm_teacher_only"]["kind"] == "ablation"
    assert summary["sft"]["description"] == 'SFT only (paper: "Ours w/o R")'

    comparisons = {c["name"]: c for c in results["comparisons"]}
    c = comparisons["rl_rm - sft"]
    assert c["pairing"] == "by seed" and [p["seed"] for p in c["per_seed"]] == [0, 1, 2]
    assert [p["diff"] for p in c["per_seed"]] == pytest.approx([0.10, 0.14, 0.09])
    assert c["mean_diff"] == pytest.approx(0.11) and c["std_diff"] == pytest.approx(math.sqrt(0.0007))
    assert c["ci95"] == pytest.approx([0.11 - T2 * math.sqrt(0.0007 / 3), 0.11 + T2 * math.sqrt(0.0007 / 3)])
    assert c["ci95_method"] == "t-interval over paired seed differences, cut to [-1, 1]"
    c = comparisons["rl_rm - teacher"]  # the teacher was evaluated once: every seed against it
    assert c["pairing"] == "every seed of rl_rm against the single evaluation of teacher"
    assert [p["diff"] for p in c["per_seed"]] == pytest.approx([-0.20, -0.14, -0.17])
    assert c["mean_diff"] == pytest.approx(-0.17)
    c = comparisons["rl_rm - rl_vote"]  # only the seeds both have
    assert [p["seed"] for p in c["per_seed"]] == [0, 1] and c["mean_diff"] == pytest.approx(0.07)
    half = T1 * (0.04 / math.sqrt(2)) / math.sqrt(2)
    assert c["ci95"] == pytest.approx([0.07 - half, 0.07 + half])
    assert comparisons["sft - student_base"]["mean_diff"] == pytest.approx(0.22)
    assert comparisons["rl_gold - rl_rm"]["mean_diff"] == pytest.approx(0.72 - 0.63)
    assert comparisons["rl_rm_teacher_only - rl_rm"]["per_seed"] == [
        {"seed": 0, "a": 0.58, "b": 0.60, "diff": pytest.approx(-0.02)}
    ]

    # pseudo-labels: the worked example (README): coverage 2/3, label accuracy 1/2, q1's vote 3/4, q3's 2/3
    teacher_labels = results["pseudo_labels"]["teacher"]
    assert teacher_labels["coverage"] == pytest.approx(2 / 3) and teacher_labels["label_accuracy"] == 0.5
    assert teacher_labels["label_accuracy_n"] == 2 and teacher_labels["dropped"] == {"tie": 1}
    assert teacher_labels["majority_ratio_mean"] == pytest.approx((0.75 + 0.5 + 2 / 3) / 3)
    assert teacher_labels["label_accuracy_by_majority_ratio"] == {
        "0.6-0.7": {"n": 1, "accuracy": 0.0},
        "0.7-0.8": {"n": 1, "accuracy": 1.0},
    }
    assert teacher_labels["teacher"]["reward_accuracy"] == 0.625
    seeds = results["pseudo_labels"]["seeds"]
    assert [s["seed"] for s in seeds] == [0, 1, 2]
    student = seeds[0]["student"]
    assert student["samples"] == 6 and student["labelled"] == 5 and student["label_1_share"] == pytest.approx(2 / 5)

    # reward model: seed 2's rm_eval.json is missing, its scores are there
    rm = results["reward_model"]
    assert [e["seed"] for e in rm["seeds"]] == [0, 1, 2] and rm["seeds"][2]["file"] is None
    assert rm["seeds"][0]["pseudo_pairs_accuracy"] == 0.9 and rm["seeds"][1]["gold_pairs_accuracy"] == 0.75
    assert rm["mean_over_seeds"]["pseudo_pairs_accuracy"]["mean"] == pytest.approx(0.85)
    assert rm["mean_over_seeds"]["auc"]["n_seeds"] == 2 and rm["mean_over_seeds"]["auc"]["mean"] == pytest.approx(0.9)
    scores = rm["seeds"][0]["scores"]
    rows = [r for r in _scores(0) if r["source"] == "student"]
    good = [r["score"] for r in rows if r["gold_correct"]]
    bad = [r["score"] for r in rows if not r["gold_correct"]]
    assert (scores["n"], scores["n_gold_correct"], scores["n_gold_incorrect"]) == (40, 16, 24)  # teacher row left out
    assert scores["mean_score_gold_correct"] == pytest.approx(sum(good) / 16)
    assert scores["mean_score_gold_incorrect"] == pytest.approx(sum(bad) / 24)
    assert scores["auc_gold"] == 1.0  # every right sample outscores every wrong one

    # RL: the half-written last line of seed 1's rl_rm is skipped (and listed); gold accuracy only where logged;
    # seed 2's killed rl_style.partial is not a run
    rl = {(r["seed"], r["scheme"]): r for r in results["rl"]}
    assert list(rl) == [(seed, scheme) for seed in (0, 1, 2) for scheme in ("rm", "vote", "gold")]
    assert rl[(1, "rm")]["steps"] == [1, 2, 3, 4, 5] and rl[(1, "rm")]["reward_mean"] == pytest.approx(
        [0.11, 0.21, 0.31, 0.41, 0.51]
    )
    assert rl[(1, "rm")]["gold_correct"] is None and rl[(0, "rm")]["wall_seconds"] == 42.5
    assert rl[(0, "vote")]["gold_correct"] == pytest.approx([0.1, 0.2, 0.3])
    assert rl[(0, "vote")]["gold_correct_last"] == pytest.approx(0.3)
    assert rl[(0, "vote")]["reward_mean_first"] == pytest.approx(0.2)

    compute = results["compute"]
    assert compute["totals"] == {"wall_seconds": pytest.approx(209.5), "samples": 2800, "tokens": 58100}
    assert [s["key"] for s in compute["stages"]] == [  # pipeline order: shared stages, then seed by seed
        "teacher_samples",
        "teacher_labels",
        "sft@seed0",
        "student_samples@seed0",
        "sft@seed1",
        "student_samples@seed1",
        "rl_rm@seed2",
    ]
    by_stage = {s["stage"]: s for s in compute["by_stage"]}
    assert list(by_stage) == ["teacher_samples", "teacher_labels", "sft", "student_samples", "rl"]
    assert by_stage["student_samples"] == {
        "stage": "student_samples",
        "runs": 2,
        "wall_seconds": 42.0,
        "samples": 2400,
        "tokens": 18100,
    }
    assert compute["evaluation"]["evaluations"] == 14

    missing = {m["path"]: m for m in results["missing"]}
    assert set(missing) == {
        "eval/rl_vote_seed2.json",
        "seed2/rm_eval.json",
        "seed1/rl_rm/distill_ppo/metrics.jsonl",
        "stages/rl_rm_seed2.json",
    }
    assert missing["stages/rl_rm_seed2.json"]["reason"].startswith("not finished (status 'started')")
    assert missing["seed2/rm_eval.json"]["reason"] == "absent"
    assert missing["seed1/rl_rm/distill_ppo/metrics.jsonl"]["reason"].startswith("1 unreadable line(s) skipped")
    assert "t-interval" in results["ci_method"]


def test_report_md_holds_the_tables_and_is_deterministic(report):
    run_dir, _ = report
    text = Path(run_dir, "report.md").read_text()
    lo, hi = 100 * (0.52 - T2 * 0.02 / math.sqrt(3)), 100 * (0.52 + T2 * 0.02 / math.sqrt(3))
    sft_ci = (
        f"50.0 [{100 * (0.5 - 1.96 * math.sqrt(0.25 / 200)):.1f}, {100 * (0.5 + 1.96 * math.sqrt(0.25 / 200)):.1f}]"
    )
    assert f'| sft | SFT only (paper: "Ours w/o R") | 52.0 | [{lo:.1f}, {hi:.1f}] | 2.0 | 3 | 200 | {sft_ci} |' in text
    assert "| rl_gold (upper bound) | SFT + RL, gold reward: upper bound, reads gold labels | 72.0 |" in text
    assert "| teacher | teacher | 80.0 | - | - | 1 | 200 | 80.0 [" in text
    assert "| rl_vote | SFT + RL, rule reward on the teacher's vote | 56.0 |" in text and "| - |" in text
    assert "| rl_rm - sft | what RL adds on top of SFT | +11.0 |" in text
    assert "| category | sft | rl_rm |" in text and "| algebra | 57.0 | 68.0 |" in text
    assert "| label accuracy vs gold | 50.0% (n=2) |" in text
    assert "| 0 | 90.0% (n=50) | 70.0% (n=40) | 0.850 | 0.100 | 80.0 / 50.0 / 60.0 |" in text
    assert "| 1 | vote | 3 | 0.200 -> 0.600 | 10.0 -> 30.0 | - |" in text and "| 1 | rm | 5 |" in text
    assert (
        "| student_samples | 2 | 2,400 | 18,100 | 42.0 |" in text and "| total | 7 | 2,800 | 58,100 | 209.5 |" in text
    )
    assert "- `seed2/rm_eval.json`: " in text and "(plots/accuracy.png)" in text and "## How to read this" in text
    # Same input, same bytes: rebuilding (plots included) rewrites identical files.
    first = {name: Path(run_dir, name).read_bytes() for name in ("report.md", "results.json")}
    build_report(run_dir)
    assert {name: Path(run_dir, name).read_bytes() for name in first} == first
    # ... and a copy elsewhere under the same name gives the same report: no absolute path, time or host in it
    copy = os.path.join(os.path.dirname(run_dir), "elsewhere", "run_gsm8k")
    shutil.copytree(run_dir, copy)
    build_report(copy)
    assert Path(copy, "report.md").read_bytes() == first["report.md"]


def test_plots_are_valid_png_images(report):
    import matplotlib.image

    run_dir, results = report
    files = [p["file"] for p in results["plots"]]
    assert files == ["plots/accuracy.png", "plots/rm_scores.png", "plots/rl_curves.png"]
    for rel in files:
        path = os.path.join(run_dir, rel)
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0.01  # something is drawn, not a blank canvas


def test_missing_and_unreadable_files_are_listed_and_never_fatal(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    results = build_report(str(empty))
    paths = {m["path"] for m in results["missing"]}
    assert {"run.json", "eval", "stages", "labels/metrics.json"} <= paths
    assert results["rows"] == [] and results["plots"] == [] and results["seeds"] == []
    text = (empty / "report.md").read_text()
    assert "No evaluated model found" in text and "- `run.json`: " in text

    broken = tmp_path / "broken"
    _write_json(str(broken / "run.json"), {"task": "gsm8k", "seeds": [0], "config": {}})
    (broken / "eval").mkdir()
    (broken / "eval" / "sft_seed0.json").write_text("{not json")
    _write_json(str(broken / "eval" / "rl_rm_seed0.json"), {"name": "rl_rm", "seed": 0, "accuracy": "high"})
    _write_json(str(broken / "eval" / "teacher_seed0.json"), _eval("teacher", 0, 0.8))
    (broken / "seed0").mkdir()
    (broken / "seed0" / "rm_eval.json").write_text("[1, 2]")
    parser = cli.command_parser("report")
    assert run(parser.parse_args([str(broken), "--no-plots"])) == 0
    out = capsys.readouterr().out
    assert "| teacher | teacher | 80.0 |" in out and "eval/sft_seed0.json: unreadable" in out
    results = json.loads((broken / "results.json").read_text())
    reasons = {m["path"]: m["reason"] for m in results["missing"]}
    assert reasons["eval/sft_seed0.json"].startswith("unreadable: ")
    assert reasons["eval/rl_rm_seed0.json"].startswith("unreadable: field 'accuracy' must be a number")
    assert reasons["seed0/rm_eval.json"] == "unreadable: expected a JSON object, got list"
    assert reasons["eval/student_base_seed<k>.json"] == "absent"
    assert reasons["seed0/rl_rm/distill_ppo/metrics.jsonl"] == "absent"  # rl_rm was evaluated: its RL run expected
    assert [r["name"] for r in results["rows"]] == ["teacher"] and not os.path.exists(broken / "plots")


def test_files_of_the_wrong_shape_are_reported_as_far_as_they_go(tmp_path):
    # Valid JSON with fields of the wrong type everywhere: the report is still written, nothing raises.
    run_dir = tmp_path / "odd"
    _write_json(str(run_dir / "run.json"), {"task": 7, "seeds": "0,1", "config": ["x"]})
    _write_json(str(run_dir / "labels" / "metrics.json"), {"questions": [1], "samples": "x", "label_accuracy": 3})
    _write_json(str(run_dir / "seed0" / "labels" / "metrics.json"), {"samples": {"student": {"read": "many"}}})
    _write_json(str(run_dir / "seed0" / "rm_eval.json"), {"pseudo_pairs": [1], "best_of_n": "x", "points": None})
    _write_jsonl(str(run_dir / "seed0" / "rm_scores.jsonl"), [{"score": "high"}, {"score": 1.0, "gold_correct": 1}])
    odd = {"name": "sft", "seed": 0, "accuracy": 0.5, "ci95": "wide", "maj_at_k": [1], "per_category": [1], "n": "x"}
    _write_json(str(run_dir / "eval" / "sft_seed0.json"), odd)
    _write_json(str(run_dir / "stages" / "x.json"), {"stage": 3, "seed": "a", "wall_seconds": "x", "status": None})
    steps = [{"step": "a", "rollout/reward_mean": "x"}, {"step": 2, "rollout/reward_mean": 0.5}]
    _write_jsonl(str(run_dir / "seed0" / "rl_rm" / "distill_ppo" / "metrics.jsonl"), steps, "[1, 2]\n")
    results = build_report(str(run_dir))
    assert [r["accuracy"] for r in results["rows"]] == [0.5] and results["rows"][0]["ci95"] is None
    assert results["rl"][0]["reward_mean"] == [None, 0.5] and results["compute"]["stages"][0]["stage"] == "3"
    assert results["reward_model"]["seeds"][0]["scores"]["n"] == 1
    assert "| sft |" in (run_dir / "report.md").read_text()


def test_expected_files_follow_the_run_config(tmp_path):
    # The pipeline's resolved config says which models and RL runs should exist (eval.models, ppo.schemes,
    # rm.ablations); what it names and is absent is listed, what it leaves out is not.
    run_dir = tmp_path / "configured"
    config = {
        "eval": {"models": ["teacher"]},
        "ppo": {"schemes": ["rm", "vote"]},
        "rm": {"ablations": ["teacher_only"]},
    }
    _write_json(str(run_dir / "run.json"), {"task": "gsm8k", "seeds": [0], "config": config})
    for name in ("teacher", "sft", "rl_rm"):
        _write_json(str(run_dir / "eval" / f"{name}_seed0.json"), _eval(name, 0, 0.5))
    results = build_report(str(run_dir), plots=False)
    paths = {m["path"] for m in results["missing"]}
    assert {
        "eval/rl_vote_seed0.json",
        "eval/rl_rm_teacher_only_seed0.json",
        "seed0/rl_rm/distill_ppo/metrics.jsonl",
        "seed0/rl_vote/distill_ppo/metrics.jsonl",
        "seed0/rl_rm_teacher_only/distill_ppo/metrics.jsonl",
    } <= paths
    assert not any("student_base" in p for p in paths) and "eval/sft_seed0.json" not in paths

    # With a teacher budget the vote trains on the labelled prompts only: its run is rl_vote_labelled.
    config["data"] = {"labelled_questions": 200}
    _write_json(str(run_dir / "run.json"), {"task": "gsm8k", "seeds": [0], "config": config})
    paths = {m["path"] for m in build_report(str(run_dir), plots=False)["missing"]}
    assert {"eval/rl_vote_labelled_seed0.json", "seed0/rl_vote_labelled/distill_ppo/metrics.jsonl"} <= paths
    assert not any("rl_vote/" in p or "rl_vote_seed" in p for p in paths)


def test_report_command_prints_the_main_table(report, capsys):
    run_dir, _ = report
    parser = cli.command_parser("report")
    assert run(parser.parse_args([run_dir])) == 0
    out = capsys.readouterr().out
    assert out.startswith("gsm8k, seeds 0, 1, 2: accuracy (%), mean over seeds [95% t-interval]\n")
    assert "| rl_rm | SFT + RL, distilled reward model (the paper's method) | 63.0 |" in out
    assert "| rl_rm - sft |" in out and "report.md" in out
    with pytest.raises(ValueError, match="not a directory"):
        build_report(os.path.join(run_dir, "nowhere"))


# --- the styles preset: answers "worked" or "direct", and the control rewards ----------------------------------

# name -> {seed: (accuracy, greedy worked share, sampled worked share or None (k = 1), accuracy of the greedy
# worked answers, of the greedy direct ones)}; None: no answer of that style.
STYLE_EVALS = {
    "teacher": {0: (0.80, 0.0, 0.0, None, 0.80)},
    "sft": {0: (0.50, 0.10, 0.20, 0.90, 0.45), 1: (0.52, 0.20, 0.30, 0.80, 0.44)},
    "rl_rm": {0: (0.60, 0.30, 0.40, 0.70, 0.55), 1: (0.64, 0.50, 0.50, 0.80, 0.48)},
    "rl_random": {0: (0.51, 0.10, 0.20, 0.90, 0.46), 1: (0.53, 0.10, None, 0.90, 0.48)},
    "rl_style": {0: (0.55, 0.90, 0.95, 0.55, 0.55), 1: (0.57, 1.0, 1.0, 0.57, None)},
}
PAIR_TYPES = {  # seed -> eval-rm's gold_pairs_by_type, as (accuracy, n)
    0: {
        "worked_vs_worked": (0.8, 10),
        "worked_vs_direct": (1.0, 20),
        "direct_vs_worked": (0.2, 20),
        "direct_vs_direct": (0.5, 10),
    },
    1: {
        "worked_vs_worked": (0.6, 5),
        "worked_vs_direct": (0.9, 20),
        "direct_vs_worked": (0.3, 10),
        "direct_vs_direct": (None, 0),
    },
}


def _styles_of(shares: tuple[float, float | None], worked: float | None, direct: float | None) -> dict:
    def one(share, n_total):
        n = round(share * n_total)
        return {
            "worked": {"n": n, "share": share, "accuracy": worked},
            "direct": {"n": n_total - n, "share": 1 - share, "accuracy": direct},
        }

    return {"greedy": one(shares[0], 200), "sampled": None if shares[1] is None else one(shares[1], 1600)}


def make_styles_run(root) -> str:
    """A run of the toy world's styles preset: 2 seeds, the control rewards, evaluations and RM evaluations
    with styles."""
    run_dir = str(root / "run_arithmetic")
    _write_json(os.path.join(run_dir, "run.json"), {"task": "arithmetic", "seeds": [0, 1], "config": {}})
    for name, per_seed in STYLE_EVALS.items():
        for seed, (accuracy, greedy, sampled, worked, direct) in per_seed.items():
            record = {**_eval(name, seed, accuracy), "task": "arithmetic"}
            record["styles"] = _styles_of((greedy, sampled), worked, direct)
            _write_json(os.path.join(run_dir, "eval", f"{name}_seed{seed}.json"), record)
    for seed, types in PAIR_TYPES.items():
        by_type = {kind: {"accuracy": accuracy, "n": n} for kind, (accuracy, n) in types.items()}
        rm_eval = {"model": "rm", "gold_pairs": {"accuracy": 0.7, "n": 50}, "gold_pairs_by_type": by_type}
        _write_json(os.path.join(run_dir, f"seed{seed}", "rm_eval.json"), rm_eval)
    return run_dir


def test_styles_and_control_rewards_are_reported_with_means_over_seeds(tmp_path):
    run_dir = make_styles_run(tmp_path)
    results = build_report(run_dir)
    summary = results["summary"]
    assert list(summary) == ["teacher", "sft", "rl_rm", "rl_random", "rl_style"]
    assert summary["rl_random"]["description"] == (
        "SFT + RL, random reward (control: a gain it also brings is not the RM's)"
    )
    assert summary["rl_style"]["description"] == (
        "SFT + RL, reward for the worked style only (control: what rewarding the style alone brings)"
    )
    assert summary["rl_random"]["kind"] == summary["rl_style"]["kind"] == "rl"

    comparisons = {c["name"]: c for c in results["comparisons"]}
    c = comparisons["rl_random - sft"]
    assert c["pairing"] == "by seed" and [p["diff"] for p in c["per_seed"]] == pytest.approx([0.01, 0.01])
    assert "control" in c["what"] and "random reward" in c["what"]
    assert comparisons["rl_style - sft"]["mean_diff"] == pytest.approx(0.05)
    c = comparisons["rl_rm - rl_style"]
    assert [p["diff"] for p in c["per_seed"]] == pytest.approx([0.05, 0.07]) and c["mean_diff"] == pytest.approx(0.06)
    assert comparisons["rl_rm - sft"]["what"] == "what RL adds on top of SFT"
    names = [c["name"] for c in results["comparisons"]]
    assert names.index("rl_rm - sft") < names.index("rl_random - sft") < names.index("rl_style - sft")

    styles = results["styles"]
    assert styles["styles"] == ["worked", "direct"]
    assert list(styles["models"]) == ["teacher", "sft", "rl_rm", "rl_random", "rl_style"]
    sft = styles["models"]["sft"]
    assert sft["n_seeds"] == 2 and sft["seeds"] == [0, 1]
    share = sft["greedy"]["worked"]["share"]
    assert share["mean"] == pytest.approx(0.15) and share["n_seeds"] == 2
    assert share["std"] == pytest.approx(sample_std([0.1, 0.2]))
    # a share's interval stops at 0, where the t-interval of two seeds would go below it
    assert share["ci95_mean"] == pytest.approx(t_interval([0.1, 0.2], within=(0.0, 1.0)))
    assert share["ci95_mean"][0] == 0.0 > t_interval([0.1, 0.2])[0]
    assert sft["sampled"]["worked"]["share"]["mean"] == pytest.approx(0.25)
    assert sft["greedy"]["worked"]["accuracy"]["mean"] == pytest.approx(0.85)
    assert sft["greedy"]["direct"]["accuracy"]["mean"] == pytest.approx(0.445)
    random_ = styles["models"]["rl_random"]
    assert random_["sampled"]["worked"]["share"] == {"n_seeds": 1, "mean": 0.2, "std": None, "ci95_mean": None}
    style = styles["models"]["rl_style"]
    assert style["greedy"]["direct"]["accuracy"]["n_seeds"] == 1  # seed 1 gave no direct answer
    assert style["greedy"]["direct"]["share"]["mean"] == pytest.approx(0.05)
    teacher = styles["models"]["teacher"]
    assert teacher["greedy"]["worked"]["accuracy"] is None and teacher["greedy"]["direct"]["share"]["mean"] == 1.0
    row = next(r for r in results["rows"] if (r["name"], r["seed"]) == ("rl_random", 1))
    assert row["styles"]["sampled"] is None and row["styles"]["greedy"]["worked"]["n"] == 20

    rm = results["reward_model"]
    assert rm["seeds"][1]["gold_pairs_by_type"]["direct_vs_direct"] == {"accuracy": None, "n": 0}
    by_type = rm["mean_over_seeds"]["gold_pairs_by_type"]
    assert list(by_type) == ["worked_vs_worked", "worked_vs_direct", "direct_vs_worked", "direct_vs_direct"]
    assert by_type["worked_vs_direct"]["mean"] == pytest.approx(0.95) and by_type["worked_vs_direct"]["n_seeds"] == 2
    assert by_type["direct_vs_direct"] == {"mean": 0.5, "std": None, "n_seeds": 1, "ci95": None}

    text = Path(run_dir, "report.md").read_text()
    assert "## Styles" in text and text.index("### Differences") < text.index("## Styles") < text.index(
        "## Pseudo-label quality"
    )
    assert (
        "| model | seeds | greedy: worked share (%) | sampled: worked share (%) | accuracy of worked answers (%) "
        "| accuracy of direct answers (%) |"
    ) in text
    assert "| sft | 2 | 15.0 | 25.0 | 85.0 | 44.5 |" in text
    assert "| rl_random | 2 | 10.0 | 20.0 | 90.0 | 47.0 |" in text
    assert "| teacher | 1 | 0.0 | 0.0 | - | 80.0 |" in text
    assert "| rl_style | SFT + RL, reward for the worked style only (control: " in text
    assert "| rl_rm - rl_style | the distilled RM against rewarding the worked style alone" in text
    assert "| pair (right vs wrong answer) | seed 0 | seed 1 | mean (%) |" in text
    assert "| worked vs direct | 100.0% (n=20) | 90.0% (n=20) | 95.0 |" in text
    assert "| direct vs direct | 50.0% (n=10) | - | 50.0 |" in text
    assert "plots/styles.png" in [p["file"] for p in results["plots"]]
    # Same input, same bytes.
    first = {name: Path(run_dir, name).read_bytes() for name in ("report.md", "results.json")}
    build_report(run_dir)
    assert {name: Path(run_dir, name).read_bytes() for name in first} == first


def test_styles_plot_is_a_valid_png_image(tmp_path):
    import matplotlib.image

    run_dir = make_styles_run(tmp_path)
    results = build_report(run_dir)
    assert [p["file"] for p in results["plots"]] == ["plots/accuracy.png", "plots/styles.png"]
    image = matplotlib.image.imread(os.path.join(run_dir, "plots", "styles.png"))
    assert image.ndim == 3 and image.shape[1] > 100 and image[..., :3].std() > 0.01


def test_a_run_without_styles_has_no_styles_section(report):
    run_dir, results = report
    assert "styles" not in results and not any("styles" in row for row in results["rows"])
    assert "gold_pairs_by_type" not in results["reward_model"]["mean_over_seeds"]
    assert not any("gold_pairs_by_type" in e for e in results["reward_model"]["seeds"])
    text = Path(run_dir, "report.md").read_text()
    assert "## Styles" not in text and "pair (right vs wrong answer)" not in text


def test_adaptive_teacher_sampling_is_reported_with_what_it_saved_and_cost(tmp_path):
    run_dir = make_run(tmp_path)
    assert build_report(run_dir, plots=False)["compute"]["adaptive_teacher"] is None  # the whole budget drawn
    adaptive = {
        "questions": 50,
        "samples_budget": 600,
        "samples_drawn": 420,
        "share_of_budget": 0.7,
        "stop_reasons": {"settled": 44, "budget": 6},
    }
    _write_json(
        Path(run_dir, "teacher_samples", "summary.json"), {"samples": 420, "tokens": 9000, "adaptive": adaptive}
    )
    _write_json(Path(run_dir, "teacher_samples", "manifest.json"), {"adaptive": {"rule": "exact", "confidence": 0.95}})
    _write_json(Path(run_dir, "sft_data", "build_metrics.json"), {"rows": {"sft": 180}})
    _write_json(Path(run_dir, "seed1", "data", "build_metrics.json"), {"rows": {"rm_pairs": 77}})
    results = build_report(run_dir, plots=False)
    assert results["compute"]["adaptive_teacher"] == {
        **adaptive,
        "rule": "exact",
        "confidence": 0.95,
        "tokens": 9000,
        "tokens_saved_estimate": 3857,
        "sft_rows": 180,
        "rm_pairs_by_seed": {1: 77},
    }
    text = Path(run_dir, "report.md").read_text()
    assert "Adaptive teacher sampling (exact): 420 of 600 teacher samples drawn (70.0% of the budget)" in text
    assert "about 3,857 saved" in text and "seed 1: 77" in text
    assert "settled 44" in text and "180 SFT rows" in text and "those of the full budget" in text
    _write_json(Path(run_dir, "teacher_samples", "manifest.json"), {"adaptive": {"rule": "beta", "confidence": 0.9}})
    build_report(run_dir, plots=False)
    assert (
        "may differ from the full budget's (the beta rule at confidence 0.9" in Path(run_dir, "report.md").read_text()
    )


# --- eval-rm --scores-out --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_eval_rm_writes_per_sample_scores(tmp_path, tiny_model):
    from openrlhf_distill.toy.tiny_model import build_tiny_reward_model

    rm = build_tiny_reward_model(str(tmp_path / "rm"), base_dir=tiny_model)
    prompts = tmp_path / "prompts.jsonl"  # the worked example plus q4, which has no gold and no teacher vote
    q4 = {"id": "q4", "task": "gsm8k", "prompt": "What is 2 + 2?"}
    prompts.write_text(Path(WORKED, "prompts.jsonl").read_text() + json.dumps(q4) + "\n")
    samples = tmp_path / "student.jsonl"
    q4_sample = {
        "id": "q4",
        "source": "student",
        "model": "s",
        "temperature": 1.0,
        "sample_index": 0,
        "response": "#### 4",
    }
    samples.write_text(Path(WORKED, "student.jsonl").read_text() + json.dumps(q4_sample) + "\n")
    label_samples(str(prompts), os.path.join(WORKED, "teacher.jsonl"), str(tmp_path / "labels"))
    cmd = [
        sys.executable,
        "-m",
        "openrlhf_distill.cli",
        "eval-rm",
        "--model",
        rm,
        "--prompts",
        str(prompts),
        "--samples",
        str(samples),
        "--votes",
        str(tmp_path / "labels" / "votes.jsonl"),
        "--scores-out",
        str(tmp_path / "rm_scores.jsonl"),
        "--out",
        str(tmp_path / "rm_eval.json"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "rm_scores.jsonl").read_text().splitlines()]
    got = {(r["id"], r["sample_index"]): (r["answer"], r["gold_correct"], r["pseudo_correct"]) for r in rows}
    assert got == {  # gold from the prompts; pseudo-labels 7 (q1), none (q2: tie), 12 (q3: the wrong vote), none (q4)
        ("q1", 0): ("7", True, True),
        ("q1", 1): ("6", False, False),
        ("q1", 2): (None, False, False),
        ("q2", 0): ("11", True, None),
        ("q3", 0): ("10", True, False),
        ("q3", 1): ("12", False, True),
        ("q4", 0): ("4", None, None),
    }
    assert all(r["source"] == "student" and isinstance(r["score"], float) for r in rows)
    assert len({r["score"] for r in rows}) > 1  # a random head still tells texts apart
    report = json.loads((tmp_path / "rm_eval.json").read_text())
    assert report["scores"]["n"] == 7 and report["best_of_n"]["questions"] == 2  # q1, q3: two or more gold samples
    assert report["gold_pairs"]["n"] == 3  # q1: 7 vs 6, 7 vs no answer; q3: 10 vs 12
    # Without --scores-out: the measures are the same, and questions without gold are not scored at all.
    plain = [*cmd[: cmd.index("--votes")], "--out", str(tmp_path / "plain.json")]
    result = subprocess.run(plain, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    without = json.loads((tmp_path / "plain.json").read_text())
    assert "scores" not in without
    assert {k: without[k] for k in ("gold_pairs", "best_of_n")} == {k: report[k] for k in ("gold_pairs", "best_of_n")}
    refused = subprocess.run([*plain, "--votes", "v.jsonl"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert refused.returncode == 2 and "--votes is read only for --scores-out" in refused.stderr


def test_model_choice_is_reported_with_gold_beside_it_and_chosen_minus_last_over_seeds(tmp_path):
    """selection.json of the SFT sweep (select) and of each PPO run (ppo --distill.select.dev): the report shows
    every candidate's agreement and gold, the choice, and the gold of the chosen actor minus the last one's."""
    run_dir = make_run(tmp_path)
    gold = {0: (0.50, 0.70, 0.60), 1: (0.40, 0.65, 0.66), 2: (0.45, 0.80, 0.70)}  # steps 0, 8, 16
    for seed, (g0, g8, g16) in gold.items():
        curve = [
            {"name": f"step{s}", "step": s, "path": "x", "dev_agreement": a, "gold_accuracy": g}
            for s, a, g in ((0, 0.3, g0), (8, 0.6, g8), (16, 0.5, g16))
        ]
        selection = {"candidates": curve, "chosen": "step8", "chosen_step": 8, "last_step": 16}
        _write_json(os.path.join(run_dir, f"seed{seed}", "rl_rm", "distill_ppo", "selection.json"), selection)
        sweep = [
            {"name": "adam.lr-1e-4", "path": "a", "dev_agreement": 0.2, "gold_accuracy": 0.3},
            {"name": "adam.lr-1e-3", "path": "b", "dev_agreement": 0.25, "gold_accuracy": 0.1},
        ]
        sft_choice = {"candidates": sweep, "chosen": "adam.lr-1e-3"}
        _write_json(os.path.join(run_dir, f"seed{seed}", "student_sft", "selection.json"), sft_choice)
    results = build_report(run_dir)

    choice = results["model_choice"]
    assert [s["chosen"] for s in choice["sft_sweep"]] == ["adam.lr-1e-3"] * 3
    diff = choice["rl_chosen_minus_last"]["rm"]
    assert [round(p["diff"], 6) for p in diff["per_seed"]] == [0.10, -0.01, 0.10]
    assert diff["mean_diff"] == pytest.approx(0.19 / 3)
    rm_runs = [r for r in results["rl"] if r["scheme"] == "rm"]
    assert [r["selection"]["gold_chosen"] for r in rm_runs] == [0.70, 0.65, 0.80]
    report_md = open(os.path.join(run_dir, "report.md")).read()
    assert "## Model choice without gold" in report_md
    assert "| 0 | adam.lr-1e-3 (chosen) | 25.0 | 10.0 |" in report_md
    assert "| 1 | rm | 0: 30.0 / 40.0, 8: 60.0 / 65.0, 16: 50.0 / 66.0 | 8 | 65.0 | 66.0 |" in report_md
    assert "- rl_rm: chosen - last, gold accuracy +6.3 points" in report_md
