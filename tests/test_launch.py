"""What the adapter runs: the CPU engine's command and environment, and the GPU engine left as users run it."""

import os

import pytest

from openrlhf_distill.compat import launch, patches
from openrlhf_distill.compat.flags import TRAIN_RM, TRAIN_SFT, flag_value


def test_cpu_engine_runs_one_patched_process_with_the_distributed_env():
    plan = launch.plan(TRAIN_SFT, ["--data.dataset", "d.jsonl"], engine="cpu")
    assert plan.command[1:3] == ["-m", "openrlhf.cli.train_sft"]
    assert flag_value(plan.command, "--ds.attn_implementation") == "eager"
    assert {k: plan.env[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")} == {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
    }
    assert 1024 <= int(plan.env["MASTER_PORT"]) <= 65535
    assert plan.env["PYTHONPATH"].split(os.pathsep)[0] == patches.BOOT_DIR
    assert not flag_value(plan.command, "--eval.dataset")  # SFT needs none; only train_rm does


def test_cpu_engine_gives_train_rm_an_eval_set_unless_the_user_did():
    plan = launch.plan(TRAIN_RM, ["--data.dataset", "p.jsonl", "--data.dataset_split", "x"], engine="cpu")
    assert flag_value(plan.command, "--eval.dataset") == "p.jsonl"
    assert flag_value(plan.command, "--eval.split") == "x"
    mine = launch.plan(TRAIN_RM, ["--data.dataset", "p.jsonl", "--eval.dataset", "e.jsonl"], engine="cpu")
    assert flag_value(mine.command, "--eval.dataset") == "e.jsonl"
    assert mine.command.count("--eval.dataset") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ds.attn_implementation", "flash_attention_2"], "needs a GPU"),
        (["--ds.packing_samples"], "needs flash-attn"),
    ],
)
def test_cpu_engine_refuses_gpu_only_settings_with_a_clear_error(argv, message):
    with pytest.raises(ValueError, match=message):
        launch.plan(TRAIN_SFT, ["--data.dataset", "d.jsonl", *argv], engine="cpu")


def test_gpu_engine_is_the_deepspeed_launcher_with_the_users_flags_untouched():
    argv = ["--data.dataset", "d.jsonl", "--ds.attn_implementation", "flash_attention_2", "--ds.packing_samples"]
    plan = launch.plan(TRAIN_RM, argv, engine="gpu")
    assert os.path.basename(plan.command[0]) == "deepspeed"
    assert plan.command[1:] == ["--module", "openrlhf.cli.train_rm", *argv]
    assert "RANK" not in plan.env or plan.env["RANK"] == os.environ.get("RANK")


def test_cpu_engine_builds_torch_extensions_per_environment_and_clears_a_killed_builds_lock(tmp_path, monkeypatch):
    # A build lock left by a killed trainer made every later trainer wait on it for ever (a CI run hung so).
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    root = launch.plan(TRAIN_SFT, ["--data.dataset", "d.jsonl"], engine="cpu").env["TORCH_EXTENSIONS_DIR"]
    assert root.startswith(str(tmp_path))
    assert root == launch.plan(TRAIN_RM, ["--data.dataset", "p.jsonl"], engine="cpu").env["TORCH_EXTENSIONS_DIR"]

    for name, age in (("fused_adam", launch.STALE_BUILD_LOCK_S + 60), ("cpu_adam", 30)):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        lock = os.path.join(root, name, "lock")
        open(lock, "w").close()
        os.utime(lock, (os.path.getmtime(lock) - age,) * 2)
    launch.plan(TRAIN_SFT, ["--data.dataset", "d.jsonl"], engine="cpu")
    assert not os.path.exists(os.path.join(root, "fused_adam", "lock"))  # older than any build: removed
    assert os.path.exists(os.path.join(root, "cpu_adam", "lock"))  # a build that may be running: kept

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "mine"))
    assert launch.plan(TRAIN_SFT, [], engine="cpu").env["TORCH_EXTENSIONS_DIR"] == str(tmp_path / "mine")


def test_deepspeed_launcher_flags_go_before_the_module_for_multi_node_training_and_the_cpu_refuses_them():
    launcher = launch.launcher_argv(["hostfile=/job/hostfile", "num_nodes=2", "master_addr=10.0.0.1", "no_ssh_check"])
    assert launcher == [
        "--hostfile",
        "/job/hostfile",
        "--num_nodes",
        "2",
        "--master_addr",
        "10.0.0.1",
        "--no_ssh_check",
    ]
    command = launch.plan(TRAIN_SFT, ["--data.dataset", "d.jsonl"], engine="gpu", launcher=launcher).command
    assert command[1 : command.index("--module")] == launcher and command[-2:] == ["--data.dataset", "d.jsonl"]
    with pytest.raises(ValueError, match="CPU engine runs one process"):
        launch.plan(TRAIN_SFT, ["--data.dataset", "d.jsonl"], engine="cpu", launcher=launcher)
    with pytest.raises(ValueError, match="without dashes"):
        launch.launcher_argv(["--num_nodes=2"])


def test_the_pipeline_passes_each_trainers_launcher_flags(tmp_path):
    from openrlhf_distill.pipeline import config as cfg
    from openrlhf_distill.pipeline import stages

    config = cfg.load_config(
        None,
        [
            "--data.source",
            "toy",
            "--run_dir",
            str(tmp_path),
            "--sft.launcher",
            "hostfile=/h,num_nodes=2",
            "--rm.launcher",
            "num_nodes=2",
        ],
    )
    planned = {stage.key: stage.argv for stage in stages.plan(config)}
    sft, rm = planned["sft@seed0"], planned["rm@seed0"]
    assert " ".join(sft).count("--launcher") == 2 and "--launcher hostfile=/h --launcher num_nodes=2" in " ".join(sft)
    assert "--launcher num_nodes=2" in " ".join(rm) and "--launcher" not in " ".join(planned["rl_rm@seed0"])
