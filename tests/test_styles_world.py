"""The "styles" toy world (what `make demo` runs) through the pipeline, made small: the properties the demo's
effect relies on hold on what the stages really produce, not only on the pretraining corpora.

- the teacher answers in one style (the answer alone): its samples hold no worked solution;
- the SFT student's own samples still hold the other style (worked solutions), which is what the RM can learn
  to reward and RL can move the student to;
- gold answers never reach a training set: SFT rows answer with the teacher's pseudo-label, RM points and pairs
  are labelled against it, even on questions where it is wrong.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from openrlhf_distill.tasks import get_task

TASK = get_task("arithmetic")


def _read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _samples(folder):
    return [row for name in sorted(os.listdir(folder)) if name.endswith(".jsonl") for row in _read(f"{folder}/{name}")]


@pytest.mark.slow
def test_small_styles_world_keeps_the_styles_apart_and_gold_out_of_the_training_sets(tmp_path):
    """About 3 minutes on the 2-core development machine: a reduced styles world (small corpora, a 1-layer
    teacher, a few hundred pretraining steps), teacher sampling, vote, SFT with OpenRLHF's train_sft, student
    sampling, labels and the RM data."""
    run_dir = tmp_path / "run"
    small = {
        "n-dev": 50,
        "n-pretrain-teacher": 6000,
        "n-pretrain-student": 3000,
        "teacher-steps": 250,
        "student-steps": 400,
        "teacher-target": 0,
        "student-target": 0,
        "teacher-shape": "layers=1",
        "measure-questions": 40,
    }
    config = {
        "run_dir": str(run_dir),
        "task": "arithmetic",
        "seeds": [0],
        "engine": "cpu",
        "backend": "hf",
        "data": {"source": "toy", "toy": {"preset": "styles", "n_train": 80, "n_test": 40, "flags": small}},
        "teacher": {"temperatures": [0.7, 1.0], "n_per_temperature": 3, "max_new_tokens": 48, "shard_size": 80},
        "student": {"temperatures": [1.0], "n_per_temperature": 6, "max_new_tokens": 48, "shard_size": 80},
        "sft": {
            "flags": {
                "train.max_epochs": 1,
                "train.batch_size": 16,
                "train.micro_batch_size": 8,
                "adam.lr": 2.0e-4,
                "data.max_len": 128,
                "ds.zero_stage": 2,
                "ds.param_dtype": "bf16",
            }
        },
    }
    path = tmp_path / "styles.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "openrlhf_distill.cli", "run", "--config", str(path), "--until_stage", "rm_data"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    world = json.load(open(run_dir / "world" / "world.json"))
    settings = world["settings"]
    assert settings["teacher_worked_share"] == 0.0 and settings["student_worked_share"] == 0.3
    assert settings["student_shortcut_share"] == 1.0

    # The teacher's samples: the answer alone, every one of them.
    teacher = _samples(run_dir / "teacher_samples")
    assert len(teacher) == 80 * 6
    assert {TASK.response_style(s["response"]) for s in teacher} == {"direct"}

    # The SFT student's samples still hold worked solutions (the SFT rows, the teacher's, hold none).
    sft_rows = _read(run_dir / "sft_data" / "sft.jsonl")
    assert sft_rows and all(TASK.response_style(row["output"][-1]["content"]) == "direct" for row in sft_rows)
    student = _samples(run_dir / "seed0" / "student_samples")
    worked = [s for s in student if TASK.response_style(s["response"]) == "worked"]
    assert len(student) == 80 * 6 and len(worked) >= 0.05 * len(student), len(worked)

    # Gold stays out: the SFT answers are the accepted pseudo-labels, also where the vote is wrong.
    votes = {v["id"]: v for v in _read(run_dir / "labels" / "votes.jsonl")}
    gold = {r["id"]: r["gold"] for r in _read(run_dir / "world" / "prompts_train.jsonl")}
    wrong_votes = [i for i, v in votes.items() if v["accepted"] and not TASK.is_equivalent(v["pseudo_label"], gold[i])]
    assert wrong_votes, "a teacher this weak should be outvoted to a wrong answer somewhere"
    prompt_ids = {r["prompt"]: r["id"] for r in _read(run_dir / "world" / "prompts_train.jsonl")}
    for row in sft_rows:
        vote = votes[prompt_ids[row["input"][-1]["content"]]]
        assert vote["accepted"] and TASK.extract_answer(row["output"][-1]["content"]) == vote["pseudo_label"]
    assert any(votes[prompt_ids[row["input"][-1]["content"]]]["id"] in wrong_votes for row in sft_rows)
    labelled = _read(run_dir / "seed0" / "labels" / "student.jsonl")
    for sample in labelled:
        vote = votes[sample["id"]]
        if vote["accepted"]:
            assert sample["label"] == int(TASK.is_equivalent(sample["answer"], vote["pseudo_label"]))
    for name in ("rm_points.jsonl", "rm_pairs.jsonl"):
        rows = _read(run_dir / "seed0" / "data" / name)
        assert rows and not any("gold" in row or "gold" in (row.get("meta") or {}) for row in rows), name
