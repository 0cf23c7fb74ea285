"""Settings with a range, defined once for both places a setting arrives: a command-line flag (an argparse type:
a value outside the range is an argparse error, exit 2 with one line naming the flag) and a pipeline config
value (``pipeline/config.py`` checks typed YAML values with the same checks). Either way the error comes when
the command starts, not as an empty result or a crash after the expensive part.

A check takes a value and returns what is wrong with it ("must be ..."), or None.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Check = Callable[[object], "str | None"]


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def int_at_least(low: int) -> Check:
    """An integer >= ``low`` (a count or a batch size: 0 would loop for ever, divide by zero or give nothing)."""
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low  # noqa: E731
    return lambda v: None if ok(v) else f"must be an integer >= {low}"


def int_in(low: int, high: int) -> Check:
    """An integer in [low, high] (a port: 0..65535)."""
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high  # noqa: E731
    return lambda v: None if ok(v) else f"must be an integer in [{low}, {high}]"


def number_in(low: float, high: float | None = None) -> Check:
    """A number in [low, high], or >= low without ``high`` (a temperature, a wait, a share); never nan."""
    where = f">= {low}" if high is None else f"in [{low}, {high}]"
    ok = lambda v: _is_number(v) and low <= v and (high is None or v <= high)  # noqa: E731
    return lambda v: None if ok(v) else f"must be a number {where}"


def argparse_type(kind: type, check: Check) -> Callable[[str], int | float]:
    """An argparse ``type=`` that reads ``kind`` from the flag's text and applies ``check``."""

    def read(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{check(None)}, got {text!r}") from None
        if problem := check(value):
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    read.__name__ = f"{kind.__name__} ({check(None).removeprefix('must be ')})"  # argparse names it in errors
    return read


positive_int = argparse_type(int, int_at_least(1))
non_negative_int = argparse_type(int, int_at_least(0))
non_negative_float = argparse_type(float, number_in(0))
unit_interval = argparse_type(float, number_in(0, 1))
