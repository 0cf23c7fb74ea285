"""The toy world: the arithmetic generator, the data files of a world, and (slow) pretraining its two models."""

import dataclasses
import json
import random

import pytest

from openrlhf_distill.records import PROMPT, read_records
from openrlhf_distill.tasks import get_task
from openrlhf_distill.toy.world import (
    FILES,
    PRESETS,
    ArithmeticSpec,
    Problem,
    check_steps,
    corrupt,
    generate_problems,
    make_problem,
    parse_question,
    shortcut_answer,
    solve,
    write_world,
)

TASK = get_task("arithmetic")


def _problems(seed: int, n: int = 300, spec: ArithmeticSpec | None = None):
    return generate_problems(n, random.Random(seed), spec or ArithmeticSpec(), set())


def test_generator_is_deterministic_per_seed_and_differs_across_seeds():
    assert _problems(0) == _problems(0)
    assert [p.question for p in _problems(0)] != [p.question for p in _problems(1)]


@pytest.mark.parametrize(
    "spec",
    [
        ArithmeticSpec(),
        ArithmeticSpec(min_ops=3, max_ops=3, max_operand=9, max_value=20),
        ArithmeticSpec(multiply_prob=0.5),
        ArithmeticSpec(min_ops=1, max_ops=1, max_operand=99, max_value=198),
    ],
)
def test_solutions_are_right_step_by_step_and_end_in_the_gold_answer(spec):
    for problem in _problems(3, 400, spec):
        numbers, ops = parse_question(problem.question)
        assert (tuple(numbers), tuple(ops)) == (problem.numbers, problem.ops)
        assert spec.min_ops <= len(ops) <= spec.max_ops
        steps = check_steps(problem.solution)
        assert len(steps) == len(ops) and all(steps), problem
        # the answer by Python's own precedence: "*" only ever comes first, so left to right is the same
        assert eval(problem.question.removeprefix("What is ").removesuffix("?")) == problem.answer
        assert TASK.extract(problem.solution).answer == str(problem.answer)
        assert TASK.extract(problem.solution).rule == "hashes"
        assert solve(numbers, ops) == (problem.solution, problem.answer)
        # intermediate values stay in range (no negative numbers anywhere)
        values = [int(v) for v in problem.solution.replace(".", " ").split() if v.isdigit()]
        assert all(0 <= v <= spec.max_value for v in values)


def test_multiplication_comes_first_only():
    problems = _problems(5, 300, ArithmeticSpec(multiply_prob=0.5))
    with_times = [p for p in problems if "*" in p.ops]
    assert 50 < len(with_times) < 250
    assert all(p.ops.index("*") == 0 and p.ops.count("*") == 1 for p in with_times)


def test_corrupted_solution_is_wrong_in_exactly_one_step_and_in_its_answer():
    rng = random.Random(0)
    for problem in _problems(7, 200):
        wrong = corrupt(problem, rng)
        assert check_steps(wrong).count(False) == 1
        assert TASK.extract_answer(wrong) != str(problem.answer)


def test_spec_rejects_impossible_settings():
    with pytest.raises(ValueError):
        ArithmeticSpec(min_ops=0)
    with pytest.raises(ValueError):
        ArithmeticSpec(max_operand=100, max_value=50)
    with pytest.raises(ValueError, match="too small"):
        generate_problems(
            1000, random.Random(0), ArithmeticSpec(min_ops=1, max_ops=1, max_operand=3, max_value=6), set()
        )


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    info = write_world(
        str(out), n_train=300, n_test=200, seed=11, n_pretrain_teacher=3000, n_pretrain_student=1000, student_noise=0.2
    )
    return out, info


