"""Benchmark data as prompt records: GSM8K and MMLU-Pro from local copies in the Hugging Face schemas, the
MMLU-Pro train/heldout split (stratified, deterministic, persisted), prepare-data, and what bad input gets."""

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrlhf_distill import cli, prepare_data
from openrlhf_distill.prepare_data import (
    SPLIT_FILE,
    DataError,
    load_split,
    run,
    stratified_split,
)
from openrlhf_distill.records import PROMPT, RecordError, read_records
from openrlhf_distill.tasks import get_task

# Rows as the Hugging Face datasets hold them (openai/gsm8k "main"; TIGER-Lab/MMLU-Pro).
GSM8K_ROWS = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
        "altogether in April and May.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
        "How much did she earn?",
        "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
        "$<<0.2*50=10>>10.\n#### 10",
    },
    {
        "question": "A company's revenue was $1,200 in May and twice that in June. What was June's revenue?",
        "answer": "June's revenue was 1,200 * 2 = <<1200*2=2400>>2,400 dollars.\n#### 2,400",
    },
]
CATEGORIES = {"law": 7, "math": 10, "business": 3, "history": 1, "physics": 12}


def mmlu_pro_rows(categories=CATEGORIES):
    rows, question_id = [], 70
    letters = "ABCDEFGHIJ"
    for category, count in categories.items():
        for i in range(count):
            options = [f"option {j} of question {question_id}" for j in range(10 if i % 2 else 4)]
            index = (question_id * 7) % len(options)
            rows.append(
                {
                    "question_id": question_id,
                    "question": f"A {category} question number {i}?",
                    "options": options,
                    "answer": letters[index],
                    "answer_index": index,
                    "cot_content": "",
                    "category": category,
                    "src": f"ori_mmlu-{category}",
                }
            )
            question_id += 3
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))
    return str(path)


# --- GSM8K -----------------------------------------------------------------------------------------------------


def test_gsm8k_records_from_jsonl(tmp_path):
    records = load_split("gsm8k", "test", source=write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS))
    assert [r["id"] for r in records] == ["gsm8k-test-0", "gsm8k-test-1", "gsm8k-test-2"]
    assert [r["gold"] for r in records] == ["72", "10", "2400"]  # after "####", canonical
    assert records[0]["prompt"] == GSM8K_ROWS[0]["question"] and all(r["task"] == "gsm8k" for r in records)
    task = get_task("gsm8k")
    for r in records:
        PROMPT.check(r, "x", 1)
        assert task.parse_gold(r) == r["gold"]
        assert "####" in task.format_prompt(r)[0]["content"]  # the zero-shot instruction
    assert len(load_split("gsm8k", "test", source=str(tmp_path / "gsm8k.jsonl"), limit=2)) == 2


def test_every_local_source_kind_gives_the_same_records(tmp_path):
    import datasets

    expected = load_split("gsm8k", "train", source=write_jsonl(tmp_path / "a.jsonl", GSM8K_ROWS))
    (tmp_path / "b.json").write_text(json.dumps(GSM8K_ROWS))  # a JSON list
    # a download of the dataset repository: main/{split}-*.parquet, and another config beside it
    write_parquet(tmp_path / "repo" / "main" / "train-00000-of-00001.parquet", GSM8K_ROWS)
    write_parquet(tmp_path / "repo" / "socratic" / "train-00000-of-00001.parquet", GSM8K_ROWS[:1])
    sources = [str(tmp_path / "b.json"), write_parquet(tmp_path / "c.parquet", GSM8K_ROWS), str(tmp_path / "repo")]
    datasets.Dataset.from_list(GSM8K_ROWS).save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(GSM8K_ROWS)}).save_to_disk(str(tmp_path / "saved_dict"))
    datasets.Dataset.from_list(GSM8K_ROWS).to_json(str(tmp_path / "to_json.json"))  # JSON Lines, named .json
    sources += [str(tmp_path / "saved"), str(tmp_path / "saved_dict"), str(tmp_path / "to_json.json")]
    for source in sources:
        assert load_split("gsm8k", "train", source=source) == expected, source


def test_gsm8k_bad_rows_are_located(tmp_path):
    rows = [GSM8K_ROWS[0], {"question": "How many?"}]
    with pytest.raises(RecordError) as error:
        load_split("gsm8k", "test", source=write_jsonl(tmp_path / "missing.jsonl", rows))
    assert (error.value.path, error.value.line, error.value.field) == (str(tmp_path / "missing.jsonl"), 2, "answer")
    rows = [{"question": "How many?", "answer": "Nobody knows.\n#### many"}]
    with pytest.raises(RecordError, match="holds no number") as error:
        load_split("gsm8k", "test", source=write_jsonl(tmp_path / "nonumber.jsonl", rows))
    assert error.value.field == "answer"
    (tmp_path / "broken.jsonl").write_text(json.dumps(GSM8K_ROWS[0]) + "\n{not json\n")
    with pytest.raises(RecordError, match="malformed JSON") as error:
        load_split("gsm8k", "test", source=str(tmp_path / "broken.jsonl"))
    assert error.value.line == 2


