"""The output contract (`openrlhf_distill/contract.py`), generated from the command table: for every command and
every output it declares, an output that is an input, that holds a user's files, that is ours with a user's file
added (or changed since), or that is a file where a folder is expected (and the reverse) is refused before any
work, in one line with exit 2, and every byte of the user's is still there.

A new command is covered by declaring its paths (``PATHS``) and adding its valid command line to ``COMMAND_LINES``:
the cases are made from the declaration, not written per command."""

import json
import os

import pytest

from openrlhf_distill import cli, contract

# A valid command line per command: what it would run if nothing were wrong with its outputs. ``{NAME}`` of an
# output is where the case puts it; the other ``{...}`` are the inputs below.
COMMAND_LINES = {
    "doctor": "doctor",
    "prepare-data": "prepare-data --task gsm8k --split test --source {gsm8k} --out {out}",
    "split": "split --prompts {prompts} --labelled 1 --out {out}",
    "generate": "generate --model {lm} --prompts {prompts} --role teacher --out {out}",
    "label": "label --prompts {prompts} --teacher_samples {samples} --out {out}",
    "judge": "judge --model {lm} --prompts {prompts} --teacher_samples {samples} --out {out}",
    "build": "build --prompts {prompts} --labels {labels} --out {out}",
    "sft": "sft --engine cpu --model.model_name_or_path {lm} --data.dataset {sft} --ckpt.output_dir {ckpt_output_dir}",
    "train-rm": "train-rm --engine cpu --model.model_name_or_path {lm} --data.dataset {pairs} "
    "--distill.rm.points {points} --ckpt.output_dir {ckpt_output_dir}",
    "eval-rm": "eval-rm --model {rm} --pairs {pairs} --prompts {prompts} --samples {samples} --out {out} "
    "--scores_out {scores_out}",
    "ppo": "ppo --engine cpu --reward.scheme vote --actor.model_name_or_path {lm} --data.prompt_dataset {rl_prompts} "
    "--data.input_key input --data.apply_chat_template --rollout.batch_size 8 --rollout.n_samples_per_prompt 4 "
    "--train.batch_size 32 --ckpt.output_dir {ckpt_output_dir}",
    "select": "select --candidates {lm} --dev {dev} --task arithmetic --out {out}",
    "serve-rm": "serve-rm --model {rm}",
    "eval": "eval --model {lm} --task arithmetic --prompts {prompts} --out {out}",
    "report": "report {run}",
    "run": "run --data.source toy --run_dir {run_dir}",
    "toy-world": "toy-world {out_dir}",
    "tiny-model": "tiny-model {out_dir}",
}
USER_BYTES = b"a user's own bytes\n"


def _outputs():
    for name in cli.COMMANDS:
        for path in cli.declared_paths(name):
            if path.role == "output":
                yield name, path


def test_every_command_has_a_command_line_and_every_output_a_case():
    assert set(COMMAND_LINES) == set(cli.COMMANDS)
    declared = {(name, path.name) for name, path in _outputs()}
    # every command that writes declares it: at least these, and each is reachable by the cases below
    assert {("generate", "out"), ("eval", "out"), ("eval", "samples"), ("report", "report"), ("run", "run_dir")} <= (
        declared
    )
    assert {("sft", "ckpt.output_dir"), ("toy-world", "out_dir"), ("prepare-data", "out")} <= declared


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model, teacher_sample):
    from openrlhf_distill.toy.tiny_model import build_tiny_reward_model

    tmp = tmp_path_factory.mktemp("contract_inputs")
    rows = {
        "prompts": {"id": "q1", "prompt": "What is 1 + 1?", "gold": "2", "task": "arithmetic"},
        "samples": teacher_sample,
        "gsm8k": {"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"},
        "sft": {"input": "What is 1 + 1?", "output": "#### 2"},
        "pairs": {"prompt": "p", "chosen": "right", "rejected": "wrong"},
        "points": {"prompt": "p", "response": "right", "label": 1},
        "rl_prompts": {"input": "What is 1 + 1?", "distill_label": "2"},
        "dev": {"id": "q1", "prompt": "What is 1 + 1?", "pseudo_label": "2"},
    }
    paths = {"lm": tiny_model, "rm": build_tiny_reward_model(str(tmp / "rm"), base_dir=tiny_model)}
    for name, row in rows.items():
        paths[name] = str(tmp / f"{name}.jsonl")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    os.makedirs(tmp / "labels")
    paths["labels"] = str(tmp / "labels")
    return paths


