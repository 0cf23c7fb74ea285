#!/usr/bin/env python3
"""The GPU check: this package's GPU paths run for real, in a few minutes, on a borrowed one-GPU machine that has
torch and transformers but no network, vLLM or Ray (docs/gpu_check.md).

Installs the wheels of wheels.txt from the wheelhouse (no index), then runs one check per line of output:

    PASS name  seconds  detail
    FAIL name  seconds  last error line

cuda, tiny-model, sft, train-rm, generate-hf, serve-rm, in that order; each command's output goes to
OUT/<check>.log and the lines to OUT/results.txt. Exits 0 only if everything passed.

Only the standard library is imported at module level: the options, --dry-run and the failure lines work on any
Python, before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
WHEELS = os.path.join(HERE, "wheels.txt")
# build_wheelhouse.sh puts the largest wheels in a second folder, so that each fits one carry of the device tool.
DEFAULT_WHEELHOUSES = [os.path.join(HERE, "wheelhouse"), os.path.join(HERE, "wheelhouse-large")]
DEFAULT_OUT = os.path.join(HERE, "out")
CHECKS = ("cuda", "tiny-model", "sft", "train-rm", "generate-hf", "serve-rm")
DEFAULT_TIMEOUT_S = 300.0

# The patch switches of openrlhf_distill/compat/patches.py, spelled here because the package may not be installed
# yet when this file is imported (tests/test_gpu_check.py holds the two spellings together).
ENV_ENGINE = "OPENRLHF_DISTILL_ENGINE"
ENV_MODE = "OPENRLHF_DISTILL_PATCHES"
ENV_SKIP = "OPENRLHF_DISTILL_PATCHES_SKIP"
ENV_VERBOSE = "OPENRLHF_DISTILL_PATCHES_VERBOSE"
APPLIED = re.compile(r"\[openrlhf-distill patches pid=\d+\] applied (\S+) to ")
PATCHES_BROKEN = "[openrlhf-distill] runtime patches not installed"

# The flags both trainers get: a few steps of a 2-layer model. No flash-attn on the machine, so SDPA attention.
TRAINER_FLAGS = [
    "--data.max_len", "64",
    "--train.batch_size", "8",
    "--train.micro_batch_size", "4",
    "--train.max_epochs", "1",
    "--ds.zero_stage", "2",
    "--ds.param_dtype", "bf16",
    "--ds.attn_implementation", "sdpa",
    "--adam.lr", "2e-3",
]  # fmt: skip
# The trainers' deepspeed launcher on this machine's one GPU (trainers.py: --launcher FLAG=VALUE).
ONE_GPU = ["--launcher", "num_gpus=1"]
GENERATE_PROMPTS, GENERATE_TEMPERATURES, GENERATE_N = 8, ("0", "1.0"), 2


class CheckFailed(Exception):
    """A check ran but what it produced is wrong; the message is the FAIL line's reason."""


# --- the plan ------------------------------------------------------------------------------------------------------


@dataclass
class Paths:
    out: str

    def __post_init__(self):
        self.out = os.path.abspath(self.out)
        self.work = os.path.join(self.out, "work")
        self.data = os.path.join(self.work, "data")
        self.tiny_model = os.path.join(self.work, "tiny-model")
        self.sft_model = os.path.join(self.work, "sft", "model")
        self.rm = os.path.join(self.work, "train-rm", "rm")
        self.rm_metrics = os.path.join(self.work, "train-rm", "metrics.jsonl")
        self.samples = os.path.join(self.work, "generate-hf", "samples")
        self.extensions = os.path.join(self.work, "torch_extensions")
        self.results = os.path.join(self.out, "results.txt")

    def log(self, name: str) -> str:
        return os.path.join(self.out, f"{name}.log")

    def own_work(self, name: str) -> str:
        return os.path.join(self.work, name)


@dataclass
class Check:
    name: str
    argv: list[str]
    needs_gpu: bool = True
    needs_tiny_model: bool = False
    files: dict[str, list[dict]] = field(default_factory=dict)  # data files to write first: path -> rows
    verify: Callable[[Paths, str], str] | None = None  # (paths, log text) -> the PASS detail, or CheckFailed


