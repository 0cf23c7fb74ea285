"""OpenRLHF's own PPO loop (train_ppo_ray: Ray, vLLM-CPU rollouts, DeepSpeed) run through `openrlhf-distill ppo`
on this CPU machine, one run per reward scheme, with tiny offline models.

- vote: on an easy synthetic task the mean reward rises over 30 steps, and after training the rollout engine
  gives the saved actor's log-probabilities (the weight sync really delivered the trained weights);
- gold: logs gold accuracy, and a run killed mid-way continues from OpenRLHF's checkpoint to the same end;
- rm + GAE: the critic trains, and rewards are normalised with the RM's stored mean/std;
- hybrid: run on a three-node Ray cluster, submitted as a Ray job (tests/test_ray_cluster.py): the RM server
  scores every rollout sample, called from the rollout actors of two nodes.
The judge scheme builds the same command as rm (tests/test_ppo_plan.py) and is not run a second time.
"""

import json
import os
import random
import re
import subprocess
import sys

import pytest

from openrlhf_distill.records import encode_reward_label

pytestmark = pytest.mark.slow

LUCKY = "7"  # the easy task: every prompt's pseudo-label (and gold) is 7


def _digit_policy(out_dir: str, base_dir: str) -> str:
    """The tiny model taught to answer any prompt with one random digit and stop: the starting policy of the
    easy task, right about 1 time in 10, so that RL has something to reinforce. Plain torch (set-up only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    torch.manual_seed(0)
    rng = random.Random(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        rows = []
        for _ in range(32):
            messages = [{"role": "user", "content": f"Pick a number {rng.randrange(999)}"}]
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            r = tokenizer(str(rng.randrange(10)) + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
            rows.append((p + r, [-100] * len(p) + r))
        width = max(len(ids) for ids, _ in rows)
        ids = torch.tensor([x + [tokenizer.pad_token_id or 0] * (width - len(x)) for x, _ in rows])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in rows])
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 1.5, loss.item()  # ln 10 + ~0 for the end token, over 2 tokens: about 1.15
    model.to(torch.bfloat16).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def easy_task(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("easy_task")
    policy = _digit_policy(str(root / "policy"), tiny_model)
    prompts = root / "rl_prompts.jsonl"
    with open(prompts, "w") as f:
        for i in range(240):
            label = encode_reward_label(id=str(i), task="arithmetic", label=LUCKY, gold=LUCKY)
            row = {"input": [{"role": "user", "content": f"Pick a number {i}"}], "distill_label": label}
            f.write(json.dumps(row) + "\n")
    return {"root": root, "policy": policy, "prompts": str(prompts)}


def _common_flags(policy: str, prompts: str, out: str, *, steps: int) -> list[str]:
    # 8 prompts x 4 samples per step; the data set is cut to `steps` steps, one episode.
    return [
        "--actor.model_name_or_path",
        policy,
        "--data.prompt_dataset",
        prompts,
        "--data.max_samples",
        str(8 * steps),
        "--data.input_key",
        "input",
        "--data.apply_chat_template",
        "--data.max_len",
        "48",
        "--rollout.max_new_tokens",
        "4",
        "--rollout.batch_size",
        "8",
        "--rollout.micro_batch_size",
        "8",
        "--rollout.n_samples_per_prompt",
        "4",
        "--train.batch_size",
        "32",
        "--train.micro_batch_size",
        "8",
        "--train.seed",
        "1",
        "--ckpt.output_dir",
        out,
        "--ckpt.path",
        os.path.join(out, "ckpt"),
    ]


def _run(args: list[str], out: str) -> tuple[dict, list[dict]]:
    command = [sys.executable, "-m", "openrlhf_distill.cli", "ppo", *args, "--log", out + ".log"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    run_dir = os.path.join(out, "distill_ppo")
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        steps = [json.loads(line) for line in f]
    assert os.path.exists(os.path.join(out, "model.safetensors")), "the trained actor was not saved"
    return summary, steps


def test_vote_reward_rises_and_the_rollout_engine_follows_the_actor(easy_task):
    from openrlhf_distill.ppo import model_logprobs

    out = str(easy_task["root"] / "vote")
    flags = _common_flags(easy_task["policy"], easy_task["prompts"], out, steps=30)
    extra = "--actor.adam.lr 1e-3 --actor.lr_warmup_ratio 0 --actor.lr_scheduler constant"
    extra += " --algo.advantage.estimator group_norm --algo.kl.init_coef 0 --distill.sync_check"
    summary, steps = _run(["--reward.scheme", "vote", *flags, *extra.split()], out)
    rewards = [s["rollout/reward_mean"] for s in steps]
    print("vote reward per step:", [round(r, 3) for r in rewards])
    assert len(steps) == 30
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert first < 0.3  # a random digit: about 0.1
    assert last >= first + 0.3, (first, last)
    # The reward function's per-sample logs reached OpenRLHF's step metrics; label and gold agree here.
    assert all(s["distill/pseudo_correct"] == s["distill/gold_correct"] == s["rollout/reward_mean"] for s in steps)

    # Weight sync: the engine's log-probs of a fixed text match the saved actor's (bf16 precision) and are far
    # from the initial policy's. With the stock NCCL sync the engine silently keeps the initial weights.
    probe = json.load(open(os.path.join(out, "distill_ppo", "engine_probe.json")))
    engine = probe["engine_logprobs"]

    def mean_gap(model_dir):
        theirs = model_logprobs(model_dir, probe["token_ids"])
        return sum(abs(a - b) for a, b in zip(theirs, engine, strict=True)) / len(engine)

    to_actor, to_initial = mean_gap(out), mean_gap(easy_task["policy"])
    print(f"engine log-prob gap: to the saved actor {to_actor:.4f}, to the initial policy {to_initial:.4f}")
    assert to_actor < 0.05
    assert to_initial > 10 * to_actor
    assert summary["sync_check"]["mean_abs_diff_vs_saved_actor"] == pytest.approx(to_actor, abs=1e-6)


def test_gold_scheme_runs_and_a_killed_run_continues_from_its_checkpoint(easy_task):
    """OpenRLHF checkpoints every 3 steps; the run is killed (SIGKILL of its whole process group: driver, Ray,
    vLLM) after step 5, and the same command with --ckpt.load_enable continues from step 4 to the end. What the
    pipeline's runner does with a killed trainer stage (tests/test_pipeline.py)."""
    import signal
    import time

    out = str(easy_task["root"] / "gold")
    dev = easy_task["root"] / "dev.jsonl"
    dev.write_text(
        "".join(
            json.dumps(
                {"id": i, "prompt": [{"role": "user", "content": f"Pick a number {1000 + i}"}], "pseudo_label": LUCKY}
            )
            + "\n"
            for i in range(40)
        )
    )
    flags = _common_flags(easy_task["policy"], easy_task["prompts"], out, steps=12) + ["--ckpt.save_steps", "3"]
    # The checkpoint choice (`selection`): the actor saved every 3 steps; --ckpt.save_hf keeps the step folders.
    flags += ["--task", "arithmetic", "--distill.select.dev", str(dev), "--ckpt.save_hf"]
    # A learning rate at which the actor's greedy answer moves within 12 steps, so the candidates differ.
    flags += "--actor.adam.lr 1e-3 --actor.lr_warmup_ratio 0 --actor.lr_scheduler constant".split()
    command = [sys.executable, "-m", "openrlhf_distill.cli", "ppo", "--reward.scheme", "gold", *flags]
    metrics = os.path.join(out, "distill_ppo", "metrics.jsonl")
    with open(out + ".killed.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 5:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = sum(1 for _ in open(metrics))
    assert 5 <= killed_at < 12, killed_at

    summary, steps = _run(["--reward.scheme", "gold", *flags, "--ckpt.load_enable"], out)
    with open(out + ".log") as f:
        rerun_steps = [int(m) for m in re.findall(r"Global step (\d+):", f.read())]
    # From the last checkpoint (a multiple of 3 steps), not from step 1. OpenRLHF saves a step's checkpoint before
    # it prints the step's line, so the kill may land after the checkpoint of the step after the last line read.
    assert (rerun_steps[0] - 1) % 3 == 0 and 4 <= rerun_steps[0] <= killed_at + 2, (rerun_steps, killed_at)
    assert rerun_steps[-1] == 12
    # the killed run's steps before the rerun's first, then the rerun's (a step whose line the kill cut is missing)
    expected = [s for s in range(1, killed_at + 1) if s < rerun_steps[0]] + list(range(rerun_steps[0], 13))
    assert [s["step"] for s in steps] == expected
    assert summary["steps"] == len(expected)
    assert all(s["distill/has_gold"] == 1.0 and s["distill/gold_correct"] == s["rollout/reward_mean"] for s in steps)

    # The actor chosen by agreement with the dev pseudo-labels is the run's model: its weights are the output
    # folder's, and it answers the dev questions as the choice measured.
    from openrlhf_distill.evaluation import EvalSettings, evaluate
    from openrlhf_distill.selection import read_dev_questions

    selection = json.load(open(os.path.join(out, "distill_ppo", "selection.json")))
    candidates = selection["candidates"]
    # Step 0, every actor saved whole (the kill may cut the killed run's last HF save short, or before it; the
    # rerun's are all there; OpenRLHF writes the tokenizer last), the end.
    ckpt = os.path.join(out, "ckpt")
    whole = [n for n in os.listdir(ckpt) if n.endswith("_hf") and os.path.isfile(f"{ckpt}/{n}/tokenizer_config.json")]
    saved = sorted(int(n[len("global_step") : -len("_hf")]) for n in whole)
    assert [c["step"] for c in candidates] == [0, *[s for s in saved if s < 12], 12]
    assert {s for s in range(rerun_steps[0], 12) if s % 3 == 0} <= set(saved) and 12 in saved
    best = max(c["dev_agreement"] for c in candidates)
    chosen = next(c for c in candidates if c["dev_agreement"] == best)
    assert selection["chosen_step"] == chosen["step"] == summary["selection"]["chosen_step"]
    same_weights = {0: easy_task["policy"], 12: os.path.join(out, "ckpt", "global_step12_hf")}
    source = same_weights.get(chosen["step"], chosen["path"])
    with (
        open(os.path.join(out, "model.safetensors"), "rb") as a,
        open(os.path.join(source, "model.safetensors"), "rb") as b,
    ):
        assert a.read() == b.read(), f"the run's model is not the chosen step {chosen['step']}"
    again = evaluate(
        out,
        read_dev_questions(str(dev)),
        "arithmetic",
        str(easy_task["root"] / "again.json"),
        EvalSettings(max_new_tokens=512),
        backend="hf",
        progress=False,
    )
    assert again["accuracy"] == chosen["dev_agreement"]
    print("dev agreement by step:", [(c["step"], c["dev_agreement"]) for c in candidates])


@pytest.fixture(scope="module")
def shifted_rm(tmp_path_factory, tiny_model):
    """A reward model whose stored normalisation is mean 1000, std 2: normalised rewards sit near -500, far from
    raw rewards (order 1) and from uninitialised buffers, so the logged rewards show which were used."""
    from openrlhf_distill.toy.tiny_model import build_tiny_reward_model

    rm_dir = str(tmp_path_factory.mktemp("rm") / "rm")
    build_tiny_reward_model(rm_dir, tiny_model)
    config_path = os.path.join(rm_dir, "config.json")
    config = json.load(open(config_path))
    config.update(mean=1000.0, std=2.0)
    json.dump(config, open(config_path, "w"))
    return rm_dir


def test_rm_scheme_with_gae_trains_the_critic_and_uses_the_stored_mean_and_std(easy_task, shifted_rm):
    out = str(easy_task["root"] / "rm")
    flags = _common_flags(easy_task["policy"], easy_task["prompts"], out, steps=3)
    extra = f"--reward.model_name_or_path {shifted_rm} --algo.advantage.estimator gae --critic.adam.lr 1e-3"
    extra += " --critic.lr_warmup_ratio 0 --critic.save_value_network"
    summary, steps = _run(["--reward.scheme", "rm", *flags, *extra.split()], out)
    assert summary["steps"] == 3
    rewards = [s["rollout/reward_mean"] for s in steps]
    assert all(-520 < r < -480 for r in rewards), rewards  # (raw - 1000) / 2 with |raw| of order 1
    critic_losses = [s["critic_loss"] for s in steps]
    assert all(loss > 0 for loss in critic_losses) and critic_losses[0] != critic_losses[-1], critic_losses
    assert any(s.get("critic_grad_norm", 0) > 0 for s in steps)
    assert "normalize_enable" in summary["command"]