@pytest.fixture
def each(inputs, tmp_path):
    """The inputs, with a run folder of this test's own (`report` writes into the folder it reads)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"task": "arithmetic", "seeds": [0], "config": {}}))
    return {**inputs, "run": str(run)}


def _argv(name: str, inputs: dict, outputs_at: str, **placed) -> list[str]:
    fill = {**inputs}
    for _, path in _outputs():
        key = path.name.replace(".", "_")
        fill.setdefault(key, os.path.join(outputs_at, key))
    fill.update({key.replace(".", "_"): value for key, value in placed.items()})
    return [word.format_map(fill) for word in COMMAND_LINES[name].split()]


def _where(name: str, argv: list[str], output) -> str:
    """Where ``output`` of this command line lands (derived outputs too), as the contract resolves it."""
    args, rest = cli.build_parser().parse_known_args(argv)
    (value,) = [v for p, v in contract.resolve(cli.declared_paths(name), args, rest) if p is output]
    return value


def _snapshot(*roots: str) -> dict:
    seen = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for file in names:
                with open(os.path.join(folder, file), "rb") as f:
                    seen[os.path.join(folder, file)] = f.read()
    return seen


def _refused(name: str, argv: list[str], capsys, *roots: str) -> str:
    before = _snapshot(*roots)
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, code, err[-2000:])
    assert err.count("\n") == 0 and err.startswith(f"openrlhf-distill {name}: error: "), err[-2000:]
    assert _snapshot(*roots) == before, "files changed, added or removed"
    return err


def _fill_as_user(path: str, kind: str) -> None:
    """What a user keeps at ``path``: a file of theirs, or a folder holding one."""
    if kind == "file":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(USER_BYTES)
    else:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "notes.txt"), "wb") as f:
            f.write(USER_BYTES)


CASES = ("is an input", "holds the user's files", "ours with the user's file added", "the other kind")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name, output", list(_outputs()), ids=lambda v: getattr(v, "name", v))
def test_an_output_the_contract_forbids_is_refused_before_any_work(name, output, case, each, tmp_path, capsys):
    inputs = each
    outputs_at = str(tmp_path / "outputs")
    argv = _argv(name, inputs, outputs_at)
    where = _where(name, argv, output)
    if case == "is an input":
        args, rest = cli.build_parser().parse_known_args(argv)
        given = [v for p, v in contract.resolve(cli.declared_paths(name), args, rest) if p.role == "input"]
        if output.derived or not given:
            pytest.skip("this output has no flag to point at an input, or the command reads none")
        for one in given:  # each input it reads: a model folder, a prompts file, a samples folder...
            argv = _argv(name, inputs, outputs_at, **{output.name: one})
            err = _refused(name, argv, capsys, os.path.dirname(one), outputs_at)
            assert "an input of" in err and one in err
        return
    if case == "holds the user's files":
        _fill_as_user(where, output.kind)
        err = _refused(name, argv, capsys, outputs_at, inputs["run"])
        assert where in err and "not written by openrlhf-distill" in err
    elif case == "ours with the user's file added":
        # ours as the contract records it once a command succeeded, then the user's change
        if output.kind == "file":
            os.makedirs(os.path.dirname(where), exist_ok=True)
            with open(where, "w") as f:
                f.write("{}\n")
            contract.record_written(name, output, where)
            with open(where, "ab") as f:
                f.write(USER_BYTES)
            expected = "changed since"
        else:
            os.makedirs(where)
            with open(os.path.join(where, "ours.json"), "w") as f:
                f.write("{}\n")
            contract.record_written(name, output, where)
            _fill_as_user(where, "folder")
            expected = "did not write"
        err = _refused(name, argv, capsys, outputs_at, inputs["run"])
        assert where in err and expected in err
    else:
        _fill_as_user(where, "folder" if output.kind == "file" else "file")
        err = _refused(name, argv, capsys, outputs_at, inputs["run"])
        assert where in err and ("this is a folder" if output.kind == "file" else "this is a file") in err
    with open(os.path.join(where, "notes.txt") if os.path.isdir(where) else where, "rb") as f:
        assert USER_BYTES in f.read()


def test_a_second_command_on_the_same_output_is_refused_while_the_first_holds_it(inputs, tmp_path, capsys):
    argv = _argv("generate", inputs, str(tmp_path / "outputs"))
    args, rest = cli.build_parser().parse_known_args(argv)
    with contract.claim("generate", cli.declared_paths("generate"), args, rest):
        code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "another openrlhf-distill command is writing this output now" in err, err


def test_an_interrupted_output_is_continued_and_a_finished_one_records_what_it_holds(inputs, tmp_path):
    out = str(tmp_path / "samples")
    argv = _argv("generate", inputs, str(tmp_path), out=out)
    args, rest = cli.build_parser().parse_known_args(argv)
    with pytest.raises(KeyboardInterrupt), contract.claim("generate", cli.declared_paths("generate"), args, rest):
        with open(os.path.join(out, "shard-00000.jsonl"), "w") as f:
            f.write("{}\n")
        raise KeyboardInterrupt
    marker = json.load(open(os.path.join(out, ".openrlhf-distill-output")))
    assert marker == {"command": "generate", "complete": False}  # the shard stays ours: a rerun continues it
    with contract.claim("generate", cli.declared_paths("generate"), args, rest) as outcome:
        outcome["code"] = 0
    marker = json.load(open(os.path.join(out, ".openrlhf-distill-output")))
    assert marker == {"command": "generate", "complete": True, "entries": ["shard-00000.jsonl"]}