def test_world_files_are_valid_records_with_gold_the_task_reads(world):
    out, info = world
    assert sorted(info["paths"]) == sorted(FILES)
    for split, n in (("train", 300), ("test", 200)):
        records = [r for _, r in read_records(str(out / FILES[split]), PROMPT)]
        assert len(records) == n and len({r["id"] for r in records}) == n
        for record in records:
            assert record["task"] == "arithmetic" and isinstance(record["gold"], str)
            assert TASK.format_prompt(record) == [{"role": "user", "content": record["prompt"]}]
            numbers, ops = parse_question(record["prompt"])
            assert TASK.parse_gold(record) == str(solve(numbers, ops)[1]) == record["gold"]
            assert record["meta"]["n_ops"] == len(ops)


def test_test_train_and_pretraining_questions_are_disjoint(world):
    out, _ = world
    questions = {name: [r["prompt"] for r in _read_jsonl(out / file)] for name, file in FILES.items()}
    for name in ("train", "test", "pretrain_teacher", "pretrain_student"):
        assert len(set(questions[name])) == len(questions[name]), f"{name} repeats a question"
    pretraining = set(questions["pretrain_teacher"]) | set(questions["pretrain_student"])
    assert not set(questions["test"]) & set(questions["train"])
    assert not set(questions["test"]) & pretraining
    assert not set(questions["train"]) & pretraining


def test_pretraining_corpora_student_is_part_of_teacher_with_the_asked_noise(world):
    out, info = world
    teacher = _read_jsonl(out / FILES["pretrain_teacher"])
    student = _read_jsonl(out / FILES["pretrain_student"])
    assert (len(teacher), len(student)) == (3000, 1000)
    assert [r["prompt"] for r in student] == [r["prompt"] for r in teacher[:1000]]
    for row in teacher:
        assert all(check_steps(row["response"])) and TASK.extract_answer(row["response"]) == row["answer"]
    noisy = [r for r in student if not all(check_steps(r["response"]))]
    assert len(noisy) == info["student_noisy"] and 150 < len(noisy) < 250  # 20% of 1000
    assert all(TASK.extract_answer(r["response"]) != r["answer"] for r in noisy)


def test_world_is_deterministic_per_seed(tmp_path):
    kwargs = dict(n_train=50, n_test=50, n_pretrain_teacher=200, n_pretrain_student=100)
    write_world(str(tmp_path / "a"), seed=4, **kwargs)
    write_world(str(tmp_path / "b"), seed=4, **kwargs)
    write_world(str(tmp_path / "c"), seed=5, **kwargs)
    for file in FILES.values():
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        assert (tmp_path / "a" / file).read_bytes() != (tmp_path / "c" / file).read_bytes()


# --- The "styles" world: a teacher that answers directly, a student that also works the steps out --------------

STYLES = PRESETS["styles"]


def test_styles_questions_are_short_chains_of_small_steps_with_floor_halving():
    problems = _problems(3, 600, STYLES.arithmetic)
    ops = [op for p in problems for op in p.ops]
    assert 0.2 < ops.count("/") / len(ops) < 0.45 and {"+", "-", "/"} == set(ops)
    for problem in problems:
        numbers, found_ops = parse_question(problem.question)
        assert (tuple(numbers), tuple(found_ops)) == (problem.numbers, problem.ops)
        assert 3 <= problem.n_ops <= 4 and all(check_steps(problem.solution))
        value = numbers[0]
        assert 1 <= value <= 19
        for op, b in zip(found_ops, numbers[1:], strict=True):
            assert b == 2 if op == "/" else 1 <= b <= 5
            value = value + b if op == "+" else value - b if op == "-" else value // 2
            assert 0 <= value <= 19
        assert value == problem.answer and TASK.extract_answer(problem.solution) == str(value)
    # halving is floor division, written as a step like any other
    assert check_steps("7 / 2 = 3. 3 + 1 = 4. #### 4") == [True, True]
    assert check_steps("7 / 2 = 4. #### 4") == [False]


def test_response_style_tells_worked_answers_from_answers_alone():
    from openrlhf_distill.tasks.arithmetic import response_style

    assert response_style("7 / 2 = 3. 3 + 1 = 4. #### 4") == "worked"
    assert response_style("7 / 2 = 3. #### 3") == "worked"
    assert response_style("#### 4") == "direct"
    assert response_style("#### 4 7 / 2 = 3.") == "direct"  # steps after the answer do not make it worked
    assert response_style("4") == "direct"
    assert TASK.response_style("12 + 3 = 15. #### 15") == "worked"


