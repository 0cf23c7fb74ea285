"""Runs the planned stages in order, skipping those already done with the same inputs and settings.

A stage's fingerprint hashes its command and the fingerprints of the stages whose outputs it reads (for the
user's own files and models: their paths, sizes and modification times), so changing a setting or anything
upstream reruns the stage and everything after it. ``stages/<key>.json`` records the fingerprint, first as
``started``, then as ``done`` with the wall time, samples and tokens; ``stages/<key>.log`` holds everything the
stage printed (each attempt appended under a header line), as the terminal showed it.

A killed run, rerun with the same command, continues: finished stages are skipped; a generation stage resumes
from its last complete shard; a trainer, which writes to ``OUTPUT.partial`` and is renamed when it finishes,
continues from the last checkpoint OpenRLHF saved there (``ckpt.save_steps``), or else starts that stage over;
once it finishes, those checkpoints are deleted (the setting ``keep_checkpoints`` keeps them).
A stage whose settings changed starts from nothing (its old output is removed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

from ..processes import ends_with_this_process
from ..records import PARTIAL_SUFFIX, write_json_atomic
from .stages import STAGE_NAMES, Stage, checkpoint_dir, output_flags, resume_flags


@contextlib.contextmanager
def run_folder_lock(run_dir: str):
    """Holds ``RUN_DIR/.lock`` while a run works in the folder, so that a second run there is refused instead of
    interleaving its stages with the first. An ``flock``: the system releases it when the holder ends, even
    killed, so a crash never leaves the folder locked (the file itself stays, holding the last holder's pid)."""
    path = os.path.join(run_dir, ".lock")
    handle = open(path, "a+", encoding="utf-8")  # not inherited by the stages' processes (PEP 446)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ValueError(
            f"{run_dir} is in use by another `openrlhf-distill run` ({holder}); wait for it to end, "
            "or give this run another run_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _has_checkpoint(output: str) -> bool:
    """Whether OpenRLHF finished a checkpoint under the stage's checkpoint folder. DeepSpeed writes the ``latest``
    tag file after the states, so a save cut short leaves the previous tag in force; the tag's folder must still
    exist (OpenRLHF deletes old checkpoints before saving a new one: keep ckpt.max_num >= 2), and a PPO run's
    models (``_actor``, ``_critic``) must all be at the same step."""
    tags = []
    for folder, _, names in os.walk(checkpoint_dir(output)):
        if "latest" in names:
            with open(os.path.join(folder, "latest")) as f:
                tag = f.read().strip()
            if not tag or not os.path.isdir(os.path.join(folder, tag)):
                return False
            tags.append(tag)
    return bool(tags) and len(set(tags)) == 1


class StageFailed(RuntimeError):
    """A stage's command exited with an error; the run stops there and keeps what finished."""


def _file_signature(path: str) -> list:
    if not os.path.exists(path):
        return [path, None]
    if os.path.isfile(path):
        st = os.stat(path)
        return [path, st.st_size, st.st_mtime_ns]
    files = []
    for root, _, names in os.walk(path):
        for name in sorted(names):
            full = os.path.join(root, name)
            st = os.stat(full)
            files.append([os.path.relpath(full, path), st.st_size, st.st_mtime_ns])
    return [path, sorted(files)]


def _as_written(written: dict[str, str]):
    """A function giving back a path (or a command's argument) as the config wrote it: ``written`` maps each
    absolute path the plan uses to the config's own spelling, so fingerprints do not change when the commands
    carry absolute paths (runs started before they did are not redone)."""
    prefixes = sorted(written.items(), key=lambda item: -len(item[0]))

    def rewrite(text: str) -> str:
        for absolute, spelling in prefixes:
            if text == absolute or text.startswith(absolute + os.sep):
                return spelling + text[len(absolute) :]
        return text

    return rewrite


def _as_fingerprinted(arg: str) -> str:
    """A command-line word as fingerprints hash it. Our commands' own flags are spelled as OpenRLHF spells its
    flags (``--max_new_tokens``); plans made before wrote ``--max-new-tokens``, and hashing that spelling keeps
    their run folders done. Dotted flags (OpenRLHF's, our groups') were always spelled as now."""
    return arg.replace("_", "-") if arg.startswith("--") and "." not in arg and "_" in arg else arg


def fingerprints(stages: list[Stage], written: dict[str, str] | None = None) -> dict[str, str]:
    """Each stage's fingerprint: its command + its inputs (upstream fingerprints, or the files themselves), with
    paths as the config wrote them (``written``: absolute path -> spelling in the config) and flags as plans
    before this spelling wrote them (`_as_fingerprinted`)."""
    as_written = _as_written(written or {})

    def rewrite(arg: str) -> str:
        return _as_fingerprinted(as_written(arg))

    made_by = {stage.output: stage.key for stage in stages}
    out: dict[str, str] = {}
    for stage in stages:
        parts = {"argv": [rewrite(arg) for arg in stage.argv], "inputs": []}
        parts |= {"resolved": stage.resolved} if stage.resolved else {}
        for path in stage.inputs:
            producer = made_by.get(path) or next((k for o, k in made_by.items() if path.startswith(o + os.sep)), None)
            signature = _file_signature(path)
            parts["inputs"].append(["stage", out[producer]] if producer in out else [rewrite(path), *signature[1:]])
        out[stage.key] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return out


def _record_path(run_dir: str, key: str) -> str:
    return os.path.join(run_dir, "stages", key.replace("@", "_") + ".json")


def log_path(run_dir: str, key: str) -> str:
    return os.path.join(run_dir, "stages", key.replace("@", "_") + ".log")


# Terminal control in a stage's output (colours, cursor moves of progress bars): shown on the console as it comes,
# kept out of the log file, which is read in editors and by `grep`.
_TERMINAL_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]"
)


