"""argparse types for settings with a range: a value outside it is an argparse error (exit 2, one line naming
the flag) when the command line is read, not an empty result or a crash after the expensive part."""

from __future__ import annotations

import argparse


def _number(kind, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


def positive_int(text: str) -> int:
    """An integer >= 1 (a count or a batch size: 0 would loop for ever, divide by zero or produce nothing)."""
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """A number >= 0 (a temperature, a wait)."""
    value = _number(float, text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1] (a share, a label threshold)."""
    value = _number(float, text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value
