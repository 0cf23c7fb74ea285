"""Votes, labels and the built training sets on the README's worked example, then the error paths."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openrlhf_distill.build import BuildConfig, build_datasets
from openrlhf_distill.label import VoteConfig, label_samples
from openrlhf_distill.records import RecordError

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "worked_example")


def _read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


# The README's worked example (examples/worked_example/): three GSM8K-style questions, 4 teacher samples each
# at temperatures 0.3, 0.7, 1.0, 1.0, and a few student samples.
#   q1: three of four teacher answers say 7 ("7.00" is the same number): pseudo-label 7, right.
#   q2: 11 twice, 10 twice: a tie, so no pseudo-label and its samples are left out.
#   q3: 12 twice, 10 once, one unreadable answer: pseudo-label 12 (2 of 3 valid), which is WRONG (gold 10).
PROMPTS = _read(os.path.join(EXAMPLE, "prompts.jsonl"))
TEACHER_ROWS = _read(os.path.join(EXAMPLE, "teacher.jsonl"))
STUDENT_ROWS = _read(os.path.join(EXAMPLE, "student.jsonl"))


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def example(tmp_path):
    prompts = _write(tmp_path / "prompts.jsonl", PROMPTS)
    teacher = tmp_path / "teacher"
    teacher.mkdir()  # a folder of shards, as the generation stage writes
    _write(teacher / "shard-00000.jsonl", TEACHER_ROWS[:6])
    _write(teacher / "shard-00001.jsonl", TEACHER_ROWS[6:])
    student = _write(tmp_path / "student.jsonl", STUDENT_ROWS)
    return {"prompts": prompts, "teacher": str(teacher), "student": student, "dir": tmp_path}


def test_votes_labels_and_gold_metrics_of_the_worked_example(example):
    out = example["dir"] / "labels"
    metrics = label_samples(example["prompts"], example["teacher"], str(out), student=example["student"])

    votes = {v["id"]: v for v in _read(out / "votes.jsonl")}
    assert votes["q1"]["pseudo_label"] == "7" and votes["q1"]["counts"] == {"7": 3, "8": 1}
    assert votes["q1"]["majority_ratio"] == 0.75 and votes["q1"]["label_correct"] is True
    assert (
        votes["q2"]["accepted"] is False and votes["q2"]["reason"] == "tie" and votes["q2"]["label_correct"] is False
    )
    assert votes["q3"]["pseudo_label"] == "12" and votes["q3"]["valid"] == 3 and votes["q3"]["total"] == 4
    assert votes["q3"]["label_correct"] is False

    teacher = [(s["id"], s["sample_index"], s["answer"], s["label"]) for s in _read(out / "teacher.jsonl")]
    assert teacher == [
        ("q1", 0, "7", 1),
        ("q1", 1, "7", 1),
        ("q1", 2, "8", 0),
        ("q1", 3, "7", 1),
        ("q3", 0, "10", 0),
        ("q3", 1, "12", 1),
        ("q3", 2, None, 0),
        ("q3", 3, "12", 1),
    ]
    student = [(s["id"], s["answer"], s["label"]) for s in _read(out / "student.jsonl")]
    assert student == [("q1", "7", 1), ("q1", "6", 0), ("q1", None, 0), ("q3", "10", 0), ("q3", "12", 1)]

    assert metrics["questions"] == {"total": 3, "accepted": 2, "coverage": 2 / 3, "dropped": {"tie": 1}}
    assert metrics["label_accuracy"] == {"value": 0.5, "n": 2}
    # q3's pseudo-label is wrong, so most of its labels disagree with gold: 5 of 8 teacher labels agree, 3 of 5
    # student labels (only the unreadable "I am not sure." is labelled 0 and is wrong by gold too).
    assert metrics["reward_accuracy"]["teacher"] == {"value": 5 / 8, "n": 8}
    assert metrics["reward_accuracy"]["student"] == {"value": 3 / 5, "n": 5}
    assert metrics["samples"]["student"]["excluded_no_pseudo_label"] == 1
    assert metrics["extraction_rules"]["teacher"]["answer_is"] == 1
    assert json.load(open(out / "metrics.json")) == metrics


def test_gold_never_reaches_labels_or_training_data(example, tmp_path):
    # The same run with every gold answer changed: labels and every built set are identical.
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    label_samples(example["prompts"], example["teacher"], str(out_a / "labels"), student=example["student"])
    build_datasets(example["prompts"], str(out_a / "labels"), str(out_a / "data"))
    other_gold = _write(tmp_path / "other_gold.jsonl", [{**p, "gold": "#### 999"} for p in PROMPTS])
    label_samples(other_gold, example["teacher"], str(out_b / "labels"), student=example["student"])
    build_datasets(other_gold, str(out_b / "labels"), str(out_b / "data"))
    for name in (
        "labels/teacher.jsonl",
        "labels/student.jsonl",
        "data/sft.jsonl",
        "data/rm_pairs.jsonl",
        "data/rm_points.jsonl",
    ):
        assert _read(out_a / name) == _read(out_b / name), name
    rl_a, rl_b = _read(out_a / "data/rl_prompts.jsonl"), _read(out_b / "data/rl_prompts.jsonl")
    assert [r["label"] for r in rl_a] == [r["label"] for r in rl_b] == ["7", "12"]
    assert [r["gold"] for r in rl_b] == ["999", "999"]  # gold is kept beside the label, for metrics


def test_built_sets_of_the_worked_example(example):
    labels, data = example["dir"] / "labels", example["dir"] / "data"
    label_samples(example["prompts"], example["teacher"], str(labels), student=example["student"])
    summary = build_datasets(example["prompts"], str(labels), str(data))

    sft = _read(data / "sft.jsonl")
    assert [(r["meta"]["id"], r["output"][0]["content"]) for r in sft] == [
        ("q1", "3 + 4 = 7\n#### 7"),
        ("q1", "The answer is 7."),
        ("q1", "She has 7.00 apples. #### 7.00"),
        ("q3", "#### 12"),  # q3's two "#### 12" are one response once duplicates are removed
    ]
    assert sft[0]["input"][0]["role"] == "user" and "Ann has 3 apples" in sft[0]["input"][-1]["content"]
    assert summary["sft"]["duplicates_removed"] == 1

    pairs = _read(data / "rm_pairs.jsonl")
    by_question = {}
    for p in pairs:
        by_question.setdefault(p["meta"]["id"], []).append(p)
    # q1: 4 distinct label-1 x 3 label-0 responses = 12 pairs; q3: its three label-1 responses are all "#### 12",
    # so 1 x 3 distinct pairs (a repeated pair would only re-weight it)
    assert len(by_question["q1"]) == 12 and len(by_question["q3"]) == 3
    assert "q2" not in by_question  # no pseudo-label, no pairs
    for p in pairs:
        assert p["chosen"][0]["role"] == "assistant" and p["chosen"] != p["rejected"]
    assert summary["rm_pairs"]["student_vs_teacher"] >= 1 and summary["rm_pairs"]["teacher_vs_student"] >= 1

    points = _read(data / "rm_points.jsonl")
    assert len(points) == 8 + 5 and sum(p["label"] for p in points) == 5 + 2

    rl = _read(data / "rl_prompts.jsonl")
    assert [(r["id"], r["label"]) for r in rl] == [("q1", "7"), ("q3", "12")]
    # what the RL reward function reads: one JSON string per row (a plain string column for HF datasets)
    assert [json.loads(r["distill_label"]) for r in rl] == [
        {"id": "q1", "task": "gsm8k", "label": "7", "gold": "7"},
        {"id": "q3", "task": "gsm8k", "label": "12", "gold": "10"},
    ]


def test_caps_teacher_only_ablation_and_plain_format(example):
    labels, data = example["dir"] / "labels", example["dir"] / "data"
    label_samples(example["prompts"], example["teacher"], str(labels), student=example["student"])
    config = BuildConfig(sft_max_per_question=1, pairs_per_question=2, rm_sources=("teacher",), data_format="plain")
    summary = build_datasets(example["prompts"], str(labels), str(data), config)
    sft = _read(data / "sft.jsonl")
    assert [r["output"] for r in sft] == ["3 + 4 = 7\n#### 7", "#### 12"] and isinstance(sft[0]["input"], str)
    pairs = _read(data / "rm_pairs.jsonl")
    assert len(pairs) == 4 and {(p["meta"]["chosen_source"], p["meta"]["rejected_source"]) for p in pairs} == {
        ("teacher", "teacher")
    }
    assert all(p["meta"]["source"] == "teacher" for p in _read(data / "rm_points.jsonl"))
    assert summary["sft"]["over_cap"] == 2


def test_balanced_pairs_take_turns_between_source_mixes(example):
    labels, data = example["dir"] / "labels", example["dir"] / "data"
    label_samples(example["prompts"], example["teacher"], str(labels), student=example["student"])
    build_datasets(example["prompts"], str(labels), str(data), BuildConfig(pairs_per_question=4))
    q1 = [p["meta"] for p in _read(data / "rm_pairs.jsonl") if p["meta"]["id"] == "q1"]
    mixes = {(m["chosen_source"], m["rejected_source"]) for m in q1}
    assert len(q1) == 4 and len(mixes) == 4  # one pair from each of the four mixes, not four of the largest


def test_only_low_temperature_teacher_samples_vote_when_asked(example):
    out = example["dir"] / "labels"
    # Temperatures are 0.3, 0.7, 1.0, 1.0 by sample_index. At <= 0.7, q1 keeps "#### 7" and "The answer is 7." -> 7;
    # q3 keeps "#### 10" and "#### 12" -> a tie, where all four samples gave 12 a majority.
    label_samples(example["prompts"], example["teacher"], str(out), config=VoteConfig(max_temperature=0.7))
    votes = {v["id"]: v for v in _read(out / "votes.jsonl")}
    assert votes["q1"]["counts"] == {"7": 2} and votes["q3"]["reason"] == "tie"
    assert votes["q3"]["total"] == 2  # only the voting samples are counted


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda rows: rows.__setitem__(1, "{not json"), None, "malformed JSON"),
        (lambda rows: rows[1].pop("response"), "response", "missing"),
        (lambda rows: rows[1].update(id="q9"), "id", "not in the prompts file"),
        (lambda rows: rows[1].update(sample_index=0), "sample_index", "repeats"),
        (lambda rows: rows[1].update(source="student"), "source", "among the teacher samples"),
        (lambda rows: rows[1].update(temperature="hot"), "temperature", "must be a number"),
    ],
)
def test_bad_sample_records_are_named_by_file_line_and_field(example, tmp_path, mutate, field, message):
    rows = [dict(r) for r in TEACHER_ROWS]
    mutate(rows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    out = tmp_path / "labels"
    with pytest.raises(RecordError) as error:
        label_samples(example["prompts"], str(bad), str(out))
    assert (error.value.path, error.value.line, error.value.field) == (str(bad), 2, field)
    assert message in str(error.value) and "bad.jsonl:2" in str(error.value)
    assert not out.exists()  # nothing half-written


def test_a_failed_rerun_keeps_the_previous_outputs(example, tmp_path):
    out = tmp_path / "labels"
    label_samples(example["prompts"], example["teacher"], str(out))
    before = _read(out / "votes.jsonl")
    with pytest.raises(RecordError):
        label_samples(example["prompts"], example["teacher"], str(out), student=str(tmp_path / "missing.jsonl"))
    assert _read(out / "votes.jsonl") == before
    assert not [n for n in os.listdir(tmp_path) if ".partial-" in n]


def test_prompt_errors_name_the_field(tmp_path):
    prompts = _write(tmp_path / "p.jsonl", [PROMPTS[0], {"id": "q1", "task": "gsm8k", "prompt": "again"}])
    with pytest.raises(RecordError, match=r"p.jsonl:2 field 'id': question id 'q1' appears twice"):
        label_samples(prompts, prompts, str(tmp_path / "o"))
    prompts = _write(tmp_path / "p2.jsonl", [{"id": "q1", "task": "no_such_task", "prompt": "x"}])
    with pytest.raises(RecordError, match=r"p2.jsonl:1 field 'task'"):
        label_samples(prompts, prompts, str(tmp_path / "o"))
    prompts = _write(tmp_path / "p3.jsonl", [{"id": "q1", "prompt": "x"}])
    with pytest.raises(RecordError, match=r"p3.jsonl:1 field 'task': missing"):
        label_samples(prompts, prompts, str(tmp_path / "o"))


# Properties of the pair builder, on random labelled questions.
labelled_question = st.lists(
    st.tuples(
        st.sampled_from(["teacher", "student"]),
        st.sampled_from([0, 1]),
        st.sampled_from(["#### 1", "#### 2", "#### 3", "x", "y"]),
    ),
    max_size=12,
)


@settings(max_examples=30, deadline=None)
@given(st.lists(labelled_question, min_size=1, max_size=4), st.integers(1, 6), st.booleans())
def test_pairs_never_mix_questions_and_chosen_always_has_label_1(tmp_path_factory, questions, cap, balance):
    work = tmp_path_factory.mktemp("prop")
    prompts = [{"id": f"q{i}", "task": "gsm8k", "prompt": f"question {i}"} for i in range(len(questions))]
    votes = [
        {"id": f"q{i}", "pseudo_label": "1", "counts": {"1": 1}, "valid": 1, "total": 1, "accepted": True}
        for i in range(len(questions))
    ]
    labels = work / "labels"
    labels.mkdir()
    _write(labels / "votes.jsonl", votes)
    text_label = {}
    for source in ("teacher", "student"):
        rows = []
        for i, samples in enumerate(questions):
            for j, (s, label, text) in enumerate(samples):
                if s == source:
                    response = f"{text} #{j} (q{i})"  # each sample's text is its own
                    text_label[response] = label
                    rows.append(
                        {
                            "id": f"q{i}",
                            "source": s,
                            "model": "m",
                            "temperature": 1.0,
                            "sample_index": j,
                            "response": response,
                            "label": label,
                        }
                    )
        _write(labels / f"{source}.jsonl", rows)
    build_datasets(
        _write(work / "p.jsonl", prompts),
        str(labels),
        str(work / "data"),
        BuildConfig(pairs_per_question=cap, no_balance_sources=not balance),
    )
    pairs = _read(work / "data" / "rm_pairs.jsonl")
    per_question = {}
    for p in pairs:
        qid = p["meta"]["id"]
        chosen, rejected = p["chosen"][0]["content"], p["rejected"][0]["content"]
        assert chosen.endswith(f"({qid})") and rejected.endswith(f"({qid})")  # never mixes questions
        assert text_label[chosen] == 1 and text_label[rejected] == 0
        per_question[qid] = per_question.get(qid, 0) + 1
    assert all(n <= cap for n in per_question.values())


def test_judged_labels_build_pairs_over_the_margin_and_sft_from_the_top_score(tmp_path):
    # A labels folder as the judge stage writes it: no pseudo-label, label = score / 10.
    prompts = _write(tmp_path / "p.jsonl", [{"id": "o1", "task": "open", "prompt": "Write a haiku about rain."}])
    labels = tmp_path / "labels"
    labels.mkdir()
    _write(
        labels / "votes.jsonl",
        [
            {
                "id": "o1",
                "pseudo_label": None,
                "counts": {},
                "valid": 4,
                "total": 4,
                "majority_ratio": 0.0,
                "accepted": True,
                "reason": None,
            }
        ],
    )
    scores = {"teacher": [("best", 10), ("good", 8), ("fine", 7)], "student": [("weak", 4), ("ok", 6)]}
    for source, rows in scores.items():
        _write(
            labels / f"{source}.jsonl",
            [
                {
                    "id": "o1",
                    "source": source,
                    "model": "m",
                    "temperature": 1.0,
                    "sample_index": i,
                    "response": text,
                    "score": score,
                    "label": score / 10,
                }
                for i, (text, score) in enumerate(rows)
            ],
        )
    build_datasets(prompts, str(labels), str(tmp_path / "data"), BuildConfig(pair_margin=0.3))
    pairs = {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in _read(tmp_path / "data/rm_pairs.jsonl")}
    # differences of at least 3 points only: 10-7, 10-6, 10-4, 8-4, 7-4
    assert pairs == {("best", "fine"), ("best", "ok"), ("best", "weak"), ("good", "weak"), ("fine", "weak")}
    assert [r["output"][0]["content"] for r in _read(tmp_path / "data/sft.jsonl")] == ["best"]
    points = _read(tmp_path / "data/rm_points.jsonl")
    assert sorted(p["label"] for p in points) == [0.4, 0.6, 0.7, 0.8, 1.0]
    rl = _read(tmp_path / "data/rl_prompts.jsonl")[0]
    assert rl["label"] == "" and json.loads(rl["distill_label"]) == {
        "id": "o1",
        "task": "open",
        "label": None,
        "gold": None,
    }


def test_label_and_build_replace_only_their_own_earlier_output_and_never_an_input(example):
    # Measured before this check: `label --out` at a folder of the user's, at the working directory or at the
    # teacher samples deleted them all, exit 0.
    d = example["dir"]
    labels, data = str(d / "labels"), str(d / "data")
    label_samples(example["prompts"], example["teacher"], labels, student=example["student"])
    label_samples(example["prompts"], example["teacher"], labels)  # its own earlier output: replaced
    assert not os.path.exists(os.path.join(labels, "student.jsonl"))
    build_datasets(example["prompts"], labels, data)

    mine = d / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(RecordError, match=r"mine: `label` replaces its output folder whole.*not written by"):
        label_samples(example["prompts"], example["teacher"], str(mine))
    with pytest.raises(RecordError, match=r"data: `label` .*written by `build`"):
        label_samples(example["prompts"], example["teacher"], data)
    other_labels = str(d / "other_labels")
    label_samples(example["prompts"], example["teacher"], other_labels)
    with pytest.raises(RecordError, match=r"other_labels: `build` .*written by `label`"):
        build_datasets(example["prompts"], labels, other_labels)
    for out in (example["teacher"], str(d)):  # the samples folder; a folder holding the inputs (like `--out .`)
        with pytest.raises(RecordError, match="is, or holds, an input of `label`"):
            label_samples(example["prompts"], example["teacher"], out)
    with pytest.raises(RecordError, match="is, or holds, an input of `build`"):
        build_datasets(example["prompts"], labels, str(d))
    (d / "file.txt").write_text("a file")
    with pytest.raises(RecordError, match="the output path is a file"):
        build_datasets(example["prompts"], labels, str(d / "file.txt"))
    assert (mine / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(example["teacher"])) == ["shard-00000.jsonl", "shard-00001.jsonl"]
    assert os.path.exists(os.path.join(data, "rm_pairs.jsonl"))


def test_a_truncated_sample_that_never_stated_an_answer_does_not_vote(tmp_path):
    # Three samples read "12" by their last number; the two the token limit cut off were still working (their
    # "12" is the result of an unfinished step), so only the finished one and the stated "15" ones vote.
    prompts = _write(tmp_path / "p.jsonl", [{"id": "q1", "task": "gsm8k", "prompt": "How many?", "gold": "15"}])
    responses = [
        ("Step 1: 3 * 4 = 12", "length"),
        ("First 3 * 4 = 12", "length"),
        ("So it is 3 * 4 = 12", "stop"),
        ("3 * 5 = 15. #### 15", "stop"),
        ("The answer is 15.", "stop"),
    ]
    samples = [
        {
            "id": "q1",
            "source": "teacher",
            "model": "m",
            "temperature": 1.0,
            "sample_index": i,
            "response": text,
            "finish_reason": finish,
        }
        for i, (text, finish) in enumerate(responses)
    ]
    teacher = _write(tmp_path / "t.jsonl", samples)
    out = tmp_path / "labels"
    label_samples(prompts, teacher, str(out))
    [vote] = [json.loads(line) for line in open(out / "votes.jsonl")]
    assert vote["pseudo_label"] == "15" and vote["valid"] == 3 and vote["total"] == 5
