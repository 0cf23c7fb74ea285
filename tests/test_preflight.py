"""`run` checks every stage's command before the first stage runs (and `--dry_run` does the same): a setting
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
    for dry_run in (["--dry_run"], []):  # the dry run, and a real run, which stops before its first stage
        assert cli.main(_argv(recipe, models, run_dir, *overrides, *dry_run)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("openrlhf-distill run: error: stage ") and says in err, err
        assert "\n" not in err and "Traceback" not in err
        assert not os.path.exists(run_dir)  # nothing ran, nothing was written


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_as_written_passes_the_check(recipe, models, tmp_path, capsys):
    assert cli.main(_argv(recipe, models, str(tmp_path / "run"), "--dry_run")) == 0
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


def test_the_dry_run_states_the_run_folders_size_from_the_students_shape(models, tmp_path, capsys):
    """Llama-3.2-1B's shape (its config.json fields): 1.24B parameters, 2.5 GB in bf16 per trainer stage's model;
    DeepSpeed's checkpoints are deleted as stages finish unless keep_checkpoints says otherwise."""
    shaped = tmp_path / "Llama-3.2-1B-shaped"
    shaped.mkdir()
    (shaped / "config.json").write_text(
        '{"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16, "vocab_size": 128256, '
        '"intermediate_size": 8192, "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": true}'
    )
    argv = _argv("gsm8k_llama3", models, str(tmp_path / "run"), "--student.model", str(shaped), "--dry_run")
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    trainers = out.count("--ckpt.output_dir")  # 3 seeds x (SFT, RM, teacher-only RM, 4 PPO runs)
    assert trainers == 21
    params = 16 * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192) + 128256 * 2048  # layers + tied embeddings
    assert round(params / 1e9, 2) == 1.24  # Llama-3.2-1B's published size
    assert f"{trainers * 2 * params / 1e9:.1f} GB of models ({trainers} x 2.5 GB: a 1.24B-parameter student" in out
    assert "DeepSpeed's checkpoints deleted as each stage finishes" in out
    assert cli.main([*argv, "--keep_checkpoints", "true"]) == 0
    assert "keep_checkpoints: true keeps DeepSpeed's checkpoints" in capsys.readouterr().out