def cli(*args: str) -> list[str]:
    # `python -m` of this interpreter rather than the `openrlhf-distill` script: the script may sit in a folder
    # that is not on PATH (a user install), and a second Python on PATH must not be the one that runs.
    return [sys.executable, "-m", "openrlhf_distill.cli", *args]


def install_argv(wheelhouses: list[str]) -> list[str]:
    links = [arg for folder in wheelhouses for arg in ("--find-links", os.path.abspath(folder))]
    # --no-deps: wheels.txt is closed by hand; openrlhf's declared pins (flash-attn, vllm, ray) must not resolve.
    # --force-reinstall: a rebuilt wheel of this checkout keeps its version, and pip would keep the older install.
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-index",
        *links,
        "--no-deps",
        "--force-reinstall",
        "-r",
        WHEELS,
    ]


def sft_rows() -> list[dict]:
    return [{"input": f"what is {a} + {b}?", "output": f"{a} + {b} = {a + b}. #### {a + b}"} for a, b in _sums(32)]


def rm_rows() -> tuple[list[dict], list[dict]]:
    """Pairs and points in the formats train-rm reads (chat messages, as the repository's tests write them)."""
    pairs, points = [], []
    for a, b in _sums(16):
        prompt = [{"role": "user", "content": f"what is {a} + {b}?"}]
        good = [{"role": "assistant", "content": f"#### {a + b} correct"}]
        bad = [{"role": "assistant", "content": f"#### {a + b + 1} wrong"}]
        pairs.append({"prompt": prompt, "chosen": good, "rejected": bad})
        points += [{"prompt": prompt, "response": good, "label": 1}, {"prompt": prompt, "response": bad, "label": 0}]
    return pairs, points


def prompt_rows() -> list[dict]:
    return [
        {"id": f"q{i}", "task": "arithmetic", "prompt": f"What is {a} + {b}?", "gold": str(a + b)}
        for i, (a, b) in enumerate(_sums(GENERATE_PROMPTS))
    ]


def _sums(n: int) -> list[tuple[int, int]]:
    return [((7 * i + 3) % 50, (11 * i + 5) % 50) for i in range(n)]


def plan(paths: Paths) -> dict[str, Check]:
    pairs, points = rm_rows()
    sft_data, pairs_data, points_data, prompts = (
        os.path.join(paths.data, name) for name in ("sft.jsonl", "pairs.jsonl", "points.jsonl", "prompts.jsonl")
    )
    # fmt: off
    sft = cli(
        "sft", "--engine", "gpu", *ONE_GPU,
        "--model.model_name_or_path", paths.tiny_model,
        "--data.dataset", sft_data, "--data.input_key", "input", "--data.output_key", "output",
        "--data.apply_chat_template",
        *TRAINER_FLAGS,
        "--ckpt.output_dir", paths.sft_model,
    )
    train_rm = cli(
        "train-rm", "--engine", "gpu", *ONE_GPU,
        "--model.model_name_or_path", paths.tiny_model,
        "--data.dataset", pairs_data,
        # The GPU engine adds no eval set (the CPU engine does), and train_rm's default, 1% of 16 rows, is none.
        "--eval.dataset", pairs_data,
        "--data.prompt_key", "prompt", "--data.chosen_key", "chosen", "--data.rejected_key", "rejected",
        "--data.apply_chat_template",
        *TRAINER_FLAGS,
        "--ckpt.output_dir", paths.rm,
        "--distill.rm.points", points_data, "--distill.rm.metrics_file", paths.rm_metrics,
    )
    generate = cli(
        "generate", "--backend", "hf",
        # The hf backend takes cuda whenever torch sees a GPU; its dtype is this flag's (auto: the checkpoint's
        # float32), so bf16 is asked for, as on a GPU run.
        "--hf.dtype", "bfloat16",
        "--model", paths.tiny_model, "--role", "teacher", "--prompts", prompts, "--out", paths.samples,
        "--temperatures", ",".join(GENERATE_TEMPERATURES), "--n-per-temperature", str(GENERATE_N),
        "--max-new-tokens", "16", "--no-progress",
    )
    # fmt: on
    # --port 0: the system picks a free port, which the server prints.
    serve = cli("serve-rm", "--model", paths.rm, "--host", "127.0.0.1", "--port", "0")
    checks = [
        Check("cuda", [sys.executable, os.path.abspath(__file__), "--probe-cuda"], verify=verify_cuda),
        Check("tiny-model", cli("tiny-model", paths.tiny_model), needs_gpu=False, verify=verify_tiny_model),
        Check("sft", sft, needs_tiny_model=True, files={sft_data: sft_rows()}, verify=verify_sft),
        Check(
            "train-rm",
            train_rm,
            needs_tiny_model=True,
            files={pairs_data: pairs, points_data: points},
            verify=verify_train_rm,
        ),
        Check("generate-hf", generate, needs_tiny_model=True, files={prompts: prompt_rows()}, verify=verify_generate),
        Check("serve-rm", serve),
    ]
    return {check.name: check for check in checks}


