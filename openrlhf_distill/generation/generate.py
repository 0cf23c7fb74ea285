"""Stages 1 and 5: sample the teacher (or the student) several times per prompt, at several temperatures.

Every prompt gets ``n_per_temperature`` samples at each temperature, numbered ``sample_index = t * n + k`` (t the
temperature's position, k the sample) so that (id, source, sample_index) names one sample across temperatures.
Each sample record carries the answer the task layer reads from it and the rule that read it.

Resumable: the prompts are cut into shards of ``shard_size`` prompts, and each shard is written whole to a
temporary name then renamed, so a run killed at any point leaves only complete shards; the same command again
skips them and ends with exactly the requested samples, no duplicates, no gaps. ``manifest.json`` records the
arguments: a run with other arguments into the same folder is refused (``overwrite=True`` starts afresh).
Seeds are derived per (seed, question, temperature), so a shard's samples do not depend on which shards ran
before it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..argtypes import int_at_least, number_in
from ..contract import Input, Output, add_paths
from ..questions import load_questions
from ..records import (
    SAMPLE,
    SOURCES,
    file_sha256,
    jsonl_files,
    read_records,
    refuse_inputs_inside,
    write_json_atomic,
    write_jsonl_atomic,
)
from ..settings import add_flags, from_args, setting
from ..voting import add_vote_arguments, vote_rule_from_args, vote_samples
from .backend import TEMPERATURE_RANGE, Backend, Request, derived_seed
from .options import add_backend_arguments, backend_from_args
from .rounds import ADAPTIVE_OFF, AdaptiveConfig, sample_shard

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
STOPS = "stops-{index:05d}.json"  # adaptive sampling: each shard's per-question stops (`rounds.py`)


@dataclass(frozen=True)
class SamplingConfig:
    """How a model is sampled: `generate`'s flags and the run config's `teacher` / `student` sections are made from
    these fields (the student's section with its own temperatures and count)."""

    role: str = setting(help="the `source` of the samples", choices=SOURCES)
    temperatures: tuple[float, ...] = setting(
        (0.3, 0.7, 1.0), "comma-separated, in [0, 2]; 0 is greedy", check=number_in(0, 2)
    )
    n_per_temperature: int = setting(
        4, "samples per question at each temperature", check=int_at_least(1), aliases=("--n-per-temperature",)
    )
    max_new_tokens: int = setting(
        512, "tokens per answer at most", check=int_at_least(1), aliases=("--max-new-tokens",)
    )
    seed: int = setting(0, "sampling seed (each request's seed is derived from it)")
    shard_size: int = setting(
        64, "prompts per shard; a killed run loses at most one shard", check=int_at_least(1), aliases=("--shard-size",)
    )
    prompt_style: str = setting("zero_shot_cot", "how the task formats its prompts", aliases=("--prompt-style",))
    stop: tuple[str, ...] = setting((), "a string that ends a sample (repeatable)")
    top_p: float = setting(1.0, "nucleus sampling: in (0, 1]", aliases=("--top-p",))
    # built from the --adaptive.* flags: sample in rounds and stop settled questions (teacher only)
    adaptive: AdaptiveConfig | None = setting(None, flag=False)

    def check(self) -> None:
        if self.role not in SOURCES:
            raise ValueError(f"--role must be one of {', '.join(SOURCES)}, got {self.role!r}")
        low, high = TEMPERATURE_RANGE
        if not self.temperatures:
            raise ValueError("--temperatures: give at least one temperature")
        for t in self.temperatures:
            if not low <= t <= high:
                raise ValueError(f"--temperatures: {t} is outside [{low}, {high}] (0 is greedy decoding)")
        if len(set(self.temperatures)) != len(self.temperatures):
            raise ValueError(f"--temperatures: {list(self.temperatures)} repeats a temperature; raise n instead")
        for name in ("n_per_temperature", "max_new_tokens", "shard_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.adaptive is not None:
            if self.role != "teacher":
                raise ValueError(
                    "--adaptive.rule: adaptive sampling stops on the teacher's vote; use it with --role teacher"
                )
            self.adaptive.check()
            if self.adaptive.max_temperature is not None and min(self.temperatures) > self.adaptive.max_temperature:
                raise ValueError(
                    f"--vote.max_temperature {self.adaptive.max_temperature}: no temperature of "
                    f"{list(self.temperatures)} votes"
                )


class ArgumentsChanged(ValueError):
    """The output folder holds samples made with other arguments."""


def request_seed(seed: int, question_id, temperature_index: int) -> int:
    return derived_seed(seed, question_id, temperature_index)


def _manifest(prompts: str, model: str, backend: str, config: SamplingConfig, default_task, questions) -> dict:
    return {
        "prompts": os.path.abspath(prompts),
        "prompts_sha256": file_sha256(prompts),
        "num_prompts": len(questions),
        "model": os.path.abspath(model) if os.path.isdir(model) else model,
        "backend": backend,
        "default_task": default_task,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()},
    }


def _claim_output(out: str, manifest: dict, overwrite: bool) -> None:
    path = os.path.join(out, MANIFEST)
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        changed = {k: (previous.get(k), v) for k, v in manifest.items() if previous.get(k) != v}
        if changed and not overwrite:
            what = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
            raise ArgumentsChanged(
                f"{out} holds samples made with other arguments ({what}). Use another --out, the same arguments "
                "to resume, or --overwrite to start afresh."
            )
        if changed or overwrite:
            for name in os.listdir(out):
                if name.startswith(("shard-", "stops-")) or name == SUMMARY:
                    os.remove(os.path.join(out, name))
    elif os.path.isdir(out) and any(n.startswith("shard-") for n in os.listdir(out)) and not overwrite:
        raise ArgumentsChanged(f"{out} holds shards but no {MANIFEST}: use another --out or --overwrite")
    write_json_atomic(path, manifest)


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}.jsonl"