def test_unknown_task_split_source_and_the_toy_task(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'gsm9k'"):
        load_split("gsm9k", "test", source="x.jsonl")
    with pytest.raises(DataError, match="toy world"):
        load_split("arithmetic", "test")
    with pytest.raises(DataError, match="no benchmark data is known for task 'math'"):
        load_split("math", "test")
    with pytest.raises(DataError, match="gsm8k has no split 'validation'; choose one of train, test"):
        load_split("gsm8k", "validation", source="x.jsonl")
    with pytest.raises(DataError, match="no such file or folder"):
        load_split("gsm8k", "test", source=str(tmp_path / "nowhere.jsonl"))
    (tmp_path / "rows.csv").write_text("question,answer\n")
    with pytest.raises(DataError, match="unknown file type '.csv'"):
        load_split("gsm8k", "test", source=str(tmp_path / "rows.csv"))
    os.makedirs(tmp_path / "empty_dir")
    with pytest.raises(DataError, match="neither written by save_to_disk"):
        load_split("gsm8k", "test", source=str(tmp_path / "empty_dir"))


def test_offline_without_a_local_copy_says_how_to_get_one(tmp_path, run_python):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    code = (
        "from openrlhf_distill.prepare_data import load_split, DataError\n"
        "try:\n    load_split('gsm8k', 'test')\nexcept DataError as error:\n    print('ERROR', error)\n"
    )
    result = run_python(code, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    message = result.stdout
    assert message.startswith("ERROR openai/gsm8k (config main) split test: HF_HUB_OFFLINE is set"), message
    assert "datasets.load_dataset('openai/gsm8k', 'main', split='test').to_json(" in message
    assert "--source" in message and "huggingface-cli download openai/gsm8k" in message


# --- MMLU-Pro --------------------------------------------------------------------------------------------------


def test_mmlu_pro_records_carry_options_category_and_gold(tmp_path):
    rows = mmlu_pro_rows()
    records = load_split("mmlu_pro", "test", source=write_parquet(tmp_path / "data" / "test.parquet", rows))
    assert len(records) == len(rows)
    first, row = records[0], rows[0]
    assert first["id"] == f"mmlu_pro-{row['question_id']}" and first["gold"] == row["answer"]
    assert first["meta"] == {
        "options": row["options"],
        "category": row["category"],
        "src": row["src"],
        "question_id": row["question_id"],
    }
    task = get_task("mmlu_pro")
    prompt = task.format_prompt(first)[0]["content"]
    assert "A. option 0 of question 70" in prompt and "The answer is (X)" in prompt
    assert "about law" in task.format_prompt(first, style="few_shot")  # few-shot reads meta.category
    # The repository layout: data/test-00000-of-00001.parquet and data/validation-....parquet
    write_parquet(tmp_path / "repo" / "data" / "test-00000-of-00001.parquet", rows)
    write_parquet(tmp_path / "repo" / "data" / "validation-00000-of-00001.parquet", rows[:2])
    assert load_split("mmlu_pro", "test", source=str(tmp_path / "repo")) == records
    assert len(load_split("mmlu_pro", "validation", source=str(tmp_path / "repo"))) == 2


def test_mmlu_pro_bad_rows_are_located(tmp_path):
    rows = mmlu_pro_rows({"law": 3})
    rows[1]["answer_index"] = (rows[1]["answer_index"] + 1) % 4
    with pytest.raises(RecordError, match="disagrees with answer") as error:
        load_split("mmlu_pro", "test", source=write_jsonl(tmp_path / "a.jsonl", rows))
    assert (error.value.line, error.value.field) == (2, "answer_index")
    rows = mmlu_pro_rows({"law": 3})
    rows[2]["question_id"] = rows[0]["question_id"]
    with pytest.raises(RecordError, match="repeats the row") as error:
        load_split("mmlu_pro", "test", source=write_jsonl(tmp_path / "b.jsonl", rows))
    assert (error.value.line, error.value.field) == (3, "question_id")
    rows = mmlu_pro_rows({"law": 3})
    del rows[0]["category"]
    with pytest.raises(RecordError, match="missing") as error:
        load_split("mmlu_pro", "test", source=write_jsonl(tmp_path / "c.jsonl", rows))
    assert (error.value.line, error.value.field) == (1, "category")
    with pytest.raises(DataError, match="mmlu_pro has no split 'dev'"):
        load_split("mmlu_pro", "dev", source=str(tmp_path / "c.jsonl"))


def _parts(records):
    return [(r["meta"]["question_id"], r["meta"]["category"]) for r in records]


@pytest.mark.parametrize("fraction", [0.5, 0.3])
def test_mmlu_pro_split_is_stratified_disjoint_complete_and_deterministic(tmp_path, fraction):
    source = write_jsonl(tmp_path / "test.jsonl", mmlu_pro_rows())
    train = load_split("mmlu_pro", "train", source=source, seed=3, train_fraction=fraction)
    heldout = load_split("mmlu_pro", "heldout", source=source, seed=3, train_fraction=fraction)
    train_ids, heldout_ids = {q for q, _ in _parts(train)}, {q for q, _ in _parts(heldout)}
    assert not train_ids & heldout_ids
    assert train_ids | heldout_ids == {r["question_id"] for r in mmlu_pro_rows()}
    for category, count in CATEGORIES.items():
        in_train = sum(c == category for _, c in _parts(train))
        assert abs(in_train - fraction * count) <= 1, (category, in_train, count)
    # the same seed gives the same split, in the same order; another seed another split
    assert load_split("mmlu_pro", "train", source=source, seed=3, train_fraction=fraction) == train
    assert {
        q for q, _ in _parts(load_split("mmlu_pro", "train", source=source, seed=4, train_fraction=fraction))
    } != train_ids
    # --limit takes the first N of a shuffled part: more than one category, not the file order
    assert len({c for _, c in _parts(load_split("mmlu_pro", "train", source=source, seed=3, limit=6))}) > 1


@given(
    sizes=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 40), min_size=1, max_size=8),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 1000),
)
def test_stratified_split_properties(sizes, fraction, seed):
    categories, question_id = {}, 0
    for category, count in sizes.items():
        for _ in range(count):
            categories[question_id] = category
            question_id += 1
    split = stratified_split(categories, seed=seed, train_fraction=fraction)
    assert split == stratified_split(dict(reversed(list(categories.items()))), seed=seed, train_fraction=fraction)
    assert not set(split["train"]) & set(split["heldout"])
    assert sorted(split["train"] + split["heldout"]) == sorted(categories)
    for category, count in sizes.items():
        in_train = sum(categories[q] == category for q in split["train"])
        assert abs(in_train - fraction * count) <= 0.5 + 1e-9
        assert split["per_category"][category] == {"train": in_train, "heldout": count - in_train}