@pytest.fixture(scope="module")
def styles_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("styles")
    info = write_world(
        str(out),
        n_train=200,
        n_test=200,
        n_dev=100,
        seed=3,
        n_pretrain_teacher=4000,
        n_pretrain_student=2000,
        teacher_worked_share=STYLES.teacher_worked_share,
        student_worked_share=STYLES.student_worked_share,
        student_shortcut_share=STYLES.student_shortcut_share,
        spec=STYLES.arithmetic,
        pretrain_min_ops=STYLES.pretrain_min_ops,
    )
    return out, info


def test_styles_world_teacher_learns_answers_alone_and_the_student_a_mix(styles_world):
    from openrlhf_distill.tasks.arithmetic import response_style

    out, _ = styles_world
    teacher = _read_jsonl(out / FILES["pretrain_teacher"])
    student = _read_jsonl(out / FILES["pretrain_student"])
    # the teacher's data holds one style only: it never sees a worked solution
    assert {response_style(r["response"]) for r in teacher} == {"direct"}
    assert all(r["response"] == f"#### {r['answer']}" for r in teacher)
    worked = [r for r in student if response_style(r["response"]) == "worked"]
    assert 0.25 < len(worked) / len(student) < 0.35
    assert all(all(check_steps(r["response"])) and TASK.extract_answer(r["response"]) == r["answer"] for r in worked)
    # its answers alone are all one step short: always wrong, so its direct style is its worse one
    assert STYLES.student_shortcut_share == 1.0
    for r in student:
        if r not in worked:
            numbers, ops = parse_question(r["prompt"])
            assert r["response"] == f"#### {solve(numbers[:-1], ops[:-1])[1]}" != f"#### {r['answer']}"
    # the teacher's questions, in its order, of the length measured: the shorter chains are the teacher's alone
    lengths = {r["prompt"]: len(parse_question(r["prompt"])[1]) for r in teacher}
    assert [r["prompt"] for r in student] == [r["prompt"] for r in teacher if lengths[r["prompt"]] >= 3][:2000]
    assert min(lengths.values()) == 1 and 0.25 < sum(n < 3 for n in lengths.values()) / len(teacher) < 0.6


def test_styles_world_splits_are_disjoint_and_gold_stays_in_the_prompt_records(styles_world):
    out, _ = styles_world
    questions = {name: [r["prompt"] for r in _read_jsonl(out / file)] for name, file in FILES.items()}
    sets = {
        "train": set(questions["train"]),
        "test": set(questions["test"]),
        "dev": set(questions["dev"]),
        "pretrain": set(questions["pretrain_teacher"]) | set(questions["pretrain_student"]),
    }
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not sets[a] & sets[b], (a, b)
    for split in ("train", "test", "dev"):
        for record in _read_jsonl(out / FILES[split]):
            assert record["gold"] == str(solve(*parse_question(record["prompt"]))[1])


def test_a_shortcut_answer_is_the_value_before_the_last_step_and_always_wrong():
    numbers, ops = parse_question("What is 3 + 4 / 2 - 1?")
    solution, answer = solve(numbers, ops)
    problem = Problem("What is 3 + 4 / 2 - 1?", solution, answer, tuple(numbers), tuple(ops))
    assert answer == 2 and shortcut_answer(problem) == "#### 3"
    for p in _problems(5, 500, PRESETS["styles"].arithmetic):
        short = TASK.extract_answer(shortcut_answer(p))
        assert short != str(p.answer), p  # every operation changes the value, so one step short is wrong
        assert short == str(solve(p.numbers[:-1], p.ops[:-1])[1])


