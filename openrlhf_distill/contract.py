"""The output contract every command keeps, applied by the command layer (`cli.main`), not by each command.

A command declares its paths in its module's ``PATHS``: each an :class:`Input` or an :class:`Output`, a file or
a folder. Before the command does any work, :func:`claim` resolves them and refuses, in one line, an output that

- is one of the command's inputs, or a folder holding one;
- is a file where a folder is expected, or the reverse;
- holds anything this package did not write there: a folder without our marker that is not empty, a folder of
  ours with an entry the command did not leave (a file the user added since), a file we did not write or that
  changed since we wrote it;

then takes a lock on each output, so that a second command on the same output is refused rather than
interleaved. When the command succeeds, :func:`claim` records what is ours: a folder's marker lists its entries;
a file's sidecar (``.NAME.openrlhf-distill`` beside it) holds its digest. The same sidecar is the lock.

A folder output is claimed before the command writes into it (the marker says "not complete"), so a command
killed half-way leaves a folder a rerun continues: its entries then need only match the names the command
declares it leaves while working (``resumable``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .compat.flags import flag_value
from .model_folders import check_model_folder
from .records import OUTPUT_MARKER, PARTIAL_SUFFIX, file_sha256, is_inside, read_output_marker, write_json_atomic

SIDECAR = ".{name}.openrlhf-distill"  # beside each output: its lock, and for a file what we wrote
LEGACY_OWNERS = {"run.json": "run"}  # folders written before the marker: the file that shows whose they are


class OutputRefused(ValueError):
    """An output the command may not write (one line: the path, what is wrong, what to do)."""


@dataclass(frozen=True)
class Path:
    """One path a command reads or writes.

    ``name``: the flag's field (``--teacher_samples``), a positional's name, or for an OpenRLHF flag passed on its
    dotted name (``ckpt.output_dir``, read from the argv the command passes on, ``openrlhf_default`` when absent).
    ``derived``: no flag; computed from the parsed arguments and the argv passed on (eval's samples folder).
    ``kind``: "file", "folder", "either" (an input of sample records: one .jsonl file or a folder of them), or
    "model" (a model folder, checked for its config and weights, or a Hub id or served name, left to its loader).
    ``resumable``: for a folder output, the entries (glob patterns) an interrupted run leaves and a rerun continues;
    ``("*",)`` for a folder a trainer fills. ``entries``: for a folder output whose entries the command knows only
    from its arguments (`run`'s run folder), a function giving the top-level names it may hold.
    """

    name: str
    role: str
    kind: str
    help: str = ""
    required: bool = False
    positional: bool = False
    aliases: tuple[str, ...] = ()
    openrlhf_default: str | None = None
    openrlhf: bool = False
    derived: Callable[[argparse.Namespace, list[str]], str | None] | None = None
    resumable: tuple[str, ...] = ()
    entries: Callable[[argparse.Namespace, list[str]], set[str]] | None = None
    flagless: bool = False  # its flag is a settings field's (`settings.py`): read, not made, here

    @property
    def flag(self) -> str:
        return self.name if self.positional else f"--{self.name}"


def Input(name: str, kind: str, help: str = "", **options) -> Path:  # noqa: N802 (a declaration, read as a noun)
    return Path(name, "input", kind, help, **options)


def Output(name: str, kind: str, help: str = "", **options) -> Path:  # noqa: N802
    return Path(name, "output", kind, help, **options)


def add_paths(parser: argparse.ArgumentParser, paths: tuple[Path, ...]) -> None:
    """The flags of the paths a command owns (OpenRLHF's are OpenRLHF's; derived paths have none), spelled as
    OpenRLHF spells flags; an earlier kebab spelling still accepted, not shown."""
    for path in paths:
        if path.openrlhf or path.derived or path.flagless:
            continue
        if path.positional:
            parser.add_argument(path.name, help=path.help)
            continue
        earlier = tuple(a for a in (f"--{path.name.replace('_', '-')}",) if a != path.flag) + path.aliases
        if path.required:  # argparse asks for one action: the earlier spelling is a second name of it
            parser.add_argument(path.flag, *earlier, dest=path.name, required=True, help=path.help)
            continue
        parser.add_argument(path.flag, dest=path.name, default=None, help=path.help)
        for alias in earlier:
            parser.add_argument(alias, dest=path.name, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def resolve(paths: tuple[Path, ...], args: argparse.Namespace, rest: list[str]) -> list[tuple[Path, str]]:
    """Each declared path with its value this time (paths not given left out); a comma list of inputs is split."""
    out = []
    for path in paths:
        if path.derived:
            value = path.derived(args, rest)
        elif path.openrlhf:
            value = flag_value(rest, path.flag) or path.openrlhf_default
        else:
            value = vars(args).get(path.name)
        if not value:
            continue
        for one in value.split(",") if path.role == "input" and "," in value else [value]:
            out.append((path, one))
    return out


# --- what is ours ------------------------------------------------------------------------------------------------


def _sidecar(path: str) -> str:
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, SIDECAR.format(name=name))


def is_bookkeeping(name: str) -> bool:
    """Entries this package keeps beside or inside outputs: markers, sidecars, partial folders, locks."""
    return (
        name == OUTPUT_MARKER
        or (name.startswith(".") and name.endswith(".openrlhf-distill"))
        or re.search(rf"{re.escape(PARTIAL_SUFFIX)}(-\d+)?$", name) is not None  # X.partial, X.partial-PID
        or name == ".lock"
    )


def _read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _refuse(path: str, problem: str) -> None:
    raise OutputRefused(f"{path}: {problem}")


def _check_file(command: str, path: str) -> None:
    if os.path.isdir(path):
        _refuse(path, f"`{command}` writes a file here and this is a folder; give a file path")
    if not os.path.exists(path):
        return
    record = _read_json(_sidecar(path))
    if record is None:
        _refuse(path, "this file was not written by openrlhf-distill; choose another path, or remove it yourself")
    if record.get("sha256") != file_sha256(path):
        _refuse(
            path,
            f"this file changed since `{record.get('command')}` wrote it (yours now); choose another path, or "
            "remove it yourself",
        )


def _folder_owner(path: str) -> dict | None:
    marker = read_output_marker(path)
    if marker is not None:
        return marker
    for name, command in LEGACY_OWNERS.items():
        if os.path.exists(os.path.join(path, name)):
            return {"command": command}
    return None


def _check_folder(command: str, path: str, declared: Path, args, rest) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        _refuse(path, f"`{command}` writes a folder here and this is a file; give a folder path")
    if not os.path.isdir(path):
        return
    entries = sorted(n for n in os.listdir(path) if not is_bookkeeping(n))
    if not entries:
        return
    owner = _folder_owner(path)
    if owner is None:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        _refuse(
            path,
            f"this folder holds files not written by openrlhf-distill ({len(entries)}: {shown}); choose a new or "
            "empty folder, or remove them yourself",
        )
    if owner.get("command") != command:
        _refuse(path, f"this folder is the output of `{owner.get('command')}`, not of `{command}`; choose another")
    if "complete" not in owner:
        return  # marked before entries were recorded: all of it is ours
    # finished: only what it held then; interrupted: what a run leaves while it works
    allowed = set(owner.get("entries") or ()) if owner["complete"] else set()
    patterns = () if owner["complete"] else declared.resumable
    if declared.entries is not None:
        allowed |= declared.entries(args, rest)
    foreign = [n for n in entries if n not in allowed and not any(fnmatch.fnmatch(n, p) for p in patterns)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        _refuse(
            path,
            f"this folder holds files `{command}` did not write ({len(foreign)}: {shown}); move them out, or "
            "choose another folder",
        )


def check(command: str, resolved: list[tuple[Path, str]], args=None, rest=()) -> None:
    """Refuses, with :class:`OutputRefused`, an output the contract does not allow (the module docstring), and a
    model folder without its config or weights, before anything loads it."""
    for path, value in resolved:
        if path.kind == "model":
            check_model_folder(value, path.flag)
    _check_outputs(command, resolved, args, rest)


def _check_outputs(command: str, resolved: list[tuple[Path, str]], args, rest) -> None:
    inputs = [value for path, value in resolved if path.role == "input"]
    for path, value in resolved:
        if path.role != "output":
            continue
        for given in inputs:
            if is_inside(given, value):
                what = "is" if os.path.realpath(given) == os.path.realpath(value) else "holds"
                _refuse(value, f"this output {what} an input of `{command}` ({given}); choose another output")
        if path.kind == "file":
            _check_file(command, value)
        else:
            _check_folder(command, value, path, args, list(rest))


@contextlib.contextmanager
def _lock(command: str, path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handle = open(_sidecar(path), "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OutputRefused(
            f"{path}: another openrlhf-distill command is writing this output now; wait for it to end, or "
            "choose another"
        ) from None
    try:
        yield
    finally:
        handle.close()  # releases the lock; the sidecar stays (it holds a file's digest)


def _mark_folder(command: str, path: str, complete: bool) -> None:
    os.makedirs(path, exist_ok=True)
    marker = {"command": command, "complete": complete}
    if complete:
        marker["entries"] = sorted(n for n in os.listdir(path) if not is_bookkeeping(n))
    write_json_atomic(os.path.join(path, OUTPUT_MARKER), marker)


def record_written(command: str, path: Path, value: str) -> None:
    """Records ``value`` (``path`` of ``command``) as ours: a folder's entries in its marker, a file's digest."""
    if path.kind == "file":
        if os.path.isfile(value):
            write_json_atomic(_sidecar(value), {"command": command, "sha256": file_sha256(value)})
    elif os.path.isdir(value):
        _mark_folder(command, value, complete=True)


@contextlib.contextmanager
def claim(command: str, paths: tuple[Path, ...], args: argparse.Namespace, rest: list[str]) -> Iterator[dict]:
    """Checks the command's outputs, locks them, and marks them ours: folders before the work (so an interrupted
    run can be continued), everything with what it holds once the command returned 0. A command that fails
    before writing anything leaves nothing of ours behind either."""
    resolved = resolve(paths, args, rest)
    check(command, resolved, args, rest)
    outputs = [(path, value) for path, value in resolved if path.role == "output"]
    existed = {value: os.path.exists(value) for _, value in outputs}
    sidecars = {value: os.path.exists(_sidecar(value)) for _, value in outputs}
    outcome: dict = {"code": None}
    try:
        with contextlib.ExitStack() as stack:
            for _, value in outputs:
                stack.enter_context(_lock(command, value))
            _check_outputs(command, resolved, args, rest)  # again under the locks: another may have just finished
            marked = [value for path, value in outputs if path.kind == "folder" and not _folder_owner(value)]
            for value in marked:
                _mark_folder(command, value, complete=False)
            try:
                yield outcome
            finally:
                if outcome["code"] == 0:
                    for path, value in outputs:
                        record_written(command, path, value)
                else:
                    _unmark_unused(marked, existed)
    finally:
        for _, value in outputs:  # the locks released: a sidecar we made for an output never written goes
            if not sidecars[value] and not os.path.exists(value):
                with contextlib.suppress(OSError):
                    os.remove(_sidecar(value))


def _unmark_unused(marked: list[str], existed: dict[str, bool]) -> None:
    """After a failure: our marker out of folders that hold nothing else, and the folders we made out too."""
    for value in marked:
        if not os.path.isdir(value) or any(not is_bookkeeping(n) for n in os.listdir(value)):
            continue  # work to continue: the marker stays
        with contextlib.suppress(OSError):
            os.remove(os.path.join(value, OUTPUT_MARKER))
            if not existed[value] and not os.listdir(value):
                os.rmdir(value)
