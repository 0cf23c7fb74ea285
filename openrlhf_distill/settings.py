"""Settings declared once: a command's settings dataclass, its fields made with :func:`setting`, is the only home of
each setting's name, type, default, range and help. The command's flags (:func:`add_flags`) and the run config's
section (:func:`section_defaults`, :func:`section_checks`) are generated from it, and the flags' values come back
as the dataclass (:func:`from_args`).

Flags are spelled as OpenRLHF spells its own: the field's name, underscores kept (``--max_new_tokens``), under an
optional dotted group (``--vllm.tensor_parallel_size``). Earlier spellings a field still accepts are listed in its
``aliases`` (``--max-new-tokens``), hidden from the help.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable

from .argtypes import Check, argparse_type

_NO_DEFAULT = dataclasses.MISSING


def setting(
    default=_NO_DEFAULT,
    help: str = "",
    *,
    check: Check | None = None,
    choices: tuple | None = None,
    aliases: tuple[str, ...] = (),
    flag: bool = True,
    flag_as: str | None = None,
    comma: bool = False,
):
    """A settings field: ``check`` a range (``argtypes``: what is wrong, or None), ``choices`` the values allowed,
    ``aliases`` earlier flag spellings still accepted; ``flag=False`` for a field the command sets itself;
    ``flag_as`` the flag's dotted name where it says which set the setting shapes (``rm.pairs_per_question``);
    ``comma``: a list of strings given comma-separated rather than one per flag."""
    metadata = {
        "help": help,
        "check": check,
        "choices": choices,
        "aliases": aliases,
        "flag": flag,
        "flag_as": flag_as,
        "comma": comma,
    }
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _fields(cls) -> list[tuple[dataclasses.Field, type]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.metadata.get("flag", True)]


def _base(kind) -> tuple[type, bool]:
    """(the value's type, whether None is allowed) of an annotation such as ``int | None``."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args and len(args) < len(typing.get_args(kind)):
        return args[0], True
    return kind, False


def _item(kind) -> type | None:
    """The item type of a ``tuple[X, ...]`` annotation, else None."""
    return typing.get_args(kind)[0] if typing.get_origin(kind) in (tuple, list) else None


def _comma_list(kind: type, field: dataclasses.Field, group: str):
    """An argparse type reading "0.3,0.7" as a tuple of ``kind``, each item checked by the field's check."""
    check = field.metadata.get("check")

    def read(text: str) -> tuple:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
        for value in values:
            if check and (problem := check(value)):
                raise argparse.ArgumentTypeError(f"{value}: {problem}")
        return values

    read.__name__ = f"comma-separated {kind.__name__}s"
    return read


def default_of(field: dataclasses.Field):
    if field.default is not _NO_DEFAULT:
        return field.default
    return field.default_factory() if field.default_factory is not _NO_DEFAULT else None


def dest(field: dataclasses.Field, group: str = "") -> str:
    """Where argparse keeps the field's flag: its dotted name."""
    return field.metadata.get("flag_as") or f"{group + '.' if group else ''}{field.name}"


def flag_name(field: dataclasses.Field, group: str = "") -> str:
    return f"--{dest(field, group)}"


def add_flags(
    parser: argparse.ArgumentParser,
    cls,
    group: str = "",
    *,
    exclude: tuple[str, ...] = (),
    optional: bool = False,
    defaults: dict | None = None,
) -> None:
    """One flag per field of ``cls`` (but ``exclude``): its type, default, choices, range and help. A field without
    a default is a required flag, unless ``optional`` (the settings are then asked for by giving that flag);
    ``defaults``: other defaults where a command means something else by leaving the flag out (``ppo`` chooses
    its RM server's address itself: ``{"host": None}``)."""
    for field, kind in _fields(cls):
        if field.name in exclude:
            continue
        base, _ = _base(kind)
        check, meta = field.metadata.get("check"), field.metadata
        names = [flag_name(field, group)]
        default = (defaults or {}).get(field.name, default_of(field))
        options: dict = {"dest": dest(field, group), "default": default}
        options["help"] = meta.get("help") or None
        no_default = field.default is _NO_DEFAULT and field.default_factory is _NO_DEFAULT
        if no_default and not optional and field.name not in (defaults or {}):
            options["required"] = True
        if base is bool:
            options["action"] = argparse.BooleanOptionalAction if default_of(field) else "store_true"
        elif _item(base) is str and not meta.get("comma"):  # strings may hold commas: one per flag, repeated
            options |= {"action": "append", "default": list(default or ())}
        elif _item(base):  # numbers: comma-separated, as a YAML list is written on the command line
            options["type"] = _comma_list(_item(base), field, group)
        else:
            options["type"] = argparse_type(base, check) if check and base in (int, float) else base
            if meta.get("choices"):
                options["choices"] = meta["choices"]
        parser.add_argument(*names, **options)
        # the same setting under an earlier spelling, not in the help; a command's own flags only (a group's flags
        # had the group's spelling from the start)
        for alias in () if group else meta.get("aliases", ()):
            parser.add_argument(alias, **(options | {"default": argparse.SUPPRESS, "help": argparse.SUPPRESS}))


def from_args(args: argparse.Namespace, cls, group: str = "", **given):
    """``cls`` filled from the flags :func:`add_flags` made (``given``: the fields the command sets itself)."""
    return cls(**flag_values(args, cls, group, exclude=tuple(given)), **given)


def flag_values(args: argparse.Namespace, cls, group: str = "", *, exclude: tuple[str, ...] = ()) -> dict:
    """Field name -> the value of its flag (a list flag's as a tuple), for each flag :func:`add_flags` made."""
    values = {}
    for field, kind in _fields(cls):
        if field.name in exclude:
            continue
        value = getattr(args, dest(field, group))
        values[field.name] = tuple(value) if _item(_base(kind)[0]) and value is not None else value
    return values


def check_fields(values) -> list[tuple[str, str]]:
    """(field, what is wrong) for each field of a settings object outside its range or choices."""
    problems = []
    for field, kind in _fields(type(values)):
        if problem := _value_check(field, kind)(getattr(values, field.name)):
            problems.append((field.name, problem))
    return problems


def refuse_bad_fields(values, prefix: str = "--") -> None:
    """Raises a ValueError naming the first field of ``values`` outside its range or choices, as its flag
    (``prefix`` + name) would be refused."""
    for name, problem in check_fields(values):
        raise ValueError(f"{prefix}{name}: {problem}, got {getattr(values, name)!r}")


def section_defaults(cls, names: tuple[str, ...] | None = None, **other) -> dict:
    """The run config's section for ``cls`` (its fields ``names``, all by default): name -> default, a tuple as a
    YAML list; ``other``: a section that means another default (the student samples more than the teacher)."""
    out = {}
    for field, _ in _fields(cls):
        if names is None or field.name in names:
            value = other.get(field.name, default_of(field))
            out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def section_checks(cls, prefix: str, names: tuple[str, ...] | None = None) -> dict[str, Callable]:
    """The run config's checks of that section: ``prefix.name`` -> a check of the typed YAML value."""
    checks = {}
    for field, kind in _fields(cls):
        if names is not None and field.name not in names:
            continue
        checks[f"{prefix}.{field.name}"] = _value_check(field, kind)
    return checks


def _value_check(field: dataclasses.Field, kind) -> Check:
    base, optional = _base(kind)
    check, choices = field.metadata.get("check"), field.metadata.get("choices")

    def value_check(value):
        if value is None:
            return None if optional else "must be given"
        if _item(base):  # a YAML list, each item checked as the flag checks it
            if not isinstance(value, list | tuple) or (not value and default_of(field)):
                return "must be a non-empty list" if default_of(field) else "must be a list"
            item = _value_check(dataclasses.field(metadata={"check": check}), _item(base))
            problems = [problem for v in value if (problem := item(v))]
            return f"each item {problems[0]}" if problems else None
        if base is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if base in (int, float):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or (base is int and not isinstance(value, int)):  # say the whole range, if it has one
                return check(None) if check else f"must be {'an integer' if base is int else 'a number'}"
        elif base is str and not isinstance(value, str):
            return "must be a string"
        if choices and value not in choices:
            return f"must be one of {', '.join(map(str, choices))}"
        return check(value) if check else None

    return value_check
