"""Pretraining the toy world's models from scratch on the CPU, and measuring them, in plain torch + transformers.

A model is a tiny Qwen2 (or Llama) with the tokenizer and chat template of `tiny_model` (the same tokenizer for
every model and every seed), trained on chat-formatted sequences ``<|im_start|>user\\n{question}<|im_end|>\\n
<|im_start|>assistant\\n{worked solution}<|im_end|>`` with the loss on the response and its end token only. The
prompt is tokenized exactly as a serving engine tokenizes it (the chat template rendered with the generation
prompt), so what the model learns is what vLLM and OpenRLHF will ask of it.

Measurements (`measure`) use batched HF generation and the task layer (`get_task("arithmetic")`), in bf16 by
default because vLLM's CPU build computes in bf16.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ..records import ANY_OBJECT, read_records
from ..tasks import get_task
from ..voting import PLURALITY, VoteRule, majority_vote
from .tiny_model import TinyModelSpec, build_tokenizer, random_causal_lm

# Head sizes vLLM's CPU attention accepts.
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 192, 256)


@dataclass(frozen=True)
class ToyModelSpec:
    """The shape of a toy model (the defaults are the toy world's teacher, 362k parameters). The tokenizer is not
    part of it: every toy model shares `tiny_model`' (512 tokens)."""

    arch: str = "qwen2"  # "qwen2" or "llama"
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4  # head size hidden / heads: 32, one vLLM's CPU attention supports
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024  # RoPE: costs nothing, and leaves room for long PPO generations

    def __post_init__(self):
        if self.arch not in ("qwen2", "llama"):
            raise ValueError(f"arch must be qwen2 or llama, not {self.arch!r}")
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size must divide into the heads, and the heads into the key/value heads")
        if self.head_dim not in VLLM_CPU_HEAD_SIZES:
            raise ValueError(
                f"head_dim {self.head_dim} is not one vLLM's CPU attention supports: {VLLM_CPU_HEAD_SIZES}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict:
        return asdict(self)


def toy_tokenizer():
    """The one tokenizer of the toy world: tiny_model's byte-level BPE + chat template, as built (before saving).

    Train and measure with the tokenizer a model folder loads as (`AutoTokenizer`, which for a Qwen2 folder is
    Qwen2Tokenizer and splits digits one per token), never with this object directly: its pre-tokenizer keeps
    digit runs together, so ids would not match what vLLM and OpenRLHF feed the model.
    """
    return build_tokenizer(TinyModelSpec())


def build_model(spec: ToyModelSpec, tokenizer, seed: int):
    return random_causal_lm(spec, tokenizer, seed)


def chat_prompts(tokenizer, questions: Sequence[str]) -> list[str]:
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) for each (question, response): the chat prompt, the response, the end token."""
    prompts = tokenizer(chat_prompts(tokenizer, [q for q, _ in pairs]), add_special_tokens=False).input_ids
    responses = tokenizer([r for _, r in pairs], add_special_tokens=False).input_ids
    eos = tokenizer.eos_token_id
    return [(p + r + [eos], len(p)) for p, r in zip(prompts, responses, strict=True)]


def _corpus_pairs(corpus) -> list[tuple[str, str]]:
    if isinstance(corpus, str):  # a corpus file of {"prompt", "response"} lines, as the world writes it
        corpus = [row for _, row in read_records(corpus, ANY_OBJECT)]
    return [(row["prompt"], row["response"]) for row in corpus]


def _learning_rate(step: int, steps: int, lr: float, warmup: int, min_lr_ratio: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def greedy_accuracy(model, tokenizer, records: Sequence[dict], *, batch_size: int = 128, max_new_tokens: int = 64):
    """Share of records whose greedy response's answer (read by the arithmetic task) equals gold.
    ``tokenizer`` must pad on the left."""
    task = get_task("arithmetic")
    responses = generate(
        model, tokenizer, [r["prompt"] for r in records], batch_size=batch_size, max_new_tokens=max_new_tokens
    )
    right = [
        task.is_equivalent(task.extract_answer(texts[0]), task.parse_gold(r))
        for texts, r in zip(responses, records, strict=True)
    ]
    return sum(right) / max(1, len(right))


def _adamw(model, lr: float, weight_decay: float):
    """AdamW with weight decay on the matrices only (not on norms and biases)."""
    import torch

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-8,
    )


def _batch_tensors(batch: Sequence[tuple[list[int], int]], pad: int):
    """(input_ids, labels) for encoded (ids, prompt length) pairs, right-padded; labels are -100 on the prompt and
    the padding, so the loss covers the response tokens only."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, prompt_len : len(ids)] = input_ids[row, prompt_len : len(ids)]
    return input_ids, labels


class _Calibration:
    """Stopping on a dev accuracy (see :func:`pretrain`): when to measure, and which checkpoint to keep."""

    def __init__(self, target, dev, tokenizer, eval_every: int, eval_below_loss: float, log_every: int):
        self.target, self.dev, self.tokenizer = target, dev, tokenizer
        self.eval_every, self.eval_below_loss, self.log_every = eval_every, eval_below_loss, log_every
        self.previous = None  # (dev accuracy, step, state) of the last measured checkpoint
        self.dev_curve: list[dict] = []
        self.kept: dict | None = None  # the checkpoint kept once the target is reached

    def due(self, done: int, smoothed_loss: float) -> bool:
        if self.target is None or smoothed_loss > self.eval_below_loss:
            return False
        past_half = self.previous and self.previous[0] >= self.target / 2
        every = self.eval_every // 2 if past_half else self.eval_every
        return done % max(1, every) == 0

    def reached(self, model, done: int) -> bool:
        """Measures the model on dev; True when it reached the target, with the kept checkpoint loaded."""
        model.eval()
        accuracy = greedy_accuracy(model, self.tokenizer, self.dev)
        model.train()
        self.dev_curve.append({"step": done, "accuracy": round(accuracy, 4)})
        if self.log_every:
            print(f"  step {done}: dev greedy accuracy {accuracy:.3f}", flush=True)
        if accuracy >= self.target:
            previous = self.previous
            if previous and abs(previous[0] - self.target) < abs(accuracy - self.target):
                model.load_state_dict(previous[2])
                self.kept = {"step": previous[1], "dev_accuracy": round(previous[0], 4)}
            else:
                self.kept = {"step": done, "dev_accuracy": round(accuracy, 4)}
            return True
        self.previous = (accuracy, done, {k: v.detach().clone() for k, v in model.state_dict().items()})
        return False


def pretrain(
    out_dir: str,
    corpus,
    spec: ToyModelSpec,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    target_accuracy: float | None = None,
    dev: Sequence[dict] | None = None,
    eval_every: int = 50,
    eval_below_loss: float = 0.3,
    warmup_ratio: float = 0.05,
    min_lr_ratio: float = 0.05,
    weight_decay: float = 0.01,
    threads: int | None = None,
    log_every: int = 0,
) -> dict:
    """Trains a toy model from scratch on ``corpus`` (rows with ``prompt`` and ``response``, or a JSON Lines path)
    and saves it, with the toy tokenizer, as an HF folder in ``out_dir`` (fp32 weights). Returns metrics.

    AdamW, linear warm-up then cosine decay over ``steps`` to ``min_lr_ratio * lr``, gradient clipping at 1.
    Batches are drawn at random with ``seed`` (which also seeds the weights); the loss is the mean over response
    tokens (the worked solution and its end token), never over the prompt.

    Calibration: with ``target_accuracy`` and ``dev`` (prompt records with gold, disjoint from everything the
    model is later measured on), greedy accuracy on ``dev`` is measured every ``eval_every`` steps once a moving
    average of the loss is below ``eval_below_loss`` (every ``eval_every // 2`` steps once past half the
    target), and training stops at the first measurement that reaches the target; of that checkpoint and the
    one measured before it, the one closer to the target is kept. These tiny models learn the task in a sharp
    transition whose timing varies with the seed, so a fixed step count gives anything from 20% to 99%;
    stopping on a dev accuracy puts every seed's model in the band it is meant for.
    """
    import torch
    from transformers import AutoTokenizer

    if target_accuracy is not None and not dev:
        raise ValueError("target_accuracy needs dev records to measure on")
    torch.set_num_threads(threads or os.cpu_count() or 1)
    started, cpu_started = time.monotonic(), time.process_time()
    model = build_model(spec, toy_tokenizer(), seed).train()
    os.makedirs(out_dir, exist_ok=True)
    toy_tokenizer().save_pretrained(out_dir)
    model.config.save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)  # the tokenizer everyone else will load from the folder
    eval_tokenizer = AutoTokenizer.from_pretrained(out_dir)
    eval_tokenizer.padding_side = "left"
    examples = encode_pairs(tokenizer, _corpus_pairs(corpus))
    if not examples:
        raise ValueError("empty pretraining corpus")
    longest = max(len(ids) for ids, _ in examples)
    if longest > spec.max_position_embeddings:
        raise ValueError(f"a pretraining sequence has {longest} tokens > max_position_embeddings")
    optimizer = _adamw(model, lr, weight_decay)
    calibration = _Calibration(target_accuracy, dev, eval_tokenizer, eval_every, eval_below_loss, log_every)
    rng = random.Random(seed)
    warmup = max(1, int(warmup_ratio * steps))
    curve, recent, tokens, smoothed = [], [], 0, None
    stopped_at = steps
    for step in range(steps):
        batch = [examples[rng.randrange(len(examples))] for _ in range(batch_size)]
        input_ids, labels = _batch_tensors(batch, tokenizer.pad_token_id)
        # Right padding under a causal mask: real tokens never see the padding after them, so no attention mask
        # is needed (and SDPA takes its causal fast path); padding carries no loss.
        loss = model(input_ids=input_ids, labels=labels).loss
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, steps, lr, warmup, min_lr_ratio)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent.append(loss.item())
        smoothed = recent[-1] if smoothed is None else 0.9 * smoothed + 0.1 * recent[-1]
        tokens += int((labels != -100).sum())
        done = step + 1
        if done % 50 == 0 or done == steps:
            curve.append({"step": done, "loss": round(sum(recent) / len(recent), 4)})
            recent = []
            if log_every and (done % log_every == 0 or done == steps):
                elapsed = time.monotonic() - started
                left = elapsed / done * (steps - done)  # an upper bound where a target may stop it sooner
                print(
                    f"  step {done}/{steps} loss {curve[-1]['loss']:.4f} ({elapsed:.0f} s, at most "
                    f"{left / 60:.0f} min left)",
                    flush=True,
                )
        if calibration.due(done, smoothed) and calibration.reached(model, done):
            stopped_at = done
            break
    if recent:  # stopped between two points of the loss curve
        curve.append({"step": stopped_at, "loss": round(sum(recent) / len(recent), 4)})
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    kept = calibration.kept
    if kept is None and dev:
        kept = {"step": stopped_at, "dev_accuracy": round(greedy_accuracy(model, eval_tokenizer, dev), 4)}
    return {
        "max_steps": steps,
        "steps_run": stopped_at,
        "kept": kept,  # which checkpoint was saved, and its dev accuracy (None: no dev records)
        "reached_target": None
        if target_accuracy is None
        else bool(stopped_at < steps or (kept and kept["dev_accuracy"] >= target_accuracy)),
        "target_accuracy": target_accuracy,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "corpus_rows": len(examples),
        "response_tokens_seen": tokens,
        "final_loss": curve[-1]["loss"],
        "loss_curve": curve,
        "dev_curve": calibration.dev_curve,
        "wall_s": round(time.monotonic() - started, 1),
        "cpu_s": round(time.process_time() - cpu_started, 1),
        "threads": torch.get_num_threads(),
    }


