"""Absolute paths in every command the pipeline and `ppo` build (Ray workers on other nodes, and a `ray job submit`
driver, have other working folders), a relative path refused where the run joins a cluster on other machines, and
fingerprints that keep the config's own spelling (a run started before the commands carried absolute paths is not
redone)."""

import os

import pytest

from openrlhf_distill import cluster_paths, ppo
from openrlhf_distill.compat.flags import TRAIN_PPO_RAY, flag_value, with_flag_value
from openrlhf_distill.pipeline import config as cfg
from openrlhf_distill.pipeline import runner, stages


@pytest.fixture
def no_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv(cluster_paths.RAY_JOB_ENV, raising=False)


@pytest.mark.parametrize(
    "address, remote",
    [
        ("", False),
        ("127.0.0.1:6379", False),
        ("localhost:6379", False),
        ("local", False),
        ("[::1]:6379", False),
        ("auto", False),
        ("10.0.0.5:6379", True),
        ("ray://head.cluster:10001", True),
        ("http://10.0.0.5:8265", True),
    ],
)
def test_a_ray_address_on_another_machine_makes_relative_paths_untrustworthy(no_cluster, monkeypatch, address, remote):
    assert (cluster_paths.remote_cluster(address) is not None) == remote
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert (cluster_paths.remote_cluster() is not None) == remote  # the environment's address counts too


def test_a_submitted_ray_job_makes_relative_paths_untrustworthy(no_cluster, monkeypatch):
    monkeypatch.setenv(cluster_paths.RAY_JOB_ENV, '{"runtime_env": {"working_dir": "gcs://_ray_pkg_x.zip"}}')
    assert "ray job submit" in cluster_paths.remote_cluster("127.0.0.1:6379")


def test_local_paths_become_absolute_and_hub_ids_stay(no_cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "student").mkdir(parents=True)
    out = cluster_paths.absolute(
        {"run_dir": "runs/a", "data.test": None, "home": "~/prompts.jsonl"},
        {"student.model": "models/student", "teacher.model": "Qwen/Qwen2.5-7B-Instruct", "judge.model": None},
    )
    assert out == {
        "run_dir": str(tmp_path / "runs" / "a"),
        "data.test": None,
        "home": os.path.expanduser("~/prompts.jsonl"),
        "student.model": str(tmp_path / "models/student"),
        "teacher.model": "Qwen/Qwen2.5-7B-Instruct",
        "judge.model": None,
    }


def test_a_relative_path_is_refused_when_the_run_joins_a_remote_cluster(no_cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"run_dir: relative path 'runs/a', but the run joins the Ray cluster at "
        r"10\.0\.0\.5:6379.*absolute path on storage every node sees",
    ):
        cluster_paths.absolute({"run_dir": "runs/a"}, ray_address="10.0.0.5:6379")
    # absolute paths and Hub ids are what a remote run must be given, and pass
    assert cluster_paths.absolute({"run_dir": "/shared/runs/a"}, {"m": "org/model"}, "10.0.0.5:6379") == {
        "run_dir": "/shared/runs/a",
        "m": "org/model",
    }


def test_the_pipeline_plans_absolute_paths_with_the_fingerprints_of_the_config_as_written(
    no_cluster, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.jsonl").write_text("")
    config = cfg.load_config(
        None, ["--data.source", "toy", "--seeds", "0,1", "--run_dir", "runs/demo", "--ppo.schemes", "rm,gold"]
    )
    absolute, written = cfg.with_absolute_paths(config)
    planned = stages.plan(absolute)
    assert absolute["run_dir"] == str(tmp_path / "runs" / "demo") and config["run_dir"] == "runs/demo"
    for stage in planned:
        assert os.path.isabs(stage.output), stage.key
        for arg in stage.argv:  # every path the commands carry names its folder from anywhere
            assert "runs/demo" not in arg or arg.startswith(str(tmp_path)), (stage.key, arg)
    # The same fingerprints as the plan of the relative config, which is what runs recorded before.
    assert runner.fingerprints(planned, written) == runner.fingerprints(stages.plan(config))
    assert runner.fingerprints(planned) != runner.fingerprints(stages.plan(config))


def test_the_pipeline_refuses_a_relative_run_dir_inside_a_ray_job_before_any_stage(no_cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cluster_paths.RAY_JOB_ENV, "{}")
    config = cfg.load_config(None, ["--data.source", "toy", "--run_dir", "runs/demo"])
    with pytest.raises(cfg.ConfigError, match="run_dir: relative path 'runs/demo', but this is a `ray job submit`"):
        cfg.with_absolute_paths(config)
    absolute, written = cfg.with_absolute_paths({**config, "run_dir": str(tmp_path / "runs" / "demo")})
    assert written == {} and absolute["run_dir"] == str(tmp_path / "runs" / "demo")


def test_with_flag_value_replaces_both_spellings():
    argv = ["--a", "1", "--b=2", "--a=3"]
    assert with_flag_value(argv, "--a", "x") == ["--a", "x", "--b=2", "--a=x"] and argv[1] == "1"
    assert flag_value(with_flag_value(argv, "--b", "y"), "--b") == "y"


def test_ppo_commands_carry_absolute_paths(no_cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sft").mkdir()
    (tmp_path / "rm").mkdir()
    (tmp_path / "prompts.jsonl").write_text("")
    cli = TRAIN_PPO_RAY
    argv = [
        cli["actor_model"],
        "sft",
        f"{cli['reward_model']}=./rm",
        cli["prompt_dataset"],
        "prompts.jsonl,org/hub-prompts",
        cli["output_dir"],
        "out",
        cli["critic_model"],
        "org/critic",
    ]
    out = ppo.absolute_path_flags(argv)
    assert flag_value(out, cli["actor_model"]) == str(tmp_path / "sft")
    assert flag_value(out, cli["reward_model"]) == str(tmp_path / "rm")
    assert flag_value(out, cli["prompt_dataset"]) == f"{tmp_path / 'prompts.jsonl'},org/hub-prompts"
    assert flag_value(out, cli["output_dir"]) == str(tmp_path / "out")
    assert flag_value(out, cli["critic_model"]) == "org/critic"
    with pytest.raises(ValueError, match=rf"{cli['output_dir']}: relative path 'out', but the run joins"):
        ppo.absolute_path_flags(argv, ray_address="ray://head:10001")