def test_a_students_shortcut_share_replaces_that_share_of_its_direct_answers(tmp_path):
    from openrlhf_distill.tasks.arithmetic import response_style

    write_world(
        str(tmp_path),
        n_train=20,
        n_test=20,
        n_dev=20,
        seed=1,
        n_pretrain_teacher=3000,
        n_pretrain_student=2000,
        teacher_worked_share=0.0,
        student_worked_share=0.3,
        student_shortcut_share=0.5,
        spec=STYLES.arithmetic,
    )
    student = _read_jsonl(tmp_path / FILES["pretrain_student"])
    direct = [r for r in student if response_style(r["response"]) == "direct"]
    short = [r for r in direct if r["response"] != f"#### {r['answer']}"]
    assert 0.45 < len(short) / len(direct) < 0.55 and 0.25 < 1 - len(direct) / len(student) < 0.35
    by_prompt = {r["prompt"]: r for r in student}
    for r in short:
        numbers, ops = parse_question(r["prompt"])
        assert r["response"] == f"#### {solve(numbers[:-1], ops[:-1])[1]}", by_prompt[r["prompt"]]
    # the teacher's answers are never cut short, and its corpus holds the student's questions
    teacher = _read_jsonl(tmp_path / FILES["pretrain_teacher"])
    assert all(r["response"] == f"#### {r['answer']}" for r in teacher)


def test_worked_shares_outside_zero_to_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="student_worked_share"):
        write_world(
            str(tmp_path),
            n_train=5,
            n_test=5,
            seed=0,
            n_pretrain_teacher=20,
            n_pretrain_student=10,
            student_worked_share=1.5,
        )
    with pytest.raises(ValueError, match="student_shortcut_share"):
        write_world(
            str(tmp_path),
            n_train=5,
            n_test=5,
            seed=0,
            n_pretrain_teacher=20,
            n_pretrain_student=10,
            student_shortcut_share=-0.1,
        )
    with pytest.raises(ValueError, match="halve_prob"):
        ArithmeticSpec(halve_prob=1.0)


def test_make_problem_question_format():
    problem = make_problem(random.Random(2))
    assert problem.question.startswith("What is ") and problem.question.endswith("?")
    assert problem.solution.endswith(f"#### {problem.answer}")


# --- Pretraining and measuring (small, fast) ------------------------------------------------------------------

TINY_SPEC_KW = dict(
    hidden_size=64, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1
)


def _corpus(n: int, seed: int = 0):
    return [{"prompt": p.question, "response": p.solution} for p in _problems(seed, n)]


def test_model_spec_keeps_head_sizes_vllm_cpu_accepts():
    from openrlhf_distill.toy.pretrain import ToyModelSpec

    assert ToyModelSpec(**TINY_SPEC_KW).head_dim == 32
    with pytest.raises(ValueError, match="head_dim 16"):
        ToyModelSpec(hidden_size=64, num_attention_heads=4, num_key_value_heads=2)