class _Progress:
    """Samples done, samples/s, generated tokens/s and ETA: a tqdm bar on a terminal; elsewhere (a pipe, a log
    file: the pipeline runs every stage so) a plain line at most every ``LINE_SECONDS`` and at the end."""

    LINE_SECONDS = 30.0

    def __init__(self, total: int, done: int, label: str):
        self.total, self.done, self.label = total, done, label
        self.start, self.tokens, self.samples, self.last_line = time.perf_counter(), 0, 0, 0.0
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="sample", desc=label, dynamic_ncols=True)

    def update(self, samples: int, tokens: int) -> None:
        self.tokens, self.samples, self.done = self.tokens + tokens, self.samples + samples, self.done + samples
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.tokens / elapsed:,.0f} tok/s", refresh=False)
            self.bar.update(samples)
        elif elapsed - self.last_line >= self.LINE_SECONDS or self.done >= self.total:
            self.last_line = elapsed
            print(self.line(elapsed), file=sys.stderr, flush=True)

    def line(self, elapsed: float) -> str:
        rate = self.samples / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if left != float("inf") else "?"
        return (
            f"{self.label}: {self.done:,}/{self.total:,} ({100 * self.done / max(self.total, 1):.0f}%), "
            f"{rate:,.1f} samples/s, {self.tokens / elapsed:,.0f} tokens/s, ETA {eta}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _shard_samples(completions_by_request, requests_meta, model: str, role: str, n_per_temperature: int):
    """Sample records from a backend's completions; ``requests_meta`` holds, per request, (question, temperature,
    its index t, the first sample number k, the number of samples): the records are numbered t * n + k onwards."""
    for (question, temperature, t_index, first, n), completions in zip(
        requests_meta, completions_by_request, strict=True
    ):
        if len(completions) != n:
            raise RuntimeError(f"backend returned {len(completions)} completions for a request of {n}")
        for k, completion in enumerate(completions, start=first):
            extraction = question.task.extract(completion.text, finish_reason=completion.finish_reason)
            yield {
                "id": question.id,
                "source": role,
                "model": model,
                "temperature": temperature,
                "sample_index": t_index * n_per_temperature + k,
                "response": completion.text,
                "finish_reason": completion.finish_reason,
                "num_tokens": completion.num_tokens,
                "answer": extraction.answer,
                "extraction": extraction.rule,
            }


def generate_samples(
    prompts: str,
    out: str,
    *,
    model: str,
    backend: str,
    config: SamplingConfig,
    make_backend: Callable[[], Backend],
    default_task: str | None = None,
    overwrite: bool = False,
    progress: bool | str = True,
) -> dict:
    """Samples every prompt into ``out`` (resuming what a previous identical run left); returns the summary.

    ``make_backend`` is called only when a shard is missing, so a complete rerun loads no model.
    """
    config.check()
    refuse_inputs_inside(out, "generate", [prompts])  # refused now, not after hours of sampling
    questions = list(load_questions(prompts, default_task).values())
    for q in questions:  # a bad prompt fails now, not after hours of sampling
        q.task.format_prompt(q.record, style=config.prompt_style)
    os.makedirs(out, exist_ok=True)
    _claim_output(out, _manifest(prompts, model, backend, config, default_task, questions), overwrite)

    shards = [questions[i : i + config.shard_size] for i in range(0, len(questions), config.shard_size)]
    per_question = len(config.temperatures) * config.n_per_temperature
    pending = [i for i in range(len(shards)) if not os.path.exists(os.path.join(out, _shard_name(i)))]
    done = (len(questions) - sum(len(shards[i]) for i in pending)) * per_question
    started = time.perf_counter()
    engine = None
    label = progress if isinstance(progress, str) else f"{config.role} samples"  # a caller may name what it samples
    bar = _Progress(len(questions) * per_question, done, label) if progress and pending else None

    def to_records(completions, meta):
        return _shard_samples(completions, meta, model, config.role, config.n_per_temperature)

    try:
        for index in pending:
            engine = engine or make_backend()
            if config.adaptive is None:
                requests, meta = [], []
                for question in shards[index]:
                    prompt = question.task.format_prompt(question.record, style=config.prompt_style)
                    for t_index, temperature in enumerate(config.temperatures):
                        seed = request_seed(config.seed, question.id, t_index)
                        n = config.n_per_temperature
                        requests.append(
                            Request(prompt, temperature, n, config.max_new_tokens, seed, config.stop, config.top_p)
                        )
                        meta.append((question, temperature, t_index, 0, n))
                rows = list(to_records(engine.generate(requests), meta))
            else:
                rows, stops = sample_shard(engine, shards[index], config, model, to_records)
                # before the shard: a shard on disk always has its stops (a kill in between redoes the shard)
                write_json_atomic(os.path.join(out, STOPS.format(index=index)), stops)
            write_jsonl_atomic(os.path.join(out, _shard_name(index)), rows)
            if bar:
                skipped = len(shards[index]) * per_question - len(rows)  # adaptive: samples it did not need
                bar.update(len(rows) + skipped, sum(r["num_tokens"] for r in rows))
    finally:
        if bar:
            bar.close()
        if engine is not None:
            engine.close()
    summary = summarise(out, len(questions) * per_question, adaptive=config.adaptive is not None)
    summary["seconds_this_run"] = round(time.perf_counter() - started, 3)
    if engine is not None:
        summary["backend"] = {"name": engine.info.name, "reproducible": engine.info.reproducible, **engine.info.extra}
    write_json_atomic(os.path.join(out, SUMMARY), summary)
    return summary


def _stops(out: str) -> dict:
    """The adaptive run's stops, all shards together: question id -> stop record."""
    stops = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("stops-") and name.endswith(".json"):
            with open(os.path.join(out, name), encoding="utf-8") as f:
                stops.update(json.load(f))
    return stops


def summarise(out: str, expected: int, *, adaptive: bool = False) -> dict:
    """Counts what the shards hold, and checks it is exactly what was asked: every sample once (adaptive: the
    samples each question's stop record says it drew, out of the ``expected`` full budget)."""
    budget, adaptive_summary = expected, None
    if adaptive:
        stops = _stops(out)
        expected = sum(stop["drawn"] for stop in stops.values())
        adaptive_summary = {
            "questions": len(stops),
            "samples_budget": budget,
            "samples_drawn": expected,
            "share_of_budget": round(expected / budget, 4) if budget else None,
            "stop_reasons": dict(Counter(stop["reason"] for stop in stops.values())),
        }
    samples, tokens = 0, 0
    rules, finish = Counter(), Counter()
    for path in jsonl_files(out):
        seen = set()  # shards hold disjoint questions: a repeat can only be within one
        for line, sample in read_records(path, SAMPLE):
            key = (str(sample["id"]), sample["sample_index"])
            if key in seen:
                raise RuntimeError(f"{path}:{line}: sample {key} appears twice in {out}")
            seen.add(key)
            samples += 1
            tokens += sample.get("num_tokens") or 0
            rules[sample.get("extraction") or "none"] += 1
            finish[sample.get("finish_reason") or "unknown"] += 1
    if samples != expected:
        raise RuntimeError(f"{out} holds {samples} samples, {expected} were asked for")
    summary = {"samples": samples, "tokens": tokens, "extraction_rules": dict(rules), "finish_reasons": dict(finish)}
    return summary | ({"adaptive": adaptive_summary} if adaptive_summary else {})


# --- `openrlhf-distill generate` ---------------------------------------------------------------------------------


# what a run killed half-way leaves in --out, and a rerun with the same arguments continues
SAMPLES_FOLDER = ("shard-*.jsonl", "stops-*.json", "manifest.json", "summary.json", "*.tmp-*")
PATHS = (
    Input("model", "model", "model folder (hf, vllm) or served model name (openai)", required=True),
    Input("prompts", "file", "prompt records (JSON Lines)", required=True),
    Output(
        "out",
        "folder",
        "folder for shard-*.jsonl, manifest.json, summary.json",
        required=True,
        resumable=SAMPLES_FOLDER,
    ),
)


def add_arguments(p) -> None:
    add_paths(p, PATHS)
    p.add_argument("--task", default=None, help="task of prompts that have no `task` field")
    add_flags(p, SamplingConfig)
    p.add_argument("--overwrite", action="store_true", help="discard samples made with other arguments")
    p.add_argument(
        "--no_progress", "--no-progress", dest="no_progress", action="store_true", help="no progress bar or lines"
    )
    add_flags(p, AdaptiveConfig, "adaptive", defaults=ADAPTIVE_OFF)
    add_vote_arguments(p)  # the exact rule stops on the vote the label stage will take
    add_backend_arguments(p)


def run(args) -> int:
    config = from_args(args, SamplingConfig, adaptive=_adaptive_from_args(args))
    config.check()
    name, start = backend_from_args(args)
    summary = generate_samples(
        args.prompts,
        args.out,
        model=args.model,
        backend=name,
        config=config,
        make_backend=start,
        default_task=args.task,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    rules = ", ".join(f"{k} {v}" for k, v in sorted(summary["extraction_rules"].items()))
    print(
        f"{summary['samples']} samples, {summary['tokens']} tokens, {summary['seconds_this_run']:.1f} s this run "
        f"-> {args.out}\nextraction rules: {rules}"
    )
    if "adaptive" in summary:
        a = summary["adaptive"]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(a["stop_reasons"].items()))
        print(
            f"adaptive ({config.adaptive.rule}): {a['samples_drawn']} of {a['samples_budget']} samples "
            f"({100 * a['share_of_budget']:.1f}% of the budget); stops: {reasons}"
        )
    return 0


def _adaptive_from_args(args):
    """The --adaptive.* settings, or None when no rule was given (adaptive sampling is off)."""
    adaptive = from_args(
        args, AdaptiveConfig, "adaptive", vote=vote_rule_from_args(args), max_temperature=vote_samples(args)
    )
    return adaptive if adaptive.rule is not None else None
