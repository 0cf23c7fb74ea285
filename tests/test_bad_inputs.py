"""The catalogue of bad inputs, each given to the real console script: exit code 2, one line on stderr that
names the file (and line and field) or the setting, no traceback, and nothing left behind or destroyed.

Each case is (command line, what the message must contain); ``{...}`` names are filled from the fixtures below.
Add a case here whenever a bad input is found that the commands handled badly."""

import json
import os
import subprocess
import sys

import pytest

BIN = os.path.join(os.path.dirname(sys.executable), "openrlhf-distill")

PAIR = {"prompt": "p", "chosen": "right", "rejected": "wrong"}
POINT = {"prompt": "p", "response": "right", "label": 1}

CASES = {  # name: (command line, split on spaces, then each word filled in; what the error line must contain)
    # eval-rm: every input is checked before the model loads
    "eval-rm, no model folder": ("eval-rm --model {tmp}/nowhere --pairs {pairs}", ["nowhere", "not a model folder"]),
    "eval-rm, a causal LM, not an RM": ("eval-rm --model {lm} --pairs {pairs}", ["not a reward model", "`score`"]),
    "eval-rm, empty pairs": ("eval-rm --model {rm} --pairs {empty}", ["empty.jsonl", "no RM pair records"]),
    "eval-rm, a pair without rejected": (
        "eval-rm --model {rm} --pairs {no_rejected}",
        ["no_rejected.jsonl:2 field 'rejected'", "missing"],
    ),
    "eval-rm, a pair whose chosen is a number": (
        "eval-rm --model {rm} --pairs {chosen_42}",
        ["chosen_42.jsonl:1 field 'chosen'"],
    ),
    "eval-rm, a point labelled 1.5": (
        "eval-rm --model {rm} --points {label_1_5}",
        ["label_1_5.jsonl:1 field 'label'", "[0, 1]"],
    ),
    "eval-rm, a points file that is not JSON": (
        "eval-rm --model {rm} --points {not_json}",
        ["not_json.jsonl:1", "malformed JSON"],
    ),
    "eval-rm, pairs that are not UTF-8": ("eval-rm --model {rm} --pairs {latin1}", ["latin1.jsonl:2", "not UTF-8"]),
    "eval-rm, --out names a folder": (
        "eval-rm --model {rm} --pairs {pairs} --out {user_dir}",
        ["user_dir", "writes a file here and this is a folder"],
    ),
    # split, select, and the model-choice settings of build and ppo
    "split, a budget of 0": ("split --prompts {prompts} --labelled 0 --out {tmp}/q", ["--labelled", "integer >= 1"]),
    "split, a budget that leaves nothing unlabelled": (
        "split --prompts {prompts} --labelled 1 --out {tmp}/q",
        ["prompts.jsonl", "none is left unlabelled"],
    ),
    "split, an output folder holding the user's files": (
        "split --prompts {prompts} --labelled 1 --out {user_dir}",
        ["user_dir", "not written by openrlhf-distill"],
    ),
    "select, a candidate that is no model": (
        "select --candidates {tmp}/nowhere --dev {dev} --task arithmetic --out {tmp}/chosen",
        ["nowhere", "not a model folder"],
    ),
    "select, dev questions without pseudo-labels": (
        "select --candidates {lm} --dev {prompts} --task arithmetic --out {tmp}/chosen",
        ["prompts.jsonl:1 field 'pseudo_label'", "missing"],
    ),
    "select, an output folder holding the user's files": (
        "select --candidates {lm} --dev {dev} --task arithmetic --out {user_dir}",
        ["user_dir", "not written by openrlhf-distill"],
    ),
    "build, a negative number of dev questions": (
        "build --prompts {prompts} --labels {tmp} --out {tmp}/d --dev.questions -1",
        ["--dev.questions", "integer >= 0"],
    ),
    "ppo, a checkpoint choice with no checkpoints": (
        "ppo --reward.scheme gold --task arithmetic --actor.model_name_or_path {lm} --data.prompt_dataset "
        "{rl_prompts} --distill.select.dev {dev}",
        ["--distill.select.dev", "--ckpt.save_steps"],
    ),
    "ppo, fixed steps without a rollout batch": (
        "ppo --reward.scheme gold --actor.model_name_or_path {lm} --data.prompt_dataset {rl_prompts} "
        "--distill.steps 4",
        ["--distill.steps needs --rollout.batch_size"],
    ),
    # generate, label, build: settings with a range are checked as the command line is read
    "generate, an unknown dtype": (
        "generate --model {lm} --prompts {pairs} --out {tmp}/s --hf.dtype float77",
        ["--hf.dtype", "float77"],
    ),
    "generate, a batch of 0": (
        "generate --model {lm} --prompts {pairs} --out {tmp}/s --hf.batch_size 0",
        ["--hf.batch_size", "integer >= 1"],
    ),
    "label, a negative max temperature": (
        "label --prompts {pairs} --teacher-samples {pairs} --out {tmp}/l --vote.max_temperature -1",
        ["--vote.max_temperature", "number >= 0"],
    ),
    "label, a min ratio that is not a number": (
        "label --prompts {pairs} --teacher-samples {pairs} --out {tmp}/l --vote.min_ratio high",
        ["--vote.min_ratio", "'high'"],
    ),
    "generate, no model folder": (
        "generate --model {tmp}/nowhere --role teacher --prompts {prompts} --out {tmp}/s "
        "--task arithmetic --backend hf",
        ["nowhere", "not a model folder"],
    ),
    "judge, no teacher samples": (
        "judge --task arithmetic --prompts {prompts} --teacher-samples {empty} --out "
        "{tmp}/j --model {lm} --backend hf",
        ["empty.jsonl", "no teacher samples in it"],
    ),
    "label, no teacher samples": (
        "label --task arithmetic --prompts {prompts} --teacher-samples {empty} --out {tmp}/l",
        ["empty.jsonl", "no teacher samples in it"],
    ),
    "build, a negative pair cap": (
        "build --prompts {pairs} --labels {tmp} --out {tmp}/b --rm.pairs_per_question -1",
        ["--rm.pairs_per_question", ">= 1"],
    ),
    # serve-rm: settings and the model before anything listens
    "serve-rm, a port out of range": ("serve-rm --model {rm} --port 99999", ["--port", "[0, 65535]", "99999"]),
    "serve-rm, no model folder": ("serve-rm --model {tmp}/nowhere --port 0", ["nowhere", "not a model folder"]),
    "serve-rm, a causal LM": ("serve-rm --model {lm} --port 0", ["not a reward model"]),
    # run: every setting of the pipeline is checked when the run starts, dry run included
    "run, a ratio that is not a number": (
        "run --config {config} --dry_run --vote.min_ratio high",
        ["vote.min_ratio", "[0, 1]", "'high'"],
    ),
    "run, an unknown task": ("run --config {config} --dry_run --task bogus", ["task: must be one of", "'bogus'"]),
    "run, an unknown engine": ("run --config {config} --dry_run --engine tpu", ["engine: must be one of", "tpu"]),
    "run, a temperature above 2": (
        "run --config {config} --dry_run --teacher.temperatures 0.3,3",
        ["teacher.temperatures", "[0, 2]"],
    ),
    "run, k that is a word": ("run --config {config} --dry_run --eval.k eight", ["eval.k", ">= 1", "'eight'"]),
    "run, a prompt file that does not exist": (
        "run --config {config} --dry_run --data.source files --data.train "
        "{tmp}/nowhere.jsonl --data.test {prompts} --teacher.model {lm} "
        "--student.model {lm}",
        ["nowhere.jsonl: no such file"],
    ),
    "run, an empty prompt file": (
        "run --config {config} --dry_run --data.source files --data.train {empty} "
        "--data.test {prompts} --teacher.model {lm} --student.model {lm}",
        ["empty.jsonl", "no prompts"],
    ),
    "run, a teacher that is no model folder": (
        "run --config {config} --dry_run --data.source files --data.train "
        "{prompts} --data.test {prompts} --teacher.model {tmp}/nowhere "
        "--student.model {lm}",
        ["teacher.model", "not a model folder"],
    ),
    "run, a temperature list that is a number in YAML": (
        "run --config {scalar_yaml} --dry_run",
        ["teacher.temperatures: must be a non-empty list", "0.7"],
    ),
    # train-rm: the data files are read and checked in the trainer process, before any training; its one line
    # comes back as the command's error, and nothing is written
    "train-rm, a pair whose chosen is a number": (
        "train-rm --engine cpu --model.model_name_or_path {lm} "
        "--data.dataset {chosen_42} --ckpt.output_dir {tmp}/rm_out",
        ["chosen_42.jsonl:1 field 'chosen'", "must be a string"],
    ),
    "train-rm, empty pairs": (
        "train-rm --engine cpu --model.model_name_or_path {lm} --data.dataset {empty} --ckpt.output_dir {tmp}/rm_out",
        ["empty.jsonl", "holds no records"],
    ),
    "train-rm, no model folder": (
        "train-rm --engine cpu --model.model_name_or_path {tmp}/nowhere "
        "--data.dataset {pairs} --ckpt.output_dir {tmp}/rm_out",
        ["--model.model_name_or_path", "nowhere", "not a model folder"],
    ),
    # ppo: the model folders, the prompt file's columns and the sampling settings, before Ray starts
    "ppo, no actor folder": (
        "ppo --dry_run --engine cpu --reward.scheme rm --actor.model_name_or_path {tmp}/nowhere "
        "--reward.model_name_or_path {rm} --data.prompt_dataset {rl_prompts}",
        ["--actor.model_name_or_path", "nowhere", "not a model folder"],
    ),
    "ppo, a causal LM as the RM": (
        "ppo --dry_run --engine cpu --reward.scheme rm --actor.model_name_or_path {lm} "
        "--reward.model_name_or_path {lm} --data.prompt_dataset {rl_prompts}",
        ["not a reward model"],
    ),
    "ppo, prompts without the input column": (
        "ppo --dry_run --engine cpu --reward.scheme vote "
        "--actor.model_name_or_path {lm} --data.prompt_dataset {pairs}",
        ["pairs.jsonl:1 field 'input': missing"],
    ),
    "ppo, a negative temperature": (
        "ppo --dry_run --engine cpu --reward.scheme rm --actor.model_name_or_path {lm} "
        "--reward.model_name_or_path {rm} --data.prompt_dataset {rl_prompts} "
        "--rollout.temperature -1",
        ["--rollout.temperature", "[0, 2]"],
    ),
    "ppo, a GPU plan larger than the declared cluster": (
        "ppo --dry_run --engine gpu --reward.scheme rm --actor.model_name_or_path {lm} --reward.model_name_or_path "
        "{rm} --data.prompt_dataset {rl_prompts} --distill.cluster.nodes 1 --distill.cluster.gpus_per_node 8 "
        "--actor.num_gpus_per_node 4 --ref.num_gpus_per_node 2 --critic.num_gpus_per_node 2 "
        "--reward.num_gpus_per_node 2 --vllm.num_engines 2 --algo.advantage.estimator gae",
        [
            "needs 12 GPUs, the cluster (1 node(s) x 8 GPUs) has 8",
            "--train.colocate_actor_ref",
            "--train.colocate_critic_reward",
        ],
    ),
    # commands that replace their output folder whole refuse one holding a user's files
    "tiny-model into a user's folder": ("tiny-model {user_dir}", ["user_dir", "notes.txt"]),
    # issue 34's list: what still got through, late, or as a traceback
    "label, an unknown task": (
        "label --task bogus --prompts {prompts} --teacher_samples {samples} --out {tmp}/l",
        ["unknown task 'bogus'", "gsm8k"],
    ),
    "label, a chat role no template knows": (
        "label --prompts {wizard} --teacher_samples {samples} --out {tmp}/l",
        ["wizard.jsonl:1 field 'prompt'", "system, user, assistant, tool"],
    ),
    "label, prompts that are a folder": (
        "label --prompts {user_dir} --teacher_samples {samples} --out {tmp}/l",
        ["user_dir", "a folder, not a file"],
    ),
    "run, an evaluation of a model the run has not": (
        "run --data.source toy --eval.models teacher,bogus --dry_run",
        ["eval.models", "teacher, student_base"],
    ),
    "run, a run folder that is a file": ("run --data.source toy --run_dir {pairs}", ["pairs.jsonl", "this is a file"]),
    "generate, an output that is a file": (
        "generate --model {lm} --prompts {prompts} --role teacher --out {pairs}",
        ["pairs.jsonl", "this is a file"],
    ),
    "toy-world, an output that is a file": ("toy-world {pairs}", ["pairs.jsonl", "this is a file"]),
    "generate, a model folder without weights": (
        "generate --model {no_weights} --prompts {prompts} --role teacher --out {tmp}/s",
        ["--model", "no_weights", "without weights"],
    ),
    "eval, --out a folder": (
        "eval --model {lm} --task arithmetic --prompts {prompts} --out {user_dir}",
        ["user_dir", "this is a folder"],
    ),
    "prepare-data, --out a folder": (
        "prepare-data --task gsm8k --split test --source {gsm8k} --out {user_dir}",
        ["user_dir", "this is a folder"],
    ),
    "sft, a data set that does not exist": (
        "sft --engine cpu --model.model_name_or_path {lm} --data.dataset {tmp}/none.jsonl --ckpt.output_dir {tmp}/o",
        ["none.jsonl", "no such file"],
    ),
    "sft, an empty data set": (
        "sft --engine cpu --model.model_name_or_path {lm} --data.dataset {empty} --ckpt.output_dir {tmp}/o",
        ["empty.jsonl", "holds no records"],
    ),
    "sft, a data set without the input key": (
        "sft --engine cpu --model.model_name_or_path {lm} --data.dataset {pairs} --ckpt.output_dir {tmp}/o",
        ["pairs.jsonl:1 field 'input'", "missing"],
    ),
    "train-rm, pairs without the chosen key": (
        "train-rm --engine cpu --model.model_name_or_path {lm} --data.dataset {sft} --ckpt.output_dir {tmp}/o",
        ["sft.jsonl:1 field 'chosen'", "missing"],
    ),
    "sft, one flag OpenRLHF does not know": (
        "sft --engine cpu --model.model_name_or_path {lm} --data.dataset {sft} --ckpt.output_dir {tmp}/o "
        "--bogus.flag 3",
        ["unrecognized arguments: --bogus.flag 3"],
    ),
    "run, a list that is not YAML": ("run --data.source toy --sft.launcher [a,b --dry_run", ["--sft.launcher"]),
    "run, a config that is not UTF-8": ("run --config {latin1_yaml} --dry_run", ["latin1.yaml", "not UTF-8"]),
    "judge, a rubric that is not UTF-8": (
        "judge --model {lm} --prompts {prompts} --teacher_samples {samples} --out {tmp}/j "
        "--judge.rubric_file {latin1}",
        ["latin1.jsonl:2", "not UTF-8"],
    ),
    "toy-world, a shape that is not a number": (
        "toy-world {tmp}/w --teacher_shape hidden=abc",
        ["--teacher_shape", "hidden=abc"],
    ),
    "run, a bad record on line 301 of the training prompts": (
        "run --task arithmetic --data.source files --data.train {prompts_301} --data.test {prompts} "
        "--teacher.model {lm} --student.model {lm} --run_dir {tmp}/r --dry_run",
        ["prompts_301.jsonl:301 field 'id'", "appears twice"],
    ),
    "run, a backend flag the backend refuses": (
        "run --data.source toy --teacher.backend_flags.hf.dtype float77 --dry_run --run_dir {tmp}/r",
        ["stage teacher_samples would fail", "--hf.dtype", "float77"],
    ),
    "run, a judge flag that is not a number": (
        "run --data.source toy --labeller judge --judge.flags.judge.temperature hot --dry_run --run_dir {tmp}/r",
        ["stage teacher_labels would fail", "--judge.temperature", "hot"],
    ),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model, teacher_sample):
    from openrlhf_distill.toy.tiny_model import build_tiny_reward_model

    tmp = tmp_path_factory.mktemp("bad_inputs")
    rm = build_tiny_reward_model(str(tmp / "rm"), base_dir=tiny_model)
    lines = {
        "pairs": [json.dumps(PAIR)],
        "empty": [],
        "no_rejected": [json.dumps(PAIR), json.dumps({"prompt": "p", "chosen": "c"})],
        "chosen_42": [json.dumps({**PAIR, "chosen": 42})],
        "label_1_5": [json.dumps({**POINT, "label": 1.5})],
        "not_json": ["{'prompt': 'p'}"],
        "rl_prompts": [json.dumps({"input": "What is 1 + 1?", "distill_label": "2"})],
        "prompts": [json.dumps({"id": "q1", "prompt": "What is 1 + 1?", "gold": "2"})],
        "dev": [json.dumps({"id": "q1", "prompt": "What is 1 + 1?", "pseudo_label": "2"})],
        "samples": [json.dumps(teacher_sample)],
        "wizard": [json.dumps({"id": "q1", "prompt": [{"role": "wizard", "content": "hi"}], "task": "arithmetic"})],
        "gsm8k": [json.dumps({"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"})],
        "sft": [json.dumps({"input": "What is 1 + 1?", "output": "#### 2"})],
        "prompts_301": [json.dumps({"id": f"q{i}", "prompt": "What is 1 + 1?", "gold": "2"}) for i in range(300)]
        + [json.dumps({"id": "q7", "prompt": "again", "gold": "2"})],
    }
    paths = {"tmp": str(tmp), "rm": rm, "lm": tiny_model, "latin1": str(tmp / "latin1.jsonl")}
    with open(paths["latin1"], "wb") as f:
        f.write(
            (json.dumps(PAIR) + "\n").encode()
            + json.dumps({**PAIR, "chosen": "café"}, ensure_ascii=False).encode("latin-1")
            + b"\n"
        )
    for name, rows in lines.items():
        paths[name] = str(tmp / f"{name}.jsonl")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write("".join(row + "\n" for row in rows))
    paths["config"] = os.path.join(os.path.dirname(__file__), "..", "recipes", "configs", "quickstart_cpu.yaml")
    paths["scalar_yaml"] = str(tmp / "scalar.yaml")
    with open(paths["scalar_yaml"], "w", encoding="utf-8") as f:
        f.write("data: {source: toy}\nteacher: {temperatures: 0.7}\n")
    paths["latin1_yaml"] = str(tmp / "latin1.yaml")
    with open(paths["latin1_yaml"], "wb") as f:
        f.write(b"data: {source: toy}\n# caf\xe9\n")
    no_weights = tmp / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    paths["no_weights"] = str(no_weights)
    user_dir = tmp / "user_dir"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("a user's notes")
    paths["user_dir"] = str(user_dir)
    return paths


def _listing(root):
    return sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_one_line_naming_where_with_exit_2_and_nothing_changed(case, files):
    command, expected = CASES[case]
    argv = [word.format(**files) for word in command.split()]
    before = {path: open(path, "rb").read() for path in _listing(files["tmp"])}
    result = subprocess.run([BIN, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, (case, result.returncode, result.stderr[-2000:])
    message = [line for line in result.stderr.splitlines() if "error:" in line]
    assert message and message[-1].startswith(f"openrlhf-distill {argv[0]}: error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for part in expected:
        assert part.format(**files) in message[-1], (part, message[-1])
    after = {path: open(path, "rb").read() for path in _listing(files["tmp"])}
    assert after == before, f"{case}: files changed, added or removed"
