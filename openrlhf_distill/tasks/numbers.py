"""Reading numbers out of model text and writing them in one canonical form.

Votes are counted on canonical strings, so every way of writing a value must give the same string:
"18", "18.0", "18.00", "$18", "18 dollars" and "$18.00." all become "18"; "1,234" becomes "1234";
"0.50" becomes "0.5"; "-0" becomes "0".

Fractions: a fraction with a terminating decimal is written as that decimal ("3/4" -> "0.75", the same string
a model writing "0.75" gets), any other stays a reduced fraction ("2/6" -> "1/3"), and a whole one an integer
("6/3" -> "2"). So each value has exactly one canonical string, and string equality is numeric equality.

Before numbers are matched, `normalise_text` rewrites the other ways models write them: LaTeX and Unicode
fractions ("\\frac{3}{4}", "¾"), mixed numbers ("2 1/2", "2\\frac{1}{2}", "2 and a half" -> "5/2") and scaled
numbers ("1.2 million" -> "1200000"). Number words ("eighteen", "one hundred and five") are rewritten only where
a task asks for it (`spelled_numbers_to_digits`): "one" is too often a pronoun for every text to be read so.
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

# LaTeX that models put around numbers: \frac{3}{4} (and \frac34), 1{,}234, thin spaces, the Unicode minus sign
# and fraction slash, and the Unicode vulgar fractions. A fraction written right after a digit is the fraction
# part of a mixed number ("2\frac{1}{2}", "2½"), so it gets a space: "21/2" would read as ten and a half.
_LATEX_FRACTION = re.compile(r"(\d?)\\[dt]?frac\s*(?:\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}|(\d)\s*(\d))")
_LATEX_REPLACEMENTS = (("{,}", ","), ("\\!", ""), ("\\,", ""), ("\u2212", "-"), ("\u2044", "/"))
_VULGAR_FRACTIONS = {
    "½": "1/2",
    "⅓": "1/3",
    "⅔": "2/3",
    "¼": "1/4",
    "¾": "3/4",
    "⅕": "1/5",
    "⅖": "2/5",
    "⅗": "3/5",
    "⅘": "4/5",
    "⅙": "1/6",
    "⅚": "5/6",
    "⅛": "1/8",
    "⅜": "3/8",
    "⅝": "5/8",
    "⅞": "7/8",
}
_VULGAR_FRACTION = re.compile(r"(\d?)([" + "".join(_VULGAR_FRACTIONS) + "])")
# "2 1/2", "2 and 1/2" and "2 and a half": a whole number and a proper fraction, read as one value.
_MIXED_NUMBER = re.compile(
    r"(?<![\w./,])(\d+)(?:[ \t]+(?:and[ \t]+)?(\d+)/(\d+)(?![\d/]|\.\d)|[ \t]+and[ \t]+a[ \t]+half\b)"
)
# "1.2 million", "$3 billion", "12 thousand": a number scaled by a word.
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_SCALE_MARK = re.compile("undred|housand|illion", re.I)
_SCALED_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?[ \t]+(" + "|".join(_SCALES) + r")\b", re.I)


def _latex_fraction(match: re.Match) -> str:
    whole, numerator, denominator = match[1], match[2] or match[4], match[3] or match[5]
    return f"{whole} {numerator}/{denominator}" if whole else f"{numerator}/{denominator}"


def _vulgar_fraction(match: re.Match) -> str:
    whole, fraction = match[1], _VULGAR_FRACTIONS[match[2]]
    return f"{whole} {fraction}" if whole else fraction


def _mixed_number(match: re.Match) -> str:
    whole = int(match[1])
    numerator, denominator = (int(match[2]), int(match[3])) if match[2] else (1, 2)
    if not 0 < numerator < denominator:
        return match[0]  # "3 6/4" or "3 0/5" is no mixed number: two numbers, left as written
    return f"{whole * denominator + numerator}/{denominator}"


def _scaled_number(match: re.Match) -> str:
    value = Decimal(match[1].replace(",", "") + (match[2] or "")) * _SCALES[match[3].lower()]
    return format_number(Fraction(value))


# Text inside LaTeX ("2.4 \\text{ million}", "18 \\mbox{dollars}") is read as plain text.
_LATEX_TEXT = re.compile(r"\\(?:text|textrm|mbox|mathrm)\s*\{([^{}]*)\}")


def normalise_text(text: str) -> str:
    """Rewrites the LaTeX, Unicode, mixed and scaled spellings of numbers into the plain ones `NUMBER` reads."""
    for old, new in _LATEX_REPLACEMENTS:
        text = text.replace(old, new)
    # Each rewrite runs only when its mark is in the text: most responses need none, and this is the hot path
    # of labelling (every sample of every question).
    if "\\" in text:
        text = _LATEX_FRACTION.sub(_latex_fraction, _LATEX_TEXT.sub(r"\1", text))
    if any(fraction in text for fraction in _VULGAR_FRACTIONS):
        text = _VULGAR_FRACTION.sub(_vulgar_fraction, text)
    if "/" in text or "half" in text:
        text = _MIXED_NUMBER.sub(_mixed_number, text)
    if _SCALE_MARK.search(text):
        text = _SCALED_NUMBER.sub(_scaled_number, text)
    return text


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


# Number words: "eighteen", "twenty-five", "one hundred and five", "two thousand three hundred", "zero".
_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUES = {word: value for value, word in enumerate(_UNITS)} | {w: 10 * (i + 2) for i, w in enumerate(_TENS)}
_NUMBER_WORD = "|".join([*_UNITS, *_TENS, *_SCALES])
# A run of number words joined by spaces, hyphens or "and" ("one hundred and five"); parsed by `_words_value`.
# The lookahead on first letters lets the engine skip most positions quickly (three times faster on responses).
_NUMBER_WORDS = re.compile(
    rf"(?=[zotfsenhmbZOTFSENHMB])\b(?:{_NUMBER_WORD})(?:(?:[ \t]+|-|[ \t]+and[ \t]+)(?:{_NUMBER_WORD}))*\b"
    r"(?:[ \t]+and[ \t]+a[ \t]+half\b)?",
    re.I,
)


def _words_value(words: list[str]) -> int | None:
    """The value of number words in English order ("two thousand three hundred and five"), or None if they are
    not one number ("two three", "hundred" alone, "thousand two thousand")."""
    total, group, last_scale, previous = 0, 0, None, None
    for word in words:
        if word in _SCALES:
            if previous is None or previous in _SCALES and _SCALES[previous] >= _SCALES[word]:
                return None
            if word == "hundred":
                group *= 100
            else:
                if last_scale is not None and _SCALES[word] >= last_scale:
                    return None
                total, group, last_scale = total + group * _SCALES[word], 0, _SCALES[word]
        else:
            value = _WORD_VALUES[word]
            # After a unit or a teen only a scale may follow; after a ten only a unit 1-9 ("twenty-five").
            if previous is not None and previous not in _SCALES:
                if not (_WORD_VALUES[previous] in range(20, 100, 10) and 0 < value < 10):
                    return None
            group += value
        previous = word
    return total + group


def _spelled_number(match: re.Match, lone_one: bool) -> str:
    text = match[0]
    half = re.search(r"[ \t]+and[ \t]+a[ \t]+half$", text, re.I)
    words_text = text[: half.start()] if half else text
    words = [w for w in re.split(r"[ \t]+|-", words_text.lower()) if w and w != "and"]
    value = _words_value(words)
    if value is None or (words == ["one"] and not lone_one and not half):
        return text
    return f"{2 * value + 1}/2" if half else str(value)


def spelled_numbers_to_digits(text: str, *, lone_one: bool = True) -> str:
    """Rewrites number words as digits ("eighteen books" -> "18 books", "two and a half" -> "5/2").

    With `lone_one=False` a lone "one" stays a word: in running text it is mostly a pronoun ("each one", "one
    of them"), so a response's last number is not taken from it. Words that are no single number ("two three")
    are left as written.
    """
    return _NUMBER_WORDS.sub(lambda match: _spelled_number(match, lone_one), text)
