"""Choosing models without gold (`selection`, `select`, `ppo --distill.select.dev`), the teacher budget (`split`,
`build --rl.unlabelled`, `build --dev.questions`) and the guarantee that a vote reward never sees a prompt the
teacher did not label. The PPO run that saves its actors and keeps the best is in tests/test_ppo_cpu.py."""

import glob
import json
import os
import random

import pytest

from openrlhf_distill import ppo, selection
from openrlhf_distill.build import BuildConfig, build_datasets
from openrlhf_distill.pipeline.config import ConfigError, load_config
from openrlhf_distill.pipeline.stages import plan
from openrlhf_distill.records import RecordError, decode_reward_label
from openrlhf_distill.split import split_questions
from openrlhf_distill.toy.world import STYLES_ARITHMETIC, make_problem

PREBUILT = os.path.dirname(
    glob.glob(os.path.join(os.path.dirname(selection.__file__), "toy", "prebuilt", "*", "models.json"))[0]
)
QUICKSTART = os.path.join(os.path.dirname(__file__), "..", "recipes", "configs", "quickstart_cpu.yaml")


def _write(path, rows):
    with open(path, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return str(path)


def _read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _toy_questions(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    problems = [make_problem(rng, STYLES_ARITHMETIC) for _ in range(n)]
    return [
        {"id": f"q{i}", "prompt": p.question, "task": "arithmetic", "gold": str(p.answer)}
        for i, p in enumerate(problems)
    ]


# --- the choice reads agreement with pseudo-labels, never gold ------------------------------------------------


def test_the_model_chosen_is_the_one_agreeing_with_the_pseudo_labels_even_when_gold_favours_another(tmp_path):
    """The toy world's shipped models: the teacher is right about 7 times in 10, the base student almost never.
    The dev pseudo-labels are made the student's own greedy answers, so the student agrees with them fully; the
    teacher's gold accuracy (measured, reported) is far higher, and the choice must still be the student."""
    from openrlhf_distill.evaluation import EvalSettings, evaluate

    teacher, student = os.path.join(PREBUILT, "teacher"), os.path.join(PREBUILT, "student")
    questions = _toy_questions(30)
    gold_file = _write(tmp_path / "gold.jsonl", questions)
    evaluate(
        student,
        gold_file,
        "arithmetic",
        str(tmp_path / "probe.json"),
        EvalSettings(max_new_tokens=64),
        backend="hf",
        progress=False,
    )
    answers = {
        row["id"]: row["answer"]
        for path in glob.glob(str(tmp_path / "probe_samples" / "greedy" / "*.jsonl"))
        for row in _read(path)
    }
    dev = [
        {"id": q["id"], "prompt": q["prompt"], "task": "arithmetic", "pseudo_label": answers[q["id"]]}
        for q in questions
        if answers.get(q["id"])
    ]
    assert len(dev) >= 20
    settings = selection.SelectSettings(
        dev=_write(tmp_path / "dev.jsonl", dev),
        task="arithmetic",
        measure=gold_file,
        max_new_tokens=64,
        backend="hf",
        work_dir=str(tmp_path / "work"),
    )
    chosen = selection.select_model([teacher, student], str(tmp_path / "chosen"), settings)

    by_name = {c["name"]: c for c in chosen["candidates"]}
    assert by_name["student"]["dev_agreement"] == 1.0 > by_name["teacher"]["dev_agreement"]
    assert by_name["teacher"]["gold_accuracy"] > by_name["student"]["gold_accuracy"] + 0.3
    assert chosen["chosen"] == "student"
    with (
        open(tmp_path / "chosen" / "model.safetensors", "rb") as a,
        open(os.path.join(student, "model.safetensors"), "rb") as b,
    ):
        assert a.read() == b.read()
    assert _read_json(tmp_path / "chosen" / "selection.json")["chosen"] == "student"


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def test_select_refuses_a_folder_that_is_no_model_and_an_output_holding_the_users_files(tmp_path):
    dev = _write(tmp_path / "dev.jsonl", [{"id": 1, "prompt": "What is 1 + 1?", "pseudo_label": "2"}])
    settings = selection.SelectSettings(dev=dev, task="arithmetic", work_dir=str(tmp_path / "w"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="not a model folder"):
        selection.select_model([str(tmp_path / "empty")], str(tmp_path / "out"), settings)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(RecordError, match="holds files"):
        selection.select_model([os.path.join(PREBUILT, "student")], str(tmp_path / "mine"), settings)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_dev_questions_without_a_pseudo_label_are_refused_with_file_line_and_field(tmp_path):
    dev = _write(tmp_path / "dev.jsonl", [{"id": 1, "prompt": "x", "pseudo_label": "2"}, {"id": 2, "prompt": "y"}])
    with pytest.raises(RecordError, match=r"dev.jsonl:2 field 'pseudo_label': missing"):
        selection.read_dev_questions(dev)


def _model_folder(path, weights: bytes):
    os.makedirs(path, exist_ok=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    (path / "tokenizer_config.json").write_text("{}")  # OpenRLHF writes it last: the save is whole
    return str(path)


def test_a_chosen_checkpoint_becomes_the_runs_model_and_the_last_actor_is_kept_beside_it(tmp_path, monkeypatch):
    """The PPO side of the choice with the scoring replaced by a table (the real scoring is the test above and
    the PPO run in tests/test_ppo_cpu.py): step 4 agrees most, so its files become the output folder's."""
    out = tmp_path / "rl"
    _model_folder(out, b"final")
    (out / "distill_ppo").mkdir()
    ckpt = tmp_path / "rl" / "ckpt"
    for step in (2, 4, 6, 8):  # OpenRLHF saves the last step too: the final actor, in output_dir as well
        _model_folder(ckpt / f"global_step{step}_hf", f"step{step}".encode())
    initial = _model_folder(tmp_path / "sft", b"sft")
    cut = ckpt / "global_step5_hf"  # a save a kill cut short: weights, no tokenizer yet
    cut.mkdir()
    (cut / "model.safetensors").write_bytes(b"half")
    agreement = {"step0": 0.2, "step2": 0.5, "step4": 0.8, "step6": 0.6, "step8": 0.7}
    monkeypatch.setattr(
        selection,
        "score",
        lambda candidates, settings: [{**c, "dev_agreement": agreement[c["name"]]} for c in candidates],
    )
    settings = selection.SelectSettings(dev="unused", task="arithmetic", work_dir=str(out / "distill_ppo"))
    chosen = selection.select_ppo_checkpoint(
        settings, initial_model=initial, ckpt_path=str(ckpt), output_dir=str(out), steps=8, keep_hf=False
    )
    assert [c["step"] for c in chosen["candidates"]] == [0, 2, 4, 6, 8]
    assert chosen["chosen_step"] == 4
    assert (out / "model.safetensors").read_bytes() == b"step4"
    assert (out / "distill_ppo" / "last_model" / "model.safetensors").read_bytes() == b"final"
    assert not glob.glob(str(ckpt / "*_hf"))  # asked for by the selection only: removed once chosen
    assert (tmp_path / "sft" / "model.safetensors").read_bytes() == b"sft"  # the starting model is never touched


def test_the_last_actor_chosen_leaves_the_output_folder_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "rl"
    _model_folder(out, b"final")
    _model_folder(tmp_path / "ckpt" / "global_step3_hf", b"step3")
    monkeypatch.setattr(
        selection, "score", lambda candidates, settings: [{**c, "dev_agreement": c["step"] / 10} for c in candidates]
    )
    settings = selection.SelectSettings(dev="unused", task="arithmetic", work_dir=str(tmp_path / "work"))
    os.makedirs(settings.work_dir)
    chosen = selection.select_ppo_checkpoint(
        settings,
        initial_model=str(tmp_path / "sft"),
        ckpt_path=str(tmp_path / "ckpt"),
        output_dir=str(out),
        steps=6,
        keep_hf=True,
    )
    assert chosen["chosen_step"] == 6 and (out / "model.safetensors").read_bytes() == b"final"
    assert not (tmp_path / "work" / "last_model").exists()
    assert (tmp_path / "ckpt" / "global_step3_hf").is_dir()  # the user asked for --ckpt.save_hf: kept


# --- the teacher budget: labelled, dev and unlabelled questions ----------------------------------------------


def _labels_dir(tmp_path, questions, accepted: dict):
    """A labels folder as `label` writes it: votes (accepted with the given pseudo-labels) and no samples."""
    folder = tmp_path / "labels"
    folder.mkdir()
    votes = [
        {
            "id": q["id"],
            "pseudo_label": accepted.get(q["id"]),
            "counts": {},
            "valid": 3,
            "total": 3,
            "accepted": q["id"] in accepted,
        }
        for q in questions
    ]
    _write(folder / "votes.jsonl", votes)
    for source in ("teacher", "student"):
        _write(folder / f"{source}_labelled.jsonl", [])
    return str(folder)


def test_split_build_and_ppo_keep_unlabelled_prompts_away_from_the_vote(tmp_path, tiny_model):
    questions = _toy_questions(30)
    train = _write(tmp_path / "train.jsonl", questions)
    assert split_questions(train, 20, str(tmp_path / "questions")) == {"labelled": 20, "unlabelled": 10}
    labelled = str(tmp_path / "questions" / "labelled.jsonl")
    unlabelled = str(tmp_path / "questions" / "unlabelled.jsonl")
    assert [q["id"] for q in _read(labelled)] == [f"q{i}" for i in range(20)]

    accepted = {q["id"]: q["gold"] for q in questions[:18]}  # two labelled questions got no accepted vote
    labels = _labels_dir(tmp_path, questions[:20], accepted)
    build_datasets(labelled, labels, str(tmp_path / "data"), BuildConfig(dev_questions=5, unlabelled=unlabelled))

    dev = _read(tmp_path / "data" / "dev.jsonl")
    rl = _read(tmp_path / "data" / "rl_prompts.jsonl")
    rl_all = _read(tmp_path / "data" / "rl_prompts_all.jsonl")
    dev_ids, unlabelled_ids = {d["id"] for d in dev}, {q["id"] for q in questions[20:]}
    assert len(dev) == 5 and all(d["pseudo_label"] == accepted[d["id"]] and "gold" not in d for d in dev)
    assert {r["id"] for r in rl} == set(accepted) - dev_ids  # labelled, not held out
    assert {r["id"] for r in rl_all} == ({r["id"] for r in rl} | unlabelled_ids)
    for row in rl_all:
        label = decode_reward_label(row["distill_label"])
        assert (label.label is None) == (row["id"] in unlabelled_ids)
        assert label.gold is not None  # gold rides along (the gold scheme, metrics), labelled or not

    # The same dev questions from another build of the same votes (the SFT data's and each seed's RM data's).
    build_datasets(labelled, labels, str(tmp_path / "data2"), BuildConfig(dev_questions=5, seed=3))
    assert {d["id"] for d in _read(tmp_path / "data2" / "dev.jsonl")} == dev_ids

    # A vote or hybrid PPO run given a prompt without a pseudo-label is refused before anything starts.
    from openrlhf_distill.toy.tiny_model import build_tiny_reward_model

    rm = str(tmp_path / "rm")
    build_tiny_reward_model(rm, tiny_model)
    for scheme, extra in (
        ("vote", []),
        ("hybrid", ["--reward.model_name_or_path", rm]),
    ):
        argv = [
            "--actor.model_name_or_path",
            os.path.join(PREBUILT, "student"),
            "--data.prompt_dataset",
            str(tmp_path / "data" / "rl_prompts_all.jsonl"),
            "--data.input_key",
            "input",
            "--ckpt.output_dir",
            str(tmp_path / f"rl_{scheme}"),
            *extra,
        ]
        p = ppo.plan(argv, ppo.PPOOptions(scheme=scheme, engine="cpu", task="arithmetic"))
        namespace = ppo.validate(p)
        first_unlabelled = 1 + next(i for i, r in enumerate(rl_all) if r["id"] in unlabelled_ids)
        with pytest.raises(
            RecordError, match=rf"rl_prompts_all.jsonl:{first_unlabelled} field 'distill_label': no pseudo-label"
        ):
            ppo.check_inputs(p, namespace)
    # ... and the rm scheme takes them all.
    argv[argv.index(str(tmp_path / "rl_hybrid"))] = str(tmp_path / "rl_rm")
    p = ppo.plan(argv, ppo.PPOOptions(scheme="rm", engine="cpu", task="arithmetic"))
    ppo.check_inputs(p, ppo.validate(p))


def test_split_refuses_a_budget_that_leaves_no_question_unlabelled(tmp_path):
    train = _write(tmp_path / "train.jsonl", _toy_questions(5))
    with pytest.raises(RecordError, match="none is left unlabelled"):
        split_questions(train, 5, str(tmp_path / "q"))
    assert not (tmp_path / "q").exists()


def test_the_pipeline_gives_the_vote_the_labelled_prompts_and_the_rm_every_prompt(tmp_path):
    config = load_config(
        QUICKSTART,
        [
            "--run_dir",
            str(tmp_path / "run"),
            "--data.labelled_questions",
            "200",
            "--build.dev_questions",
            "40",
            "--ppo.schemes",
            "rm,vote,hybrid,gold",
            "--ppo.select_every",
            "6",
            "--ppo.steps",
            "24",
            "--sft.sweep.adam.lr",
            "3e-5,1e-4",
            "--sft.sweep.train.max_epochs",
            "1",
        ],
    )
    stages = {s.key: s for s in plan(config)}
    flag = lambda stage, name: stage.argv[stage.argv.index(name) + 1]  # noqa: E731
    assert flag(stages["split"], "--labelled") == "200"
    assert flag(stages["teacher_samples"], "--prompts").endswith("questions/labelled.jsonl")
    for name in ("rl_vote_labelled@seed0", "rl_hybrid_labelled@seed2"):
        assert flag(stages[name], "--data.prompt_dataset").endswith("/data/rl_prompts.jsonl")
    for name in ("rl_rm@seed0", "rl_gold@seed1"):
        assert flag(stages[name], "--data.prompt_dataset").endswith("/data/rl_prompts_all.jsonl")
    assert not any(key.startswith(("rl_vote@", "rl_hybrid@")) for key in stages)
    rl = stages["rl_rm@seed0"]
    assert flag(rl, "--distill.steps") == "24" and flag(rl, "--distill.select.dev").endswith("sft_data/dev.jsonl")
    assert flag(stages["rm_data@seed0"], "--rl.unlabelled").endswith("questions/unlabelled.jsonl")
    # the sweep: one SFT run per learning rate, the choice copied to student_sft, which every later stage reads
    sweep = [s for s in stages.values() if s.name == "sft" and s.seed == 0]
    assert [flag(s, "--adam.lr") for s in sweep] == ["3e-5", "1e-4"]
    assert all(s.output.startswith(str(tmp_path / "run" / "seed0" / "sft_sweep")) for s in sweep)
    select = stages["sft_select@seed0"]
    assert select.output.endswith("seed0/student_sft") and flag(select, "--dev").endswith("sft_data/dev.jsonl")
    assert flag(stages["student_samples@seed0"], "--model") == select.output


@pytest.mark.parametrize(
    "override, message",
    [
        (["--build.dev_questions", "0", "--ppo.select_every", "0"], "sft.sweep .* dev agreement"),
        (["--build.dev_questions", "0", "--sft.sweep", "{}"], "ppo.select_every .* dev agreement"),
        (["--data.labelled_questions", "0"], "data.labelled_questions"),
        (["--build.dev_questions", "-1"], "build.dev_questions"),
    ],
)
def test_model_choice_settings_are_checked_when_the_run_starts(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(QUICKSTART, ["--run_dir", str(tmp_path), *override])


# --- equal PPO steps on prompt sets of different sizes ----------------------------------------------------------


def test_fixed_steps_cycle_every_prompt_before_repeating_one(tmp_path):
    source = _write(tmp_path / "p.jsonl", [{"input": str(i)} for i in range(5)])
    rows = ppo.fixed_steps_prompts(source, 12, seed=1)
    assert len(rows) == 12
    assert sorted(r["input"] for r in rows[:5]) == sorted(r["input"] for r in rows[5:10]) == [str(i) for i in range(5)]
    assert ppo.fixed_steps_prompts(source, 12, seed=1) == rows


def test_distill_steps_sets_the_prompt_count_of_exactly_n_steps_in_one_episode(tmp_path):
    prompts = _write(tmp_path / "p.jsonl", [{"input": "x", "distill_label": "1"}] * 3)
    argv = [
        "--actor.model_name_or_path",
        "/m",
        "--data.prompt_dataset",
        prompts,
        "--rollout.batch_size",
        "8",
        "--train.num_episodes",
        "3",
        "--ckpt.output_dir",
        str(tmp_path / "out"),
    ]
    p = ppo.plan(argv, ppo.PPOOptions(scheme="gold", engine="cpu", task="arithmetic", steps=5))
    from openrlhf_distill.compat.flags import flag_value

    assert flag_value(p.openrlhf_argv, "--data.max_samples") == "40"
    assert flag_value(p.openrlhf_argv, "--train.num_episodes") == "1"
    assert flag_value(p.openrlhf_argv, "--data.prompt_dataset").startswith(str(tmp_path / "out" / "distill_ppo"))
    assert p.steps_source == prompts
    with pytest.raises(ValueError, match="--distill.steps needs --rollout.batch_size"):
        ppo.plan(argv[:4] + ["--ckpt.output_dir", "x"], ppo.PPOOptions(scheme="gold", engine="cpu", steps=5))