def test_pretrain_saves_a_folder_that_loads_with_the_tokenizer_it_was_trained_with(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from openrlhf_distill.toy.pretrain import ToyModelSpec, chat_prompts, encode_pairs, pretrain

    out = str(tmp_path / "m")
    metrics = pretrain(out, _corpus(64), ToyModelSpec(**TINY_SPEC_KW), steps=8, lr=3e-3, batch_size=8, seed=0)
    assert metrics["steps_run"] == 8 and metrics["kept"] is None and metrics["reached_target"] is None
    assert metrics["loss_curve"][-1]["step"] == 8 and metrics["loss_curve"][-1]["loss"] > 0
    tok = AutoTokenizer.from_pretrained(out)
    config = AutoConfig.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert config.hidden_size // config.num_attention_heads == 32 and config.vocab_size == len(tok)
    assert sum(p.numel() for p in model.parameters()) == metrics["parameters"]
    # digits one per token, as every loader of the folder sees them
    pieces = [tok.decode([i]) for i in tok("38 - 7 = 31", add_special_tokens=False).input_ids]
    assert pieces == ["3", "8", " -", " ", "7", " =", " ", "3", "1"]
    # the sequence is the chat prompt as a server renders it, then the response and the end token
    ((ids, prompt_len),) = encode_pairs(tok, [("What is 1 + 2?", "1 + 2 = 3. #### 3")])
    prompt = chat_prompts(tok, ["What is 1 + 2?"])[0]
    assert prompt.endswith("<|im_start|>assistant\n")
    assert ids[:prompt_len] == tok(prompt, add_special_tokens=False).input_ids
    assert tok.decode(ids[prompt_len:]) == "1 + 2 = 3. #### 3<|im_end|>" and ids[-1] == tok.eos_token_id


def test_pretrain_is_deterministic_per_seed(tmp_path):
    from safetensors.torch import load_file

    from openrlhf_distill.toy.pretrain import ToyModelSpec, pretrain

    spec = ToyModelSpec(**TINY_SPEC_KW)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        pretrain(str(tmp_path / name), _corpus(32), spec, steps=3, lr=1e-3, batch_size=4, seed=seed, threads=1)
    a, b, c = (load_file(str(tmp_path / n / "model.safetensors")) for n in "abc")
    assert all((a[k] == b[k]).all() for k in a) and any((a[k] != c[k]).any() for k in a)


@pytest.mark.parametrize(
    ("accuracies", "stop", "kept"),
    [
        ([0.1, 0.4, 0.7], 3, 3),  # 0.7 is closer to 0.65 than 0.4: the last checkpoint is kept
        ([0.1, 0.6, 0.9], 3, 2),  # 0.6 is closer than 0.9: the one before is kept, its weights saved
        ([0.1, 0.2, 0.3, 0.3, 0.3, 0.3], 6, 6),
    ],  # never reached: trained to the end
)
def test_pretraining_stops_on_the_dev_target_and_keeps_the_closer_checkpoint(
    tmp_path, monkeypatch, accuracies, stop, kept
):
    from safetensors.torch import load_file

    from openrlhf_distill.toy import pretrain as pt

    snapshots, script = [], iter(accuracies + [accuracies[-1]])

    def fake_accuracy(model, tokenizer, records, **_):
        assert tokenizer.padding_side == "left" and records == dev
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return next(script)

    dev = [{"id": 1, "prompt": "What is 1 + 1?", "gold": "2"}]
    monkeypatch.setattr(pt, "greedy_accuracy", fake_accuracy)
    out = str(tmp_path / "m")
    metrics = pt.pretrain(
        out,
        _corpus(16),
        pt.ToyModelSpec(**TINY_SPEC_KW),
        steps=6,
        lr=1e-3,
        batch_size=2,
        seed=0,
        target_accuracy=0.65,
        dev=dev,
        eval_every=1,
        eval_below_loss=1e9,
    )
    assert metrics["steps_run"] == stop and metrics["kept"]["step"] == kept
    assert metrics["reached_target"] is (max(accuracies) >= 0.65)
    assert [d["step"] for d in metrics["dev_curve"]] == list(range(1, stop + 1))
    saved = load_file(out + "/model.safetensors")
    assert saved and all((saved[k] == snapshots[kept - 1][k]).all() for k in saved)


def test_target_needs_dev_records(tmp_path):
    from openrlhf_distill.toy.pretrain import ToyModelSpec, pretrain

    with pytest.raises(ValueError, match="dev"):
        pretrain(
            str(tmp_path),
            _corpus(4),
            ToyModelSpec(**TINY_SPEC_KW),
            steps=1,
            lr=1e-3,
            batch_size=1,
            seed=0,
            target_accuracy=0.5,
        )


def test_measure_reads_answers_with_the_task_and_votes(tmp_path, monkeypatch):
    """measure() on scripted generations: greedy, per-temperature single / maj@n / vote, and the mixed vote."""
    from openrlhf_distill.toy import pretrain as pt

    records = [{"id": i, "prompt": f"What is {i} + 1?", "gold": str(i + 1), "meta": {"n_ops": 1}} for i in range(4)]
    monkeypatch.setattr(pt, "load_model", lambda model_dir, dtype: (None, None))

    def fake_generate(model, tokenizer, questions, *, temperature=0.0, n=1, **_):
        if temperature == 0:  # right on questions 0 and 1
            return [[f"#### {i + 1}" if i < 2 else "#### 0"] for i in range(len(questions))]
        # per question: 6 of 10 right at T=0.5; at T=1.0 right on question 0 only (3 of 10, of 5 readable: half the
        # samples must be readable for a label), ties elsewhere
        if temperature == 0.5:
            return [[f"#### {i + 1}"] * 6 + ["#### 0"] * 2 + ["no answer"] * 2 for i in range(len(questions))]
        return [
            [f"#### {i + 1}"] * 3 + ["#### 0"] * 2 + ["x"] * 5 if i == 0 else ["#### 7", "#### 8"] + ["x"] * 8
            for i in range(len(questions))
        ]

    monkeypatch.setattr(pt, "generate", fake_generate)
    result = pt.measure("unused", records, temperatures=(0.5, 1.0), n=10)
    assert result["greedy"] == 0.5 and result["greedy_by_n_ops"] == {"1": 0.5}
    assert result["T0.5"] == {"single": 0.6, "maj@10": 1.0, "vote_coverage": 1.0, "vote_label_accuracy": 1.0}
    # question 0 only; the 7-vs-8 ties count as wrong and get no label
    assert result["T1"] == {"single": 0.075, "maj@10": 0.25, "vote_coverage": 0.25, "vote_label_accuracy": 1.0}
    # 5 samples of each temperature: the first 5 at T=0.5 are all right, so every question's vote is
    assert result["mixed"] == {
        "temperatures": [0.5, 1.0],
        "samples": [5, 5],
        "single": 0.575,
        "maj@10": 1.0,
        "vote_coverage": 1.0,
        "vote_label_accuracy": 1.0,
    }


# --- Building a world, and the command ------------------------------------------------------------------------


def test_settings_round_trip_and_fingerprint():
    from openrlhf_distill.toy.world import WorldSettings

    settings = WorldSettings(seed=3, arithmetic=ArithmeticSpec(max_ops=2), teacher_target=None)
    assert WorldSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    assert settings.fingerprint() == WorldSettings.from_dict(settings.to_dict()).fingerprint()
    assert settings.fingerprint() != WorldSettings(seed=4).fingerprint()


def test_command_line_settings(capsys, monkeypatch):
    import argparse

    from openrlhf_distill.toy import world as w

    parser = argparse.ArgumentParser()
    w.add_arguments(parser)
    args = parser.parse_args(
        [
            "OUT",
            "--preset",
            "chains",
            "--seed",
            "2",
            "--n_train",
            "64",
            "--teacher_shape",
            "hidden=256,heads=4",
            "--student-target",
            "0",
            "--max-ops",
            "2",
            "--measure_sampling",
        ]
    )
    settings = w.settings_from_args(args)
    assert settings.seed == 2 and settings.n_train == 64 and settings.arithmetic.max_ops == 2
    assert settings.teacher_spec.hidden_size == 256 and settings.teacher_spec.head_dim == 64
    assert settings.teacher_spec.num_hidden_layers == w.TEACHER_SPEC.num_hidden_layers
    assert settings.student_target is None and settings.teacher_target == w.WorldSettings().teacher_target
    assert settings.measure_sampling
    # no flags: the preset as it is (styles by default); a flag replaces one value and keeps the others
    assert w.settings_from_args(parser.parse_args(["OUT", "--preset", "chains"])) == w.WorldSettings()
    assert w.settings_from_args(parser.parse_args(["OUT"])) == w.PRESETS["styles"] == w.PRESETS[w.DEFAULT_PRESET]
    styles = w.settings_from_args(parser.parse_args(["OUT", "--halve-prob", "0.5", "--student-worked-share", "0.2"]))
    assert styles.arithmetic.halve_prob == 0.5 and styles.student_worked_share == 0.2
    assert styles.arithmetic.max_value == w.PRESETS["styles"].arithmetic.max_value
    assert styles.teacher_worked_share == w.PRESETS["styles"].teacher_worked_share == 0.0
    for bad in ("hidden=48", "depth=3", "layers="):
        with pytest.raises(ValueError):
            w.parse_shape(bad, w.TEACHER_SPEC)

    calls = []
    fake = {
        role: {
            "pretrain": {"parameters": 10, "steps_run": 5, "wall_s": 1.0},
            "test": {"greedy": 0.5, "n_questions": 2},
        }
        for role in ("teacher", "student")
    }
    fake["wall_s"] = {"total": 3.0, "data": 1.0}
    fake["models_from"] = "pretrained"

    def build(out, settings, force, pretrain_models):
        calls.append((out, force, pretrain_models))
        return fake

    monkeypatch.setattr(w, "build_toy_world", build)
    assert w.run(args) == 0
    assert calls == [("OUT", False, False)]
    assert "teacher" in capsys.readouterr().out
    # shipping models needs models pretrained by this build: refused before anything is built
    with pytest.raises(ValueError, match="add --pretrain"):
        w.run(parser.parse_args(["OUT", "--export_prebuilt"]))
    assert len(calls) == 1


@pytest.mark.slow
def test_small_world_teacher_beats_student_and_checkpoints_answer(tmp_path, monkeypatch):
    """A reduced world end to end (about 50 s on the 2-core development machine): data, both models pretrained
    in parallel subprocesses, the teacher stopped on its dev target, world.json; a rebuild is skipped; the
    teacher folder loads with transformers and answers a test question in the "#### N" format."""
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from openrlhf_distill.toy.pretrain import ToyModelSpec, chat_prompts, measure
    from openrlhf_distill.toy.world import WorldSettings, build_toy_world, read_prompts

    settings = WorldSettings(
        seed=0,
        n_train=50,
        n_test=100,
        n_dev=100,
        n_pretrain_teacher=5000,
        n_pretrain_student=1000,
        arithmetic=ArithmeticSpec(max_ops=2, max_operand=20, max_value=40),
        teacher_steps=600,
        teacher_target=0.15,
        student_steps=60,
        student_target=None,
        student_spec=ToyModelSpec(**TINY_SPEC_KW),
        measure_questions=100,
    )
    out = str(tmp_path / "world")
    world = build_toy_world(out, settings)
    teacher, student = world["teacher"], world["student"]
    assert teacher["pretrain"]["reached_target"] and teacher["pretrain"]["kept"]["dev_accuracy"] >= 0.15
    assert teacher["pretrain"]["steps_run"] < 600
    assert teacher["pretrain"]["parameters"] > 2 * student["pretrain"]["parameters"]
    assert teacher["test"]["greedy"] > student["test"]["greedy"]
    # The recorded test accuracy is the saved teacher's (the kept checkpoint, not the last step's), measured again.
    remeasured = measure(f"{out}/teacher", read_prompts(f"{out}/prompts_test.jsonl")[: settings.measure_questions])
    assert remeasured["greedy"] == teacher["test"]["greedy"]
    assert world["counts"]["test"] == 100 and world["settings"] == settings.to_dict()
    with open(f"{out}/world.json") as f:
        assert json.load(f)["fingerprint"] == settings.fingerprint()

    started = time.monotonic()
    again = build_toy_world(out, settings)
    assert again["skipped"] and time.monotonic() - started < 5

    assert world["models_from"] == "pretrained"
    _check_shipped_models_are_copied_not_pretrained(tmp_path, out, settings, monkeypatch)

    question = read_prompts(f"{out}/prompts_test.jsonl")[0]
    tok = AutoTokenizer.from_pretrained(f"{out}/teacher")
    model = AutoModelForCausalLM.from_pretrained(f"{out}/teacher")
    ids = tok(chat_prompts(tok, [question["prompt"]]), return_tensors="pt", add_special_tokens=False).input_ids
    response = tok.decode(
        model.generate(ids, max_new_tokens=64, do_sample=False)[0, ids.shape[1] :], skip_special_tokens=True
    )
    assert TASK.extract(response).rule == "hashes", response


def _check_shipped_models_are_copied_not_pretrained(tmp_path, pretrained: str, settings, monkeypatch) -> None:
    """Ships the models of the world built in ``pretrained`` (into a folder of the test, not the package) and
    builds the same settings elsewhere: the data is written again, byte for byte the same, and the models are
    the shipped files, copied, with the records of the build that pretrained them; `--pretrain` rebuilds."""
    import filecmp
    import os

    from openrlhf_distill.toy import world as w

    shipped_root = str(tmp_path / "shipped")
    monkeypatch.setattr(w, "PREBUILT_DIR", shipped_root)
    assert w.prebuilt_models(settings) is None
    folder = w.export_prebuilt(pretrained)
    assert folder == os.path.join(shipped_root, settings.fingerprint()) == w.prebuilt_models(settings)

    copy = str(tmp_path / "copy")
    world = w.build_toy_world(copy, settings)
    assert world["models_from"].endswith(settings.fingerprint()) and not world.get("skipped")
    assert not os.path.exists(os.path.join(copy, "teacher_pretrain.log"))  # nothing was pretrained
    for role in w.ROLES:
        comparison = filecmp.dircmp(os.path.join(pretrained, role), os.path.join(copy, role))
        assert not comparison.diff_files and not comparison.left_only and not comparison.right_only, role
        assert world[role]["pretrain"] == w._read_world_json(pretrained)[role]["pretrain"]
    for name in w.FILES.values():
        assert filecmp.cmp(os.path.join(pretrained, name), os.path.join(copy, name), shallow=False), name
    assert w.build_toy_world(copy, settings)["skipped"]
    with pytest.raises(ValueError, match="not pretrained"):
        w.export_prebuilt(copy)

    class Pretrains(Exception):
        pass

    def pretrain_instead(*args, **kwargs):
        raise Pretrains

    monkeypatch.setattr(w, "_train_in_subprocesses", pretrain_instead)
    monkeypatch.setattr(w, "_train_and_measure", pretrain_instead)
    with pytest.raises(Pretrains):  # copied models are not what --pretrain asks for: it rebuilds
        w.build_toy_world(copy, settings, pretrain_models=True)

    # a shipped folder whose records are for other settings is refused, not copied
    other = dataclasses.replace(settings, seed=settings.seed + 1)
    os.rename(folder, os.path.join(shipped_root, other.fingerprint()))
    with pytest.raises(ValueError, match="is for settings"):
        w.build_toy_world(str(tmp_path / "other"), other)


def test_pretraining_progress_is_relayed_by_role_once_per_line_and_only_complete_lines(tmp_path, capsys):
    from openrlhf_distill.toy import world as w

    logs = {"teacher": str(tmp_path / "t.log"), "student": str(tmp_path / "s.log")}
    offsets = dict.fromkeys(logs, 0)
    with open(logs["teacher"], "w") as f:
        f.write("a warning\n  step 100/3000 loss 1.2000 (50 s, at most 25 min left)\n  step 200/30")
    with open(logs["student"], "w") as f:
        f.write("")
    w._relay_progress(logs, offsets)
    assert capsys.readouterr().out == "teacher: step 100/3000 loss 1.2000 (50 s, at most 25 min left)\n"
    with open(logs["teacher"], "a") as f:
        f.write("00 loss 1.1000 (100 s, at most 24 min left)\n")
    with open(logs["student"], "a") as f:
        f.write("  step 100: dev greedy accuracy 0.250\n")
    w._relay_progress(logs, offsets)
    assert capsys.readouterr().out.splitlines() == [
        "teacher: step 200/3000 loss 1.1000 (100 s, at most 24 min left)",
        "student: step 100: dev greedy accuracy 0.250",
    ]
