"""`run` checks every stage's command before the first stage runs (and `--dry-run` does the same): a setting
that OpenRLHF or the GPU plan would refuse days later, after teacher sampling, SFT and RM training, is refused at
once, naming the stage, with nothing written."""

import os
import subprocess
import sys

import pytest

from openrlhf_distill import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The cluster recipes' configs and the flags their scripts add (models as local folders).
RECIPES = {
    "gsm8k_llama3": ("Llama-3.1-70B-Instruct", []),
    "mmlu_pro_llama3": ("Llama-3.1-8B-Instruct", []),
    "open_ended_judge": ("Llama-3.1-70B-Instruct", ["--data.train", "INSTRUCTIONS"]),
}

# Each a class of late failure: (overrides, what the one-line refusal must say)
REFUSED = {
    "more GPUs than cluster": (
        [
            "--ppo.critic.num_gpus_per_node",
            "4",
            "--ppo.reward.num_gpus_per_node",
            "4",
            "--ppo.train.colocate_all",
            "false",
            "--ppo.train.colocate_actor_ref",
            "true",
        ],
        "the GPU plan needs",
    ),
    "unknown sft flag": (["--sft.train.batch_sise", "64"], "stage sft@seed0 would fail"),
    "bad sft value": (["--sft.train.batch_size", "abc"], "invalid int value: 'abc'"),
    "unknown rm flag": (["--rm.adam.lrr", "1e-6"], "stage rm@seed0 would fail"),
    "unknown ppo flag": (["--ppo.actor.adam.lrr", "1e-6"], "unrecognized arguments: --actor.adam.lrr"),
    "bad ppo value": (["--ppo.rollout.temperature", "-1"], "--rollout.temperature: must be a number in [0, 2]"),
    "colocate_all, vLLM short of the actor's GPUs": (["--ppo.vllm.num_engines", "2"], "vllm_num_engines"),
    "colocated ref smaller than the actor": (["--ppo.ref.num_gpus_per_node", "4"], "colocate actor and ref"),
    "colocated reward smaller than the critic": (
        ["--ppo.train.colocate_critic_reward", "true", "--ppo.reward.num_gpus_per_node", "4"],
        "colocate critic and reward",
    ),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Stand-ins for the cluster's model folders (a config.json each; nothing is loaded) and a prompt file."""
    root = tmp_path_factory.mktemp("models")
    for name in ("Llama-3.1-70B-Instruct", "Llama-3.1-8B-Instruct", "Llama-3.2-1B-Instruct"):
        (root / name).mkdir()
        (root / name / "config.json").write_text('{"model_type": "llama"}')
    (root / "instructions.jsonl").write_text('{"id": "i1", "task": "open", "prompt": "Write a haiku."}\n')
    return root


def _argv(recipe: str, models, run_dir: str, *extra: str) -> list[str]:
    teacher, flags = RECIPES[recipe]
    flags = [str(models / "instructions.jsonl") if f == "INSTRUCTIONS" else f for f in flags]
    return [
        "run",
        "--config",
        os.path.join(REPO, "recipes", "configs", f"{recipe}.yaml"),
        "--teacher.model",
        str(models / teacher),
        "--student.model",
        str(models / "Llama-3.2-1B-Instruct"),
        "--run_dir",
        run_dir,
        *flags,
        *extra,
    ]


@pytest.mark.parametrize("case", REFUSED)
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_stage_is_checked_before_the_first_runs(recipe, case, models, tmp_path, capsys):
    overrides, says = REFUSED[case]
    if recipe == "open_ended_judge" and case == "unknown rm flag":
        overrides = ["--rm.adam.lrr", "1e-6"]  # the judge recipe has one RM too
    run_dir = str(tmp_path / "run")
    for dry_run in (["--dry-run"], []):  # the dry run, and a real run, which stops before its first stage
        assert cli.main(_argv(recipe, models, run_dir, *overrides, *dry_run)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("openrlhf-distill run: error: stage ") and says in err, err
        assert "\n" not in err and "Traceback" not in err
        assert not os.path.exists(run_dir)  # nothing ran, nothing was written


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_as_written_passes_the_check(recipe, models, tmp_path, capsys):
    assert cli.main(_argv(recipe, models, str(tmp_path / "run"), "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "every stage's command accepted" in out and "(GPUs: 8 of 8)" in out


def test_the_recipe_script_itself_refuses_a_typo_before_any_stage(models, tmp_path):
    """The shell recipe, as a user starts it: a typo in a PPO flag is refused by the dry run and by the real
    run alike, before sampling starts."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    env |= {"MODELS": str(models), "RUN_DIR": str(tmp_path / "run")}
    result = subprocess.run(
        ["bash", os.path.join(REPO, "recipes", "gsm8k_llama3.sh"), "--ppo.actor.adam.lrr", "1e-6"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "stage rl_rm@seed0 would fail" in result.stderr and "--actor.adam.lrr" in result.stderr
    assert not os.path.exists(tmp_path / "run")