# --- what each check's output must show ----------------------------------------------------------------------------

_cpu_patches: list[str] | None = None


def cpu_patch_names() -> list[str]:
    """The names of the package's CPU-group patches, asked of the installed package (once)."""
    global _cpu_patches
    if _cpu_patches is None:
        code = (
            "import json; from openrlhf_distill.compat import patches, cpu_patches, rl_cpu_patches, fixes; "
            "print(json.dumps(sorted(p.name for p in patches.PATCHES if p.group == 'cpu')))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise CheckFailed(f"cannot list the CPU patches: {last_error_line(done.stderr)}")
        _cpu_patches = json.loads(done.stdout.strip().splitlines()[-1])
    return _cpu_patches


def engine_note(log: str) -> str:
    """The engine the log's processes ran, as the patches saw it; CheckFailed if a CPU patch was applied."""
    if PATCHES_BROKEN in log:
        raise CheckFailed(next(line for line in log.splitlines() if PATCHES_BROKEN in line).strip())
    applied = set(APPLIED.findall(log))
    cpu = sorted(applied & set(cpu_patch_names()))
    if cpu:
        raise CheckFailed(f"CPU patches applied on the GPU engine: {', '.join(cpu)}")
    return f"engine=gpu, cpu patches: none (fixes: {len(applied)})"


def verify_cuda(paths: Paths, log: str) -> str:
    found = [line for line in log.splitlines() if line.startswith("RESULT ")]
    if not found:
        raise CheckFailed("the probe printed no RESULT line")
    r = json.loads(found[-1][len("RESULT ") :])
    nvcc = r["cuda_home"] or "none (DeepSpeed's FusedAdam, built on first use, needs the CUDA compiler)"
    return (
        f"{r['name']}, {r['memory_gib']:.1f} GiB, sm_{r['capability']}, {r['devices']} device(s), bf16 "
        f"{'yes' if r['bf16'] else 'no'}; torch {r['torch']} (CUDA {r['torch_cuda']}), transformers "
        f"{r['transformers']}; CUDA_HOME {nvcc}"
    )


def verify_tiny_model(paths: Paths, log: str) -> str:
    config = _json(os.path.join(paths.tiny_model, "config.json"))
    return f"{config['model_type']}, {config['num_hidden_layers']} layers, vocab {config['vocab_size']}"


def _trainer_note(log: str) -> str:
    # DeepSpeed names the accelerator it chose; a launch that found no GPU falls back to the CPU one.
    if "Setting accelerator to CPU" in log:
        raise CheckFailed("DeepSpeed found no GPU and set its accelerator to CPU")
    chosen = re.findall(r"Setting ds_accelerator to (\w+)", log)
    if chosen and chosen[-1] != "cuda":
        raise CheckFailed(f"DeepSpeed's accelerator is {chosen[-1]}, not cuda")
    return f"{engine_note(log)}, deepspeed launcher on 1 GPU (accelerator {chosen[-1] if chosen else 'cuda'})"


def _saved_model(folder: str) -> None:
    if not os.path.isfile(os.path.join(folder, "config.json")) or not any(
        n.endswith(".safetensors") for n in os.listdir(folder)
    ):
        raise CheckFailed(f"no saved model (config.json + *.safetensors) in {folder}")


def verify_sft(paths: Paths, log: str) -> str:
    _saved_model(paths.sft_model)
    # tqdm's postfix (gpt_loss=5.12, 1.2e+03) or a logged dict ('gpt_loss': 5.123)
    losses = re.findall(r"gpt_loss'?\s*[=:]\s*(-?\d[\d.]*(?:e[-+]?\d+)?)", log)
    if not losses:
        raise CheckFailed("OpenRLHF's SFT trainer logged no gpt_loss: it did not train")
    return f"{_trainer_note(log)}, gpt_loss {float(losses[0]):.3f} -> {float(losses[-1]):.3f}"


def verify_train_rm(paths: Paths, log: str) -> str:
    _saved_model(paths.rm)
    marker = re.findall(r"\[openrlhf-distill\] distilled RM trainer: .* on (\d+) points", log)
    if not marker or int(marker[-1]) == 0:
        raise CheckFailed("the distilled RM trainer did not announce itself with its points")
    if not os.path.isfile(paths.rm_metrics):
        raise CheckFailed(f"missing {paths.rm_metrics}: no step was logged")
    with open(paths.rm_metrics, encoding="utf-8") as f:
        steps = [json.loads(row) for row in f if row.strip()]
    # Both terms of the distilled loss, as the trainer logs them: the pointwise one exists only in our trainer.
    missing = {"pairwise_loss", "pointwise_loss"} - set(steps[-1] if steps else {})
    if missing:
        raise CheckFailed(f"{paths.rm_metrics}: the last step has no {', '.join(sorted(missing))}")
    config = _json(os.path.join(paths.rm, "config.json"))
    normalisation = f"mean/std {config['mean']:.3g}/{config['std']:.3g}" if "std" in config else "no mean/std saved"
    return (
        f"{_trainer_note(log)}, distilled trainer on {marker[-1]} points, {len(steps)} logged step(s), last "
        f"pairwise/pointwise loss {steps[-1]['pairwise_loss']:.3f}/{steps[-1]['pointwise_loss']:.3f}, {normalisation}"
    )


def verify_generate(paths: Paths, log: str) -> str:
    summary = _json(os.path.join(paths.samples, "summary.json"))
    backend = summary.get("backend", {})
    expected = GENERATE_PROMPTS * len(GENERATE_TEMPERATURES) * GENERATE_N
    if backend.get("name") != "hf" or not str(backend.get("device", "")).startswith("cuda"):
        raise CheckFailed(f"generated with {backend.get('name')} on {backend.get('device')}, not hf on cuda")
    if summary["samples"] != expected:
        raise CheckFailed(f"{summary['samples']} samples, {expected} asked for")
    return (
        f"{engine_note(log)}, hf backend on {backend['device']} in bfloat16, {summary['samples']} samples, "
        f"{summary['tokens']} tokens in {summary['seconds_this_run']:.1f} s"
    )


def _json(path: str) -> dict:
    if not os.path.isfile(path):
        raise CheckFailed(f"missing {path}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- running a check -----------------------------------------------------------------------------------------------


def check_env(paths: Paths) -> dict:
    env = dict(os.environ)
    env.pop(ENV_SKIP, None)  # every patch the GPU engine takes, none left out
    env.update(
        {
            ENV_ENGINE: "gpu",  # the CPU group off in every process, whatever a process sees of CUDA
            ENV_MODE: "auto",
            ENV_VERBOSE: "1",  # each process names the patches it applied: engine_note reads them
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            # Kept across checks and runs: FusedAdam is compiled once, by the first trainer.
            "TORCH_EXTENSIONS_DIR": paths.extensions,
        }
    )
    # launch.py finds `deepspeed` on PATH: the one installed beside this interpreter must come first.
    scripts = [sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")]
    env["PATH"] = os.pathsep.join([*(s for s in scripts if s and os.path.isdir(s)), env.get("PATH", "")])
    return env


def remove_stale_build_locks(folder: str) -> None:
    """Checks run one at a time, so no build can be running now: a lock left by a check killed mid-build would
    make the next trainer wait on it for ever."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            lock = os.path.join(folder, name, "lock")
            if os.path.exists(lock):
                os.remove(lock)


def write_jsonl(path: str, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def run_logged(argv: list[str], log_path: str, env: dict, cwd: str, timeout_s: float) -> tuple[int, str]:
    """Runs ``argv`` with its output appended to ``log_path``; returns its exit code (124 on timeout, its
    process group then ended) and everything it printed."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        log.flush()
        start = log.tell()
        # Its own session: on timeout the whole tree (deepspeed's launcher and its trainer) is ended together.
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            code = 124
            log.write(f"\nTimeoutError: no result after {timeout_s:g} s (its process group was ended)\n")
    with open(log_path, encoding="utf-8", errors="replace") as f:
        f.seek(start)
        return code, f.read()


def stop_group(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


# Exceptions that only wrap the real one (a launcher reporting its child's exit): the line to show is the child's.
_WRAPPERS = {"CalledProcessError", "OpenRLHFRunError", "ChildFailedError", "SystemExit", "KeyboardInterrupt"}
_EXCEPTION = re.compile(r"\b(\w*(?:Error|Exception))\b: ")


def last_error_line(text: str, limit: int = 300) -> str:
    lines = [re.sub(r"^\[rank\d+\]:\s*", "", s.strip()) for s in re.split(r"[\r\n]+", text) if s.strip()]
    for line in reversed(lines):
        found = _EXCEPTION.search(line)
        if found and found.group(1) not in _WRAPPERS:
            return line[:limit]
    for line in reversed(lines):
        if "error" in line.lower():
            return line[:limit]
    return lines[-1][:limit] if lines else "no output"


def run_check(check: Check, paths: Paths, env: dict, timeout_s: float) -> str:
    """Runs one check; returns the PASS detail, raises CheckFailed with the reason."""
    log_path = paths.log(check.name)
    own = paths.own_work(check.name)
    shutil.rmtree(own, ignore_errors=True)  # a rerun starts clean (generate would otherwise resume, not run)
    for path, rows in check.files.items():
        write_jsonl(path, rows)
    remove_stale_build_locks(paths.extensions)
    if check.needs_tiny_model and not os.path.isfile(os.path.join(paths.tiny_model, "config.json")):
        # Run alone (--only), a check builds the model the tiny-model check would have built.
        code, text = run_logged(cli("tiny-model", paths.tiny_model), log_path, env, paths.out, timeout_s)
        if code != 0:
            raise CheckFailed(f"building the tiny model: {last_error_line(text)}")
    if check.name == "serve-rm":
        return serve_rm(check, paths, env, timeout_s)
    code, text = run_logged(check.argv, log_path, env, paths.out, timeout_s)
    if code != 0:
        raise CheckFailed(last_error_line(text))
    return check.verify(paths, text) if check.verify else "ok"


def gpu_memory_used_mib() -> int | None:
    """MiB in use on GPU 0 by every process: nvidia-smi's count, else the driver's as torch reads it (its own
    context included, the same on every call); None where neither can tell."""
    torch_query = "import torch; free, total = torch.cuda.mem_get_info(0); print((total - free) >> 20)"
    for query in (
        ["nvidia-smi", "--id=0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        [sys.executable, "-c", torch_query],
    ):
        try:
            done = subprocess.run(query, capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                return int(done.stdout.split()[-1])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            continue
    return None


def _http_json(url: str, body: dict | None = None, timeout_s: float = 60.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def serve_rm(check: Check, paths: Paths, env: dict, timeout_s: float) -> str:
    """Starts the server on the RM the train-rm check saved, scores one request, stops it with SIGTERM."""
    if not os.path.isfile(os.path.join(paths.rm, "config.json")):
        raise CheckFailed(f"no reward model at {paths.rm}: the train-rm check saves one there")
    before = gpu_memory_used_mib()
    ready, url = threading.Event(), []
    log = open(paths.log(check.name), "a", encoding="utf-8")
    log.write(f"$ {shlex.join(check.argv)}\n")
    log.flush()
    proc = subprocess.Popen(
        check.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=paths.out,
        start_new_session=True,
    )  # fmt: skip
    printed: list[str] = []

    def copy_output():
        for line in proc.stdout:
            log.write(line)
            log.flush()
            printed.append(line)
            found = re.search(r"reward-model server at (http://\S+)", line)
            if found and not url:
                url.append(found.group(1))
                ready.set()
        ready.set()  # the server exited: nothing more will come

    reader = threading.Thread(target=copy_output, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout_s) or not url:
            raise CheckFailed(last_error_line("".join(printed)) if printed else f"not serving after {timeout_s:g} s")
        prompts = ["what is 2 + 3?", "what is 2 + 3?"]
        answer = _http_json(f"{url[0]}/score", {"prompt": prompts, "response": ["#### 5 correct", "#### 6 wrong"]})
        rewards = answer.get("rewards")
        if not (isinstance(rewards, list) and len(rewards) == 2 and all(math.isfinite(r) for r in rewards)):
            raise CheckFailed(f"/score answered {answer}")
        health = _http_json(f"{url[0]}/health")
        if health.get("status") != "ok":
            raise CheckFailed(f"/health answered {health}")
        after = gpu_memory_used_mib()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the server's own way out: it stops and prints its counts
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                stop_group(proc)
        reader.join(timeout=10)
        log.close()
    stopped = [line for line in printed if line.startswith("stopped; ")]
    if proc.returncode != 0 or not stopped:
        raise CheckFailed(f"the server did not stop cleanly on SIGTERM (exit {proc.returncode})")
    stats = json.loads(stopped[-1][len("stopped; ") :])
    # The scorer takes cuda whenever torch sees a GPU; a CUDA context alone takes hundreds of MiB, so a server
    # that added none scored on the CPU.
    if before is None or after is None:
        raise CheckFailed(
            "cannot read the GPU's memory (no nvidia-smi, torch sees no GPU): where it scored is unknown"
        )
    if after - before < 100:
        raise CheckFailed(f"the server added {after - before} MiB of GPU memory: it did not score on CUDA")
    return (
        f"{engine_note(''.join(printed))}, on cuda (+{after - before} MiB of GPU memory while serving), rewards "
        f"{rewards[0]:+.3f} ('correct') / {rewards[1]:+.3f} ('wrong'), {stats['samples']} samples in "
        f"{stats['batches']} batch(es), stopped on SIGTERM"
    )


# --- the CUDA probe (a child process, so that a CUDA crash is a FAIL line, not the end of the run) -----------------


def probe_cuda() -> int:
    import torch

    try:
        import transformers

        transformers_version = transformers.__version__
    except ImportError:
        transformers_version = "not installed"
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build of torch"
        print(
            f"torch {torch.__version__} sees no CUDA device ({build}; CUDA_VISIBLE_DEVICES={visible})",
            file=sys.stderr,
        )
        return 1
    props = torch.cuda.get_device_properties(0)
    # Seeing a device is not running on it: one kernel, and a bf16 matmul as the trainers use.
    ones = torch.ones(1 << 20, device="cuda")
    if ones.sum().item() != 1 << 20:
        print("a sum of ones on the GPU came out wrong", file=sys.stderr)
        return 1
    square = torch.eye(64, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    from torch.utils.cpp_extension import CUDA_HOME

    result = {
        "name": props.name,
        "memory_gib": props.total_memory / 2**30,
        "capability": f"{props.major}{props.minor}",
        "devices": torch.cuda.device_count(),
        "bf16": bool(torch.cuda.is_bf16_supported() and (square @ square).trace().item() == 64),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers_version,
        "cuda_home": CUDA_HOME,
    }
    print("RESULT " + json.dumps(result))
    return 0


# --- the command line ----------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, so that a wrong option reads the same as a FAIL line's reason.
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _check_names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown check {', '.join(unknown) or repr(value)}: one of {', '.join(CHECKS)}"
        )
    return names


def _positive(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run.py", description="The GPU check (docs/gpu_check.md).")
    p.add_argument(
        "--wheelhouse",
        action="append",
        metavar="DIR",
        help="a folder of wheels (repeatable; default: wheelhouse/ and wheelhouse-large/ beside this file)",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help="results.txt, <check>.log and the checks' files")
    p.add_argument("--dry-run", action="store_true", help="print the pip command and each check's command")
    p.add_argument("--skip-install", action="store_true", help="use what is installed already")
    p.add_argument("--only", type=_check_names, metavar="NAME[,NAME]", help=f"some of: {', '.join(CHECKS)}")
    p.add_argument("--timeout-s", type=_positive, default=DEFAULT_TIMEOUT_S, help="per check")
    p.add_argument("--probe-cuda", action="store_true", help=argparse.SUPPRESS)
    return p


def line(status: str, name: str, seconds: float, text: str) -> str:
    return f"{status} {name}  {seconds:.1f}  {' '.join(text.split())}"


def install(wheelhouses: list[str], paths: Paths) -> tuple[bool, str]:
    started = time.monotonic()
    wheels = sorted(
        {n for folder in wheelhouses if os.path.isdir(folder) for n in os.listdir(folder) if n.endswith(".whl")}
    )
    if not wheels:
        where = ", ".join(wheelhouses)
        return False, line(
            "FAIL", "install", 0.0, f"no wheels in {where}: run build_wheelhouse.sh where there is network"
        )
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    code, text = run_logged(install_argv(wheelhouses), paths.log("install"), env, paths.out, 900)
    if code != 0:
        return False, line("FAIL", "install", time.monotonic() - started, last_error_line(text))
    # Informational: openrlhf's own pins that --no-deps left out (flash-attn, vllm, ray, ...) are expected to be
    # unmet; anything else names a gap in wheels.txt for this machine, which the checks then show.
    _, text = run_logged([sys.executable, "-m", "pip", "check"], paths.log("install"), env, paths.out, 120)
    others = [s for s in text.splitlines() if s.strip() and not s.startswith(("openrlhf ", "No broken"))]
    checked = f"pip check: {len(others)} unmet beyond openrlhf's own pins" + (" (install.log)" if others else "")
    return True, line("PASS", "install", time.monotonic() - started, f"{len(wheels)} wheels, no index; {checked}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.probe_cuda:
        return probe_cuda()
    wheelhouses = args.wheelhouse or DEFAULT_WHEELHOUSES
    paths = Paths(args.out)
    selected = [name for name in CHECKS if name in (args.only or CHECKS)]
    checks = plan(paths)
    if args.dry_run:
        if not args.skip_install:
            print(f"install: {shlex.join(install_argv(wheelhouses))}")
        for name in selected:
            print(f"{name}: {shlex.join(checks[name].argv)}")
        return 0

    os.makedirs(paths.work, exist_ok=True)
    for name in ["install", *selected]:
        if os.path.exists(paths.log(name)):
            os.remove(paths.log(name))
    results, ok = [], True

    def report(result: str) -> None:
        print(result, flush=True)
        results.append(result)
        with open(paths.results, "w", encoding="utf-8") as f:
            f.write("\n".join(results) + "\n")

    if not args.skip_install:
        print(f"[gpu-check] installing from {', '.join(wheelhouses)}", file=sys.stderr, flush=True)
        installed, result = install(wheelhouses, paths)
        ok &= installed
        report(result)
    env = check_env(paths)
    gpu_failed = False
    for name in selected:
        check = checks[name]
        print(f"[gpu-check] {name} (log: {paths.log(name)})", file=sys.stderr, flush=True)
        started = time.monotonic()
        if check.needs_gpu and gpu_failed:
            ok = False
            report(line("FAIL", name, 0.0, "not run: the cuda check failed"))
            continue
        try:
            detail = run_check(check, paths, env, args.timeout_s)
            report(line("PASS", name, time.monotonic() - started, detail))
        except Exception as error:  # whatever goes wrong is this check's FAIL line, and the next check runs
            ok = False
            reason = str(error) if isinstance(error, CheckFailed) else f"{type(error).__name__}: {error}"
            report(line("FAIL", name, time.monotonic() - started, reason))
            gpu_failed |= name == "cuda"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