def as_log_text(line: str) -> str:
    """``line`` without terminal control sequences (a progress bar's redraws come as lines of their own)."""
    return _TERMINAL_CONTROL.sub("", line)


def _run_logged(command: list[str], log_file: str, header: str) -> int:
    """Runs ``command``, its output shown as it comes and appended to ``log_file``; returns the exit code."""
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {header}\n$ {' '.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            preexec_fn=ends_with_this_process(),
        )
        try:
            for line in proc.stdout:  # both flushed per line: `tail -f` works, and a kill loses nothing
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(as_log_text(line))
                log.flush()
        finally:
            code = proc.wait()  # on an interrupt, the stage sees it too (same process group) and ends
        log.write(f"=== exit {code}\n")
    return code


def _read_record(run_dir: str, key: str) -> dict | None:
    try:
        with open(_record_path(run_dir, key)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def _counts(stage: Stage) -> dict:
    """Samples and tokens a stage generated, from the summary its command writes."""
    summary = os.path.join(stage.output, "summary.json") if os.path.isdir(stage.output) else stage.output
    try:
        with open(summary) as f:
            data = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError, IsADirectoryError):
        return {"samples": None, "tokens": None}
    if stage.name in ("teacher_samples", "student_samples"):
        return {"samples": data.get("samples"), "tokens": data.get("tokens")}
    if stage.name == "eval":
        return {"samples": data.get("n"), "tokens": data.get("tokens_generated")}
    return {"samples": None, "tokens": None}


def status(stage: Stage, run_dir: str, fingerprint: str) -> str:
    """``done`` (skipped on run), ``resume`` (started with these settings), ``stale`` or ``new``."""
    record = _read_record(run_dir, stage.key)
    if record is None:
        return "new"
    if record["fingerprint"] != fingerprint:
        return "stale"
    if record["status"] == "done" and os.path.exists(stage.output):
        return "done"
    return "resume"


def select(stages: list[Stage], from_stage: str | None, until_stage: str | None) -> tuple[list[Stage], set]:
    """The stages to consider (up to ``until_stage``), and the keys forced to rerun (``from_stage`` on).

    A stage's name stops every seed after that stage (``rm_eval``: every seed's RM evaluated, no PPO yet); a key
    stops the plan after that one stage (``rm_eval@seed0``: seed 0 up to its RM evaluation, nothing of later seeds).
    """
    for name in (from_stage, until_stage):
        if name is not None and name not in STAGE_NAMES and not any(s.key == name for s in stages):
            raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)} (or a key like rm@seed0)")

    def matches(stage, name):
        return stage.name == name or stage.key == name

    if until_stage in STAGE_NAMES:
        # The plan runs seed after seed: a stage's name means that stage of every seed, and what comes before it.
        stages = [s for s in stages if STAGE_NAMES.index(s.name) <= STAGE_NAMES.index(until_stage)]
    elif until_stage is not None:  # a key (rm@seed0): up to that one stage of the plan
        last = max(i for i, s in enumerate(stages) if matches(s, until_stage))
        stages = stages[: last + 1]
    forced = set()
    if from_stage is not None:
        first = min((i for i, s in enumerate(stages) if matches(s, from_stage)), default=len(stages))
        forced = {s.key for s in stages[first:]}
    return stages, forced