def test_mmlu_pro_split_is_persisted_and_read_back(tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "test.jsonl", mmlu_pro_rows())
    run_dir = tmp_path / "run"
    train = load_split("mmlu_pro", "train", source=source, seed=1, run_dir=str(run_dir))
    saved = json.loads((run_dir / SPLIT_FILE).read_text())
    assert saved["seed"] == 1 and saved["train_fraction"] == 0.5 and saved["from_split"] == "test"
    assert saved["train"] == [r["meta"]["question_id"] for r in train]
    assert saved["per_category"]["physics"] == {"train": 6, "heldout": 6}

    # Afterwards the file decides, not the code: a changed splitting rule does not move a question.
    monkeypatch.setattr(prepare_data, "stratified_split", lambda *a, **k: pytest.fail("split recomputed"))
    assert load_split("mmlu_pro", "train", source=source, seed=1, run_dir=str(run_dir)) == train
    heldout = load_split("mmlu_pro", "heldout", source=source, seed=1, run_dir=str(run_dir))
    assert [r["meta"]["question_id"] for r in heldout] == saved["heldout"]
    # A hand-edited split file is what is used
    saved["train"], saved["heldout"] = saved["heldout"], saved["train"]
    (run_dir / SPLIT_FILE).write_text(json.dumps(saved))
    assert load_split("mmlu_pro", "train", source=source, seed=1, run_dir=str(run_dir)) == heldout

    with pytest.raises(DataError, match="made with seed 1 and train fraction 0.5, but seed 2"):
        load_split("mmlu_pro", "train", source=source, seed=2, run_dir=str(run_dir))
    other = write_jsonl(tmp_path / "other.jsonl", mmlu_pro_rows({"law": 7, "math": 11}))
    with pytest.raises(DataError, match="made from another copy of the MMLU-Pro test set"):
        load_split("mmlu_pro", "heldout", source=other, seed=1, run_dir=str(run_dir))
    with pytest.raises(DataError, match="would score training questions; ask for split 'heldout'"):
        load_split("mmlu_pro", "test", source=source, run_dir=str(run_dir))
    assert len(load_split("mmlu_pro", "test", source=source)) == sum(CATEGORIES.values())
    (run_dir / SPLIT_FILE).write_text("{")
    with pytest.raises(DataError, match="not a readable MMLU-Pro split file"):
        load_split("mmlu_pro", "heldout", source=source, seed=1, run_dir=str(run_dir))


def test_prepare_data_command(tmp_path, capsys):
    parser = cli.command_parser("prepare-data")
    source = write_jsonl(tmp_path / "test.jsonl", mmlu_pro_rows())
    out = tmp_path / "data" / "prompts.jsonl"
    args = parser.parse_args(
        [
            "--task",
            "mmlu_pro",
            "--split",
            "heldout",
            "--out",
            str(out),
            "--source",
            source,
            "--run_dir",
            str(tmp_path / "run"),
            "--seed",
            "5",
            "--limit",
            "4",
        ]
    )
    assert run(args) == 0
    assert "4 mmlu_pro prompt records (heldout)" in capsys.readouterr().out
    records = [r for _, r in read_records(str(out), PROMPT)]
    assert len(records) == 4 and (tmp_path / "run" / SPLIT_FILE).exists()
    assert os.listdir(out.parent) == ["prompts.jsonl"]  # written atomically: no temporary left
