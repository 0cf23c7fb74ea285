"""Reading numbers out of model text and writing them in one canonical form.

Votes are counted on canonical strings, so every way of writing a value must give the same string:
"18", "18.0", "18.00", "$18", "18 dollars" and "$18.00." all become "18"; "1,234" becomes "1234";
"0.50" becomes "0.5"; "-0" becomes "0".

Fractions: a fraction with a terminating decimal is written as that decimal ("3/4" -> "0.75", the same string
a model writing "0.75" gets), any other stays a reduced fraction ("2/6" -> "1/3"), and a whole one an integer
("6/3" -> "2"). So each value has exactly one canonical string, and string equality is numeric equality.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

NUMBER = re.compile(
    r"""
    (?<![\w./])                              # not inside a word, a decimal or a fraction (x2, 3.5.1, 12/25)
    (?P<sign>-)?(?:\\?\$[ \t]?)?(?P<sign2>-)?  # a minus sign before or after a dollar sign ($ or LaTeX \$)
    (?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)  # 1,234 only with full groups of three
    (?:/(?P<denominator>\d+)(?![\d/]|\.\d))? # 3/4 (and 3/4. ending a sentence), not a date 12/25/2020
    """,
    re.X,
)

# LaTeX that models put around numbers: \frac{3}{4}, 1{,}234, thin spaces, and the Unicode minus sign.
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_LATEX_REPLACEMENTS = (("{,}", ","), ("\\!", ""), ("\\,", ""), ("\u2212", "-"))


def normalise_text(text: str) -> str:
    """Rewrites the LaTeX and Unicode spellings of numbers into the plain ones `NUMBER` reads."""
    for old, new in _LATEX_REPLACEMENTS:
        text = text.replace(old, new)
    return _LATEX_FRACTION.sub(r"\1/\2", text)


def format_number(value: Fraction) -> str:
    """The canonical string of a value: integer, exact terminating decimal, or reduced fraction "p/q"."""
    if value.denominator == 1:
        return str(value.numerator)
    rest, digits = value.denominator, 0
    for prime in (2, 5):
        count = 0
        while rest % prime == 0:
            rest //= prime
            count += 1
        digits = max(digits, count)
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    scaled = abs(value.numerator) * 10**digits // value.denominator
    whole, fraction = divmod(scaled, 10**digits)
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}.{str(fraction).zfill(digits).rstrip('0')}"


# Longer digit runs are degenerate output (a model repeating "1111..."), not answers; Python also refuses to
# print integers of more than 4300 digits.
MAX_DIGITS = 100


def canonical_from_match(match: re.Match) -> str | None:
    """The canonical string of one `NUMBER` match; None for a division by zero or an absurdly long number."""
    if len(match["number"]) > MAX_DIGITS or len(match["denominator"] or "") > MAX_DIGITS:
        return None
    value = Fraction(Decimal(match["number"].replace(",", "")))
    if match["denominator"]:
        if int(match["denominator"]) == 0:
            return None
        value /= int(match["denominator"])
    if match["sign"] or match["sign2"]:
        value = -value
    return format_number(value)


def first_number(text: str) -> str | None:
    """The canonical form of the first number in a short answer ("$1,234.00 dollars." -> "1234"), else None."""
    for match in NUMBER.finditer(normalise_text(text)):
        canonical = canonical_from_match(match)
        if canonical is not None:
            return canonical
    return None


def last_number(text: str) -> str | None:
    """The canonical form of the last number in a text, else None."""
    for match in reversed(list(NUMBER.finditer(normalise_text(text)))):
        canonical = canonical_from_match(match)
        if canonical is not None:
            return canonical
    return None