def describe(
    stages: list[Stage],
    run_dir: str,
    forced: set,
    written: dict[str, str] | None = None,
    notes: dict[str, str] | None = None,
) -> list[str]:
    """A line per stage (its state, its key, ``notes`` of it such as the GPUs it uses) and its command."""
    prints = fingerprints(stages, written)
    lines = []
    for stage in stages:
        state = "rerun" if stage.key in forced else status(stage, run_dir, prints[stage.key])
        command = stage.command + (output_flags(stage.output + PARTIAL_SUFFIX) if stage.partial else [])
        note = f"  ({notes[stage.key]})" if notes and stage.key in notes else ""
        lines.append(f"[{state:>6}] {stage.key}{note}\n    {' '.join(command)}")
    return lines


def run_stages(
    stages: list[Stage],
    run_dir: str,
    *,
    forced: set = frozenset(),
    log=print,
    written: dict[str, str] | None = None,
    keep_checkpoints: bool = False,
) -> dict:
    """Runs what is not done; returns {key: status before the run}. ``written``: as for `fingerprints`;
    ``keep_checkpoints``: a finished trainer stage keeps its DeepSpeed checkpoints (by default only its model)."""
    prints = fingerprints(stages, written)
    seen = {}
    for stage in stages:
        fingerprint = prints[stage.key]
        state = "rerun" if stage.key in forced else status(stage, run_dir, fingerprint)
        seen[stage.key] = state
        if state == "done":
            log(f"[  done] {stage.key}")
            continue
        if state in ("stale", "rerun"):  # other settings or a forced rerun: start from nothing
            for path in (stage.output, stage.output + PARTIAL_SUFFIX, *stage.work):
                _remove(path)
        previous = _read_record(run_dir, stage.key) if state == "resume" else None
        spent = previous.get("wall_seconds", 0.0) if previous else 0.0
        record = {
            "stage": stage.name,
            "key": stage.key,
            "seed": stage.seed,
            "fingerprint": fingerprint,
            "status": "started",
            "command": stage.command,
            "wall_seconds": spent,
        }
        write_json_atomic(_record_path(run_dir, stage.key), record)
        log(f"[{'resume' if state == 'resume' else '   run'}] {stage.key}")
        command = stage.command
        if stage.partial:
            partial = stage.output + PARTIAL_SUFFIX
            if state == "resume" and _has_checkpoint(partial):
                # OpenRLHF saved a checkpoint (ckpt.save_steps) before the kill: its trainer continues from it.
                command = command + resume_flags(partial)
                log(f"[resume] {stage.key}: from the checkpoint in {checkpoint_dir(partial)}")
            else:
                _remove(partial)  # no checkpoint to continue from: start the stage over
                command = command + output_flags(partial)
        started = time.time()
        stage_log = log_path(run_dir, stage.key)
        code = _run_logged(command, stage_log, "resume" if state == "resume" else "run")
        record["wall_seconds"] = round(spent + time.time() - started, 1)
        if code != 0:
            write_json_atomic(_record_path(run_dir, stage.key), record)
            raise StageFailed(
                f"stage {stage.key} failed (exit {code}); rerun the same command to continue.\n"
                f"command: {' '.join(command)}\nits output: {stage_log}"
            )
        if stage.partial:
            if not keep_checkpoints:  # resuming is over: the optimizer states are only bulk now
                _remove(checkpoint_dir(stage.output + PARTIAL_SUFFIX))
            _remove(stage.output)
            os.replace(stage.output + PARTIAL_SUFFIX, stage.output)
        record.update(status="done", **_counts(stage))
        write_json_atomic(_record_path(run_dir, stage.key), record)
    return seen