def load_model(model_dir: str, dtype: str = "bf16"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).eval()
    return model, tokenizer


def generate(
    model,
    tokenizer,
    questions: Sequence[str],
    *,
    temperature: float = 0.0,
    n: int = 1,
    batch_size: int = 128,
    max_new_tokens: int = 64,
    seed: int = 0,
) -> list[list[str]]:
    """``n`` responses per question, greedy when ``temperature`` is 0, else plain sampling (no top-k/top-p)."""
    import torch

    torch.manual_seed(seed)
    out: list[list[str]] = []
    prompts = chat_prompts(tokenizer, questions)
    per_batch = max(1, batch_size // n)
    for start in range(0, len(prompts), per_batch):
        batch = tokenizer(
            prompts[start : start + per_batch], return_tensors="pt", padding=True, add_special_tokens=False
        )
        options = {"do_sample": False}
        if temperature > 0:
            options = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            options["num_return_sequences"] = n
        with torch.no_grad():
            ids = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **options,
            )
        texts = tokenizer.batch_decode(ids[:, batch.input_ids.shape[1] :], skip_special_tokens=True)
        k = 1 if temperature == 0 else n
        out += [texts[i : i + k] for i in range(0, len(texts), k)]
    return out


def _split(n: int, parts: int) -> list[int]:
    """n split as evenly as parts allow, larger shares first: 10 over 3 -> [4, 3, 3]."""
    return [n // parts + (i < n % parts) for i in range(parts)]


def _vote_metrics(answer_lists: Sequence[Sequence[str | None]], gold: Sequence[str], task) -> dict:
    """Single-sample accuracy, strict-plurality accuracy (ties are wrong) and the pipeline's vote (majority
    share >= 0.5): how many questions it labels and how many of those labels are right."""
    single = plurality = accepted = accepted_right = samples = 0
    for answers, g in zip(answer_lists, gold, strict=True):
        samples += len(answers)
        single += sum(task.is_equivalent(a, g) for a in answers)
        plurality += task.is_equivalent(
            majority_vote(answers, PLURALITY, is_equivalent=task.is_equivalent).pseudo_label, g
        )
        vote = majority_vote(answers, VoteRule(), is_equivalent=task.is_equivalent)
        accepted += vote.accepted
        accepted_right += vote.accepted and task.is_equivalent(vote.pseudo_label, g)
    n = samples // max(1, len(gold))
    return {
        "single": round(single / max(1, samples), 4),
        f"maj@{n}": round(plurality / len(gold), 4),
        "vote_coverage": round(accepted / len(gold), 4),
        "vote_label_accuracy": round(accepted_right / max(1, accepted), 4),
    }


def measure(
    model_dir: str,
    records: Sequence[dict],
    *,
    temperatures: Sequence[float] = (),
    n: int = 10,
    dtype: str = "bf16",
    batch_size: int = 128,
    max_new_tokens: int = 64,
    seed: int = 0,
) -> dict:
    """Accuracy of a model on prompt records with gold, answers read by the arithmetic task.

    ``greedy`` (and by number of operations); then per temperature, from ``n`` samples per question, the mean
    single-sample accuracy and maj@n (`_vote_metrics`); with several temperatures also ``mixed``: the vote over
    ``n`` samples split across the temperatures (10 over 0.3/0.7/1.0 -> 4/3/3, the pipeline's default teacher).
    """
    task = get_task("arithmetic")
    started = time.monotonic()
    model, tokenizer = load_model(model_dir, dtype)
    questions = [r["prompt"] for r in records]
    gold = [task.parse_gold(r) for r in records]
    greedy = generate(model, tokenizer, questions, batch_size=batch_size, max_new_tokens=max_new_tokens)
    greedy_answers = [task.extract_answer(texts[0]) for texts in greedy]
    right = [task.is_equivalent(a, g) for a, g in zip(greedy_answers, gold, strict=True)]
    by_ops: dict[int, list[bool]] = {}
    for record, ok in zip(records, right, strict=True):
        by_ops.setdefault((record.get("meta") or {}).get("n_ops", 0), []).append(ok)
    result = {
        "n_questions": len(records),
        "dtype": dtype,
        "greedy": round(sum(right) / len(gold), 4),
        "greedy_by_n_ops": {str(k): round(sum(v) / len(v), 4) for k, v in sorted(by_ops.items())},
        "greedy_no_answer": sum(a is None for a in greedy_answers),
    }
    sampled = []
    for i, temperature in enumerate(temperatures):
        texts = generate(
            model,
            tokenizer,
            questions,
            temperature=temperature,
            n=n,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            seed=seed + i + 1,
        )
        sampled.append([[task.extract_answer(t) for t in per_question] for per_question in texts])
        result[f"T{temperature:g}"] = _vote_metrics(sampled[-1], gold, task)
    if len(temperatures) > 1:
        shares = _split(n, len(temperatures))
        mixed = [
            sum((answers[q][:k] for answers, k in zip(sampled, shares, strict=True)), []) for q in range(len(gold))
        ]
        result["mixed"] = {"temperatures": list(temperatures), "samples": shares, **_vote_metrics(mixed, gold, task)}
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result
