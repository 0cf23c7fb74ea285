"""`openrlhf-distill run`: config and overrides, the plan, fingerprints (skip what is done, rerun what changed),
and a run killed mid-stage that, rerun with the same command, ends with the same outputs as an uninterrupted one.
The stages run for real (hf sampling on a tiny model, label, build); the trainer stages have tests of their own."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from openrlhf_distill.pipeline import config as cfg
from openrlhf_distill.pipeline import runner, stages

QUESTIONS = [(a, b) for a in range(3, 11) for b in range(2, 10)][:64]


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    with open(path, "w") as f:
        for i, (a, b) in enumerate(QUESTIONS):
            f.write(
                json.dumps({"id": f"q{i}", "prompt": f"What is {a} + {b}?", "task": "arithmetic", "gold": str(a + b)})
                + "\n"
            )
    return str(path)


def _config(tmp_path, prompts, tiny_model, run_dir, **extra):
    config = {
        "run_dir": str(run_dir),
        "task": "arithmetic",
        "seeds": [0],
        "backend": "hf",
        "data": {"source": "files", "train": prompts, "test": prompts},
        "teacher": {
            "model": tiny_model,
            "temperatures": [0.7, 1.0],
            "n_per_temperature": 2,
            "max_new_tokens": 12,
            "shard_size": 4,
        },
        "student": {"model": tiny_model},
        **extra,
    }
    path = tmp_path / f"{os.path.basename(str(run_dir))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _run(config_path, *extra, timeout=600, **kwargs):
    command = [sys.executable, "-m", "openrlhf_distill.cli", "run", "--config", config_path, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def test_overrides_set_settings_and_openrlhf_flags_per_stage():
    config = cfg.apply_overrides(
        cfg.DEFAULTS,
        [
            "--teacher.temperatures",
            "0.3,1.0",
            "--ppo.actor.adam.lr",
            "1e-6",
            "--sft.ds.zero_stage=3",
            "--rm.ds.packing_samples",
            "--seeds",
            "0,1,2",
            "--ppo.schemes",
            "rm,vote",
        ],
    )
    assert config["teacher"]["temperatures"] == [0.3, 1.0] and config["seeds"] == [0, 1, 2]
    # OpenRLHF flags are passed on verbatim (its parser converts them); a bare flag is a switch.
    assert config["ppo"]["flags"] == {"actor.adam.lr": "1e-6"} and config["ppo"]["schemes"] == ["rm", "vote"]
    assert config["sft"]["flags"] == {"ds.zero_stage": "3"} and config["rm"]["flags"] == {"ds.packing_samples": True}
    assert cfg.DEFAULTS["ppo"]["flags"] == {}  # the defaults are not modified


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["--teacher.temperature", "1"],
            "unknown setting 'teacher.temperature'; known here: adaptive, backend_flags, max_new_tokens",
        ),
        (["--ppo.schemes", "best"], "unknown scheme 'best'"),
        (["--data.source", "web"], "data.source: must be one of files, hf, toy"),
        (["--seeds", "a"], "seeds: each item must be an integer >= 0"),
    ],
)
def test_bad_settings_are_refused_naming_them(tmp_path, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "toy"}}))
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load_config(str(path), overrides)


def test_unknown_setting_in_the_file_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"teacher": {"modle": "x"}}))
    with pytest.raises(cfg.ConfigError, match=r"c.yaml: unknown setting 'teacher.modle'"):
        cfg.load_config(str(path))


def test_the_plan_follows_the_design_order_and_every_trainer_writes_a_partial_folder(tmp_path):
    config = cfg.load_config(
        None,
        [
            "--data.source",
            "toy",
            "--seeds",
            "0,1",
            "--ppo.schemes",
            "rm,vote,gold",
            "--rm.ablations",
            "teacher_only",
            "--run_dir",
            str(tmp_path),
        ],
    )
    planned = stages.plan(config)
    keys = [s.key for s in planned]
    assert keys[:4] == ["world", "teacher_samples", "teacher_labels", "sft_data"]
    for seed in (0, 1):
        order = [
            f"sft@seed{seed}",
            f"student_samples@seed{seed}",
            f"labels@seed{seed}",
            f"rm_data@seed{seed}",
            f"rm@seed{seed}",
            f"rl_rm@seed{seed}",
            f"eval_rl_rm@seed{seed}",
        ]
        assert [keys.index(k) for k in order] == sorted(keys.index(k) for k in order)
        assert f"rl_rm_teacher_only@seed{seed}" in keys and f"rl_gold@seed{seed}" in keys
    assert keys[-1] == "report"
    assert {s.name for s in planned if s.partial} == {"sft", "rm", "rl"}
    # Every stage's input is the user's or an earlier stage's output.
    made = set()
    for stage in planned:
        for path in stage.inputs:
            assert path in made or any(path.startswith(m + os.sep) for m in made), (stage.key, path)
        made.add(stage.output)


def test_a_changed_world_preset_changes_the_world_fingerprint_and_everything_after_it(tmp_path, monkeypatch):
    # The world's command spells only the preset's name: without the preset's settings in the fingerprint, a
    # run folder built before a preset changed would keep its old world and call it done.
    import dataclasses

    from openrlhf_distill.toy import world

    config = cfg.load_config(None, ["--data.source", "toy", "--seeds", "0", "--run_dir", str(tmp_path)])
    before = runner.fingerprints(stages.plan(config))
    styles = world.PRESETS["styles"]
    monkeypatch.setitem(world.PRESETS, "styles", dataclasses.replace(styles, teacher_target=0.5))
    after = runner.fingerprints(stages.plan(config))
    assert set(before) == set(after) and all(before[key] != after[key] for key in before)
    monkeypatch.setitem(world.PRESETS, "styles", styles)
    assert runner.fingerprints(stages.plan(config)) == before


def test_a_changed_rm_data_setting_leaves_the_sft_runs_done_and_a_changed_sft_one_does_not(tmp_path):
    # The SFT data and the RM data come from one `build` command; each stage passes only its own files' settings,
    # or trying another pairs_per_question would retrain every seed's SFT student and all that follows.
    base = ["--data.source", "toy", "--seeds", "0,1", "--run_dir", str(tmp_path)]
    before = runner.fingerprints(stages.plan(cfg.load_config(None, base)))
    pairs = runner.fingerprints(stages.plan(cfg.load_config(None, [*base, "--build.pairs_per_question", "2"])))
    changed = {key for key in before if before[key] != pairs[key]}
    assert {"sft_data", "sft@seed0", "student_samples@seed1", "labels@seed0"}.isdisjoint(changed)
    assert {"rm_data@seed0", "rm@seed1", "rl_rm@seed0", "report"} <= changed
    sft = runner.fingerprints(stages.plan(cfg.load_config(None, [*base, "--build.sft_max_per_question", "1"])))
    assert {"sft_data", "sft@seed0", "rm@seed1", "rl_rm@seed0"} <= {key for key in before if before[key] != sft[key]}


def test_the_judge_labeller_labels_with_the_teacher_as_judge_and_open_tasks_are_not_evaluated(tmp_path):
    config = cfg.load_config(
        None,
        [
            "--task",
            "open",
            "--labeller",
            "judge",
            "--eval.enabled",
            "false",
            "--data.train",
            "prompts.jsonl",
            "--teacher.model",
            "/m/teacher",
            "--teacher.backend_flags",
            "{vllm.tensor_parallel_size: 8}",
            "--student.model",
            "/m/student",
            "--judge.flags",
            "{judge.temperature: 0.0}",
            "--build.sft_min_label",
            "0.9",
            "--ppo.schemes",
            "judge",
            "--run_dir",
            str(tmp_path),
        ],
    )
    planned = {s.key: s for s in stages.plan(config)}
    assert [k for k in planned if k.startswith(("eval", "rm_eval"))] == []
    teacher_labels, seed_labels = planned["teacher_labels"].argv, planned["labels@seed0"].argv
    for argv in (teacher_labels, seed_labels):
        assert argv[0] == "judge" and argv[argv.index("--model") + 1] == "/m/teacher"
        # the teacher judges with its own serving flags, and the judge's flags on top
        assert argv[argv.index("--vllm.tensor_parallel_size") + 1] == "8"
        assert argv[argv.index("--judge.temperature") + 1] == "0.0"
    assert "--student_samples" not in teacher_labels
    assert seed_labels[seed_labels.index("--student_samples") + 1] == planned["student_samples@seed0"].output
    build = planned["sft_data"].argv
    assert build[build.index("--sft.min_label") + 1] == "0.9"
    ppo_argv = planned["rl_judge@seed0"].argv
    assert ppo_argv[ppo_argv.index("--reward.model_name_or_path") + 1] == planned["rm@seed0"].output
    # A separate judge model is an input of the labelling stages (its change reruns them), with no teacher flags.
    other = cfg.apply_overrides(config, ["--judge.model", "/m/judge"])
    planned = {s.key: s for s in stages.plan(other)}
    assert "/m/judge" in planned["teacher_labels"].inputs and "/m/judge" in planned["labels@seed0"].inputs
    assert "--vllm.tensor_parallel_size" not in planned["teacher_labels"].argv
    with pytest.raises(cfg.ConfigError, match="labeller: must be one of vote, judge"):
        cfg.load_config(None, ["--labeller", "vote2", "--data.source", "toy"])
    with pytest.raises(cfg.ConfigError, match="task open has no gold answers"):
        cfg.load_config(None, ["--task", "open", "--data.source", "toy"])


def test_from_and_until_stage(tmp_path):
    config = cfg.load_config(None, ["--data.source", "toy", "--run_dir", str(tmp_path)])
    planned = stages.plan(config)
    chosen, forced = runner.select(planned, "teacher_labels", "sft_data")
    assert [s.key for s in chosen] == ["world", "teacher_samples", "teacher_labels", "sft_data"]
    assert forced == {"teacher_labels", "sft_data"}
    # A name stops every seed at that stage; a key stops the plan at that one stage.
    config = cfg.load_config(None, ["--data.source", "toy", "--run_dir", str(tmp_path), "--seeds", "0,1"])
    planned = stages.plan(config)
    by_name, _ = runner.select(planned, None, "rm_eval")
    assert {"rm_eval@seed0", "rm_eval@seed1", "rm@seed1"} <= {s.key for s in by_name}
    assert not [s.key for s in by_name if s.name in ("rl", "eval", "report")]
    by_key, _ = runner.select(planned, None, "rm_eval@seed0")
    assert by_key[-1].key == "rm_eval@seed0" and not [s.key for s in by_key if s.seed == 1]
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        runner.select(planned, "nope", None)


def test_a_killed_trainer_stage_continues_from_its_last_complete_checkpoint(tmp_path, monkeypatch):
    # The runner's side of a trainer's resume; OpenRLHF really continuing from such a checkpoint is shown by
    # tests/test_ppo_cpu.py::test_gold_scheme_runs_and_a_killed_run_continues_from_its_checkpoint.
    out = str(tmp_path / "seed0" / "rl_rm")
    stage = stages.Stage("rl", "rl_rm@seed0", 0, ["ppo", "--reward.scheme", "rm"], out, partial=True)
    calls = []

    def trainer(saves: bool, code: int):
        def call(command, *_):
            partial = command[command.index("--ckpt.output_dir") + 1]
            calls.append((command, sorted(os.listdir(partial)) if os.path.isdir(partial) else None))
            os.makedirs(os.path.join(partial, "ckpt", "_actor", "global_step4"), exist_ok=True)
            if saves:  # DeepSpeed writes the `latest` tag once the states are on disk
                with open(os.path.join(partial, "ckpt", "_actor", "latest"), "w") as f:
                    f.write("global_step4")
            return code

        return call

    # Killed before any checkpoint was complete: the rerun starts over, from an empty folder.
    monkeypatch.setattr(runner, "_run_logged", trainer(saves=False, code=-9))
    with pytest.raises(runner.StageFailed):
        runner.run_stages([stage], str(tmp_path), log=lambda _: None)
    with pytest.raises(runner.StageFailed):
        runner.run_stages([stage], str(tmp_path), log=lambda _: None)
    assert calls[1][1] is None and "--ckpt.load_enable" not in calls[1][0]
    # Killed after a checkpoint: the rerun keeps the partial folder and asks OpenRLHF to load it.
    monkeypatch.setattr(runner, "_run_logged", trainer(saves=True, code=-9))
    with pytest.raises(runner.StageFailed):
        runner.run_stages([stage], str(tmp_path), log=lambda _: None)
    logged = []
    monkeypatch.setattr(runner, "_run_logged", trainer(saves=True, code=0))
    assert runner.run_stages([stage], str(tmp_path), log=logged.append) == {"rl_rm@seed0": "resume"}
    command, kept = calls[-1]
    assert kept == ["ckpt"] and command[-1] == "--ckpt.load_enable"
    assert any("from the checkpoint in" in line for line in logged)
    # finished: the model stays, the DeepSpeed checkpoint it resumed from goes (optimizer states: bulk now)
    assert os.listdir(out) == [] and not os.path.exists(out + ".partial")
    # A tag whose folder is gone (deleted before a save that was cut short), or models at different steps: no
    # checkpoint to trust.
    partial = out + ".partial"
    cases = [
        ({"_actor": "global_step8"}, ["global_step4"]),
        ({"_actor": "global_step4", "_critic": "global_step2"}, ["global_step4", "global_step2"]),
    ]
    for latest, steps in cases:
        shutil.rmtree(partial, ignore_errors=True)
        for model, tag in latest.items():
            for step in steps:
                os.makedirs(os.path.join(partial, "ckpt", model, step), exist_ok=True)
            with open(os.path.join(partial, "ckpt", model, "latest"), "w") as f:
                f.write(tag)
        assert not runner._has_checkpoint(partial)
    shutil.rmtree(partial)
    # A changed setting is not a resume: the old checkpoint is not loaded into a differently set-up run.
    changed = stages.Stage("rl", "rl_rm@seed0", 0, ["ppo", "--reward.scheme", "vote"], out, partial=True)
    runner.run_stages([changed], str(tmp_path), log=lambda _: None)
    assert calls[-1][1] is None and "--ckpt.load_enable" not in calls[-1][0]


def test_a_finished_trainer_stage_keeps_its_model_and_drops_its_optimizer_states_unless_asked(tmp_path, monkeypatch):
    """SFT, RM and PPO stages alike (the runner's side; OpenRLHF writing its DeepSpeed states under --ckpt.path
    is shown by tests/test_ppo_cpu.py's kill-and-continue run)."""

    def trainer(command, *_):  # writes what OpenRLHF's trainers write: the model, and DeepSpeed states in ckpt/
        out = command[command.index("--ckpt.output_dir") + 1]
        assert command[command.index("--ckpt.path") + 1] == os.path.join(out, "ckpt")
        os.makedirs(os.path.join(out, "ckpt", "_actor", "global_step2"))
        for path in ("config.json", "model.safetensors", "ckpt/_actor/global_step2/optim_states.pt"):
            with open(os.path.join(out, path), "w") as f:
                f.write("x")
        return 0

    monkeypatch.setattr(runner, "_run_logged", trainer)
    for keep in (False, True):
        run_dir = tmp_path / f"keep_{keep}"
        planned = [
            stages.Stage(name, f"{name}@seed0", 0, [command], str(run_dir / "seed0" / name), partial=True)
            for name, command in (("sft", "sft"), ("rm", "train-rm"), ("rl", "ppo"))
        ]
        runner.run_stages(planned, str(run_dir), log=lambda _: None, keep_checkpoints=keep)
        for stage in planned:
            assert sorted(os.listdir(stage.output)) == ["ckpt"] * keep + ["config.json", "model.safetensors"]
    assert cfg.apply_overrides(cfg.DEFAULTS, ["--keep_checkpoints", "true"])["keep_checkpoints"] is True


def test_each_stage_output_is_shown_and_kept_in_its_log_and_a_failure_names_the_log(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(stages.Stage, "command", property(lambda stage: stage.argv))  # plain commands, not ours
    code = (
        "import os, sys; os.makedirs(sys.argv[1], exist_ok=True); print('sampled 10 of 10'); "
        "print('a warning', file=sys.stderr); sys.exit({})"
    )
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    ok = stages.Stage("data", "data_train", None, [sys.executable, "-c", code.format(0), a], a)
    bad = stages.Stage("sft", "sft@seed0", 0, [sys.executable, "-c", code.format(3), b], b)
    runner.run_stages([ok], str(tmp_path), log=lambda _: None)
    with pytest.raises(runner.StageFailed, match=r"exit 3.*\n.*\nits output: .*stages/sft_seed0.log"):
        runner.run_stages([ok, bad], str(tmp_path), log=lambda _: None)
    shown = capsys.readouterr().out
    assert shown.count("sampled 10 of 10") == 2 and "a warning" in shown  # the terminal saw both streams
    log = (tmp_path / "stages" / "sft_seed0.log").read_text()
    assert log.startswith("=== ") and "$ " in log and "sampled 10 of 10\na warning\n=== exit 3\n" in log
    assert (tmp_path / "stages" / "data_train.log").read_text().count("=== exit 0") == 1  # done: not rerun
    with pytest.raises(runner.StageFailed):  # a second attempt is appended under its own header
        runner.run_stages([ok, bad], str(tmp_path), log=lambda _: None)
    assert (tmp_path / "stages" / "sft_seed0.log").read_text().count("=== exit 3") == 2


def _outputs(run_dir):
    """The run's data, without file paths or timings: samples (sorted), votes, labels, SFT rows."""
    out = {}
    for folder in ("teacher_samples", "labels", "sft_data"):
        for root, _, names in os.walk(os.path.join(run_dir, folder)):
            for name in names:
                if name.endswith(".jsonl"):
                    with open(os.path.join(root, name)) as f:
                        rows = [json.loads(line) for line in f]
                    key = folder if folder == "teacher_samples" else f"{folder}/{name}"
                    out.setdefault(key, []).extend(rows)
    out["teacher_samples"].sort(key=lambda r: (r["id"], r["sample_index"]))
    return out


@pytest.mark.slow
def test_a_killed_run_continues_and_ends_with_the_outputs_of_an_uninterrupted_run(tmp_path, prompts, tiny_model):
    whole = _config(tmp_path, prompts, tiny_model, tmp_path / "whole")
    result = _run(whole, "--until_stage", "sft_data")
    assert result.returncode == 0, result.stderr[-3000:]

    killed = _config(tmp_path, prompts, tiny_model, tmp_path / "killed")
    shards = tmp_path / "killed" / "teacher_samples"
    command = [sys.executable, "-m", "openrlhf_distill.cli", "run", "--config", killed, "--until_stage", "sft_data"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(shards.glob("shard-*.jsonl"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and the sampling stage it runs
    proc.wait()
    done_shards = len(list(shards.glob("shard-*.jsonl")))
    assert 3 <= done_shards < len(QUESTIONS) // 4, "killed too late: the stage had finished"
    record = json.load(open(tmp_path / "killed" / "stages" / "teacher_samples.json"))
    assert record["status"] == "started"

    result = _run(killed, "--until_stage", "sft_data")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[resume] teacher_samples" in result.stdout
    assert _outputs(str(tmp_path / "killed")) == _outputs(str(tmp_path / "whole"))
    # Nothing left half-written.
    leftovers = [p for p in (tmp_path / "killed").rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]
    assert not leftovers


def _processes_naming(text: str) -> list[int]:
    """Pids of the processes whose command line names ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_killed_driver_takes_its_stage_with_it_and_leaves_the_run_free(tmp_path, prompts, tiny_model):
    run_dir = tmp_path / "orphan"
    config = _config(tmp_path, prompts, tiny_model, run_dir)
    shards = run_dir / "teacher_samples"
    command = [sys.executable, "-m", "openrlhf_distill.cli", "run", "--config", config, "--until_stage", "sft_data"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(shards.glob("shard-*.jsonl")):
        time.sleep(0.05)
    stage = [pid for pid in _processes_naming(str(shards)) if pid != driver.pid]
    assert stage, "the sampling stage was not running"
    driver.kill()  # SIGKILL to the driver alone: nothing of ours runs in it to stop the stage
    driver.wait()
    deadline = time.time() + 30
    while time.time() < deadline and _processes_naming(str(shards)):
        time.sleep(0.1)
    assert not _processes_naming(str(shards)), "the stage outlived its driver"
    result = _run(config, "--until_stage", "sft_data")  # neither the run folder nor the stage's output is held
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[resume] teacher_samples" in result.stdout


@pytest.mark.slow
def test_a_rerun_skips_what_is_done_and_a_changed_setting_reruns_from_there(tmp_path, prompts, tiny_model):
    path = _config(
        tmp_path,
        prompts,
        tiny_model,
        tmp_path / "run",
        teacher={"model": tiny_model, "temperatures": [1.0], "n_per_temperature": 2, "max_new_tokens": 8},
    )
    assert _run(path, "--until_stage", "sft_data").returncode == 0
    again = _run(path, "--until_stage", "sft_data")
    assert again.returncode == 0
    assert all(f"[  done] {k}" in again.stdout for k in ("teacher_samples", "teacher_labels", "sft_data"))
    changed = _run(path, "--until_stage", "sft_data", "--vote.min_ratio", "0.9", "--dry_run")
    assert "[  done] teacher_samples" in changed.stdout
    assert "[ stale] teacher_labels" in changed.stdout and "[ stale] sft_data" in changed.stdout
    record = json.load(open(tmp_path / "run" / "stages" / "teacher_samples.json"))
    assert record["status"] == "done" and record["samples"] == 2 * len(QUESTIONS) and record["tokens"] > 0


def test_a_second_run_in_a_run_folder_in_use_is_refused_and_a_dead_holder_never_blocks(tmp_path, prompts, tiny_model):
    from openrlhf_distill.pipeline.runner import run_folder_lock

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = _config(
        tmp_path,
        prompts,
        tiny_model,
        run_dir,
        teacher={"model": tiny_model, "temperatures": [1.0], "n_per_temperature": 1, "max_new_tokens": 4},
    )
    with run_folder_lock(str(run_dir)):
        busy = _run(config, "--until_stage", "teacher_samples", timeout=120)
    assert busy.returncode == 2, busy.stderr[-2000:]
    assert f"{run_dir} is in use by another `openrlhf-distill run` (pid {os.getpid()}" in busy.stderr
    assert sorted(os.listdir(run_dir)) == [".lock"]  # the refused run wrote nothing
    # The lock went with its holder: the same run now goes through.
    free = _run(config, "--until_stage", "teacher_samples", timeout=300)
    assert free.returncode == 0 and "in use by another" not in free.stderr, free.stderr[-2000:]
    assert (run_dir / "teacher_samples").is_dir()


def test_a_stale_evaluation_starts_without_the_samples_of_the_model_it_evaluated_before(tmp_path, monkeypatch):
    # The eval command resumes from complete sample shards in RESULT_samples/; when its model changed (the stage
    # is stale), those are another model's samples and must go with the old result, or it would report them.
    out = str(tmp_path / "eval" / "student_base_seed0.json")
    work = stages.samples_dir_for(out)
    seen = []

    def evaluate(command, *_):
        seen.append(os.path.exists(work))
        os.makedirs(work, exist_ok=True)
        with open(out, "w") as f:
            f.write("{}")
        return 0

    monkeypatch.setattr(runner, "_run_logged", evaluate)
    before = stages.Stage("eval", "eval_student_base@seed0", 0, ["eval", "--model", "a"], out, work=[work])
    runner.run_stages([before], str(tmp_path), log=lambda _: None)
    after = stages.Stage("eval", "eval_student_base@seed0", 0, ["eval", "--model", "b"], out, work=[work])
    assert runner.run_stages([after], str(tmp_path), log=lambda _: None) == {"eval_student_base@seed0": "stale"}
    assert seen == [False, False]
    # The plan names that folder for every evaluation stage.
    config = cfg.load_config(None, ["--data.source", "toy", "--run_dir", str(tmp_path / "run")])
    evals = [stage for stage in stages.plan(config) if stage.name == "eval"]
    assert evals and all(stage.work == [stages.samples_dir_for(stage.output)] for stage in evals)


def test_adaptive_teacher_sampling_gets_the_vote_rule_the_label_stages_use(tmp_path):
    from openrlhf_distill import cli
    from openrlhf_distill.voting import vote_rule_from_args

    config = cfg.load_config(
        None,
        [
            "--data.source",
            "toy",
            "--seeds",
            "0",
            "--run_dir",
            str(tmp_path),
            "--teacher.adaptive.rule",
            "exact",
            "--vote.min_ratio",
            "0.6",
            "--vote.max_temperature",
            "0.7",
        ],
    )
    planned = {stage.key: stage for stage in stages.plan(config)}
    argv = planned["teacher_samples"].argv
    args = cli.build_parser().parse_args(argv)
    assert getattr(args, "adaptive.rule") == "exact" and getattr(args, "adaptive.round_size") == 1
    rule = vote_rule_from_args(args)
    label_args = cli.build_parser().parse_args(planned["labels@seed0"].argv)
    assert rule == vote_rule_from_args(label_args) and rule.min_ratio == 0.6
    assert getattr(args, "vote.max_temperature") == getattr(label_args, "vote.max_temperature") == 0.7
    assert "--adaptive.rule" not in planned["student_samples@seed0"].argv  # the student has no vote to settle
    off = cfg.load_config(None, ["--data.source", "toy", "--seeds", "0", "--run_dir", str(tmp_path)])
    assert "--adaptive.rule" not in {stage.key: stage for stage in stages.plan(off)}["teacher_samples"].argv
    with pytest.raises(cfg.ConfigError, match="does not vote"):
        cfg.check(
            cfg.load_config(None, ["--data.source", "toy", "--teacher.adaptive.rule", "beta", "--labeller", "judge"])
        )


def test_the_vote_settings_reach_the_label_commands(tmp_path):
    config = cfg.load_config(
        None,
        [
            "--data.source",
            "toy",
            "--run_dir",
            str(tmp_path),
            "--vote.min_valid_share",
            "0.25",
            "--vote.ratio_of",
            "all",
            "--vote.max_temperature",
            "0.7",
        ],
    )
    labels = [stage.argv for stage in stages.plan(config) if stage.argv[0] == "label"]
    assert labels and all(
        ["--vote.min_valid_share", "0.25"] == argv[argv.index("--vote.min_valid_share") :][:2]
        and "all" in argv
        and argv[-2:] == ["--vote.max_temperature", "0.7"]
        for argv in labels
    )
    default = cfg.load_config(None, ["--data.source", "toy", "--run_dir", str(tmp_path)])
    assert all("--vote.max_temperature" not in s.argv for s in stages.plan(default) if s.argv[0] == "label")


def test_the_cluster_settings_reach_every_ppo_command(tmp_path):
    base = ["--data.source", "toy", "--run_dir", str(tmp_path), "--ppo.schemes", "rm,vote"]
    config = cfg.load_config(
        None, [*base, "--cluster.nodes", "2", "--cluster.gpus_per_node", "8", "--cluster.autoscaling", "true"]
    )
    ppo = [stage.argv for stage in stages.plan(config) if stage.argv[0] == "ppo"]
    assert len(ppo) == 2 and all(
        argv[argv.index("--distill.cluster.nodes") :][:2] == ["--distill.cluster.nodes", "2"]
        and "--distill.cluster.autoscaling" in argv
        for argv in ppo
    )
    default = cfg.load_config(None, base)
    assert all("--distill.cluster.autoscaling" not in s.argv for s in stages.plan(default) if s.argv[0] == "ppo")
    with pytest.raises(cfg.ConfigError, match="cluster.autoscaling"):
        cfg.load_config(None, [*base, "--cluster.autoscaling", "maybe"])


def test_plans_spell_flags_as_users_type_them_and_run_folders_made_before_stay_done(tmp_path):
    """Our commands' flags are spelled as OpenRLHF spells its own (--max_new_tokens); plans made before wrote
    --max-new-tokens. A fingerprint hashes the earlier spelling, so a run folder made then is not redone."""
    import dataclasses

    quickstart = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "configs", "quickstart_cpu.yaml"
    )
    config = cfg.load_config(quickstart, ["--run_dir", str(tmp_path)])
    planned = stages.plan(config)
    words = [w for s in planned for w in s.argv if w.startswith("--") and "." not in w]
    assert "--max_new_tokens" in words and "--n_per_temperature" in words
    assert not [w for w in words if "-" in w[2:] and w[2:].replace("-", "_") in {x[2:] for x in words}]

    def earlier(stage):  # the plan as it was written before: our flags in kebab case
        kebab = [w.replace("_", "-") if w.startswith("--") and "." not in w else w for w in stage.argv]
        return dataclasses.replace(stage, argv=kebab)

    assert runner.fingerprints([earlier(s) for s in planned]) == runner.fingerprints(planned)
    changed = cfg.load_config(
        quickstart,
        ["--run_dir", str(tmp_path), "--student.max_new_tokens", "77"],
    )
    assert runner.fingerprints(stages.plan(changed)) != runner.fingerprints(planned)  # values still count


def test_a_stage_log_keeps_the_text_of_its_output_without_terminal_control(tmp_path, capsys):
    # a progress bar's redraws and colours, as tqdm and rich write them on a terminal
    code = (
        "import sys; sys.stdout.write('\\x1b[32mstep\\x1b[0m 1\\n'); "
        "sys.stdout.write(' 50%|#####     | 5/10\\r100%|##########| 10/10\\x1b[A\\n'); sys.stdout.write('done\\n')"
    )
    log = tmp_path / "stage.log"
    assert runner._run_logged([sys.executable, "-c", code], str(log), "run") == 0
    text = log.read_text()
    assert "step 1\n" in text and "100%|##########| 10/10\n" in text and "done\n" in text
    assert not any(ch in text for ch in "\x1b\r")
    assert "\x1b[32m" in capsys.readouterr().out  # the console still gets the colours


def test_a_stale_report_goes_whole_so_the_new_one_never_meets_an_old_report_it_would_refuse(tmp_path, monkeypatch):
    # report.md and plots/ written by an earlier version carry no record of being ours: the runner removes them
    # with results.json when the report is stale, before the new report command (and its output contract) runs
    config = cfg.load_config(None, ["--data.source", "toy", "--run_dir", str(tmp_path)])
    (report,) = [s for s in stages.plan(config) if s.name == "report"]
    assert {os.path.basename(p) for p in report.work} == {"report.md", "plots"}
    for path in (report.output, *report.work[:1]):
        with open(path, "w") as f:
            f.write("an earlier version's\n")
    os.makedirs(report.work[1])
    seen = []
    monkeypatch.setattr(runner, "_run_logged", lambda *_: seen.append(sorted(os.listdir(tmp_path))) or 0)
    old = stages.Stage("report", "report", None, ["report", "x"], report.output, work=report.work)
    monkeypatch.setattr(runner, "_counts", lambda stage: {})
    runner.run_stages([old], str(tmp_path), forced={"report"}, log=lambda _: None)
    assert seen and not {"report.md", "plots", "results.json"} & set(seen[0])
