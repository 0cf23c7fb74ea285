"""MMLU-Pro: multiple choice with up to ten options, lettered A to J; the answer is one letter.

Extraction looks for explicit answer statements only, and takes the LAST one in the response (up to any invented
continuation, and after a reasoning model's `</think>` first), because models revise themselves ("the answer is
(B). Wait, ... the answer is (D)."). Statements read, in any case:
  answer_is       "the answer is (X)", "the correct answer is X", "the answer is option X"
  answer_colon    "Answer: X", "**Final Answer:** (X)", "Answer: I think it's (X)"
  correct_choice  "the correct choice is X", "the best option is X"
  letter_correct  "(X) is the correct answer", "option (X) is correct", "X is correct."
  boxed           "\\boxed{X}"
  final_line      a last line that is just the option, "(X) its value", under a line that is not an option
The letter may be wrapped in parentheses, brackets, quotes, bold or LaTeX (`\\text{(X)}`).
There is no fallback: a response without a statement has no answer (None), never a guessed or random letter.
A statement that hedges between letters ("either (B) or (D)", "B/D") names none; when it is the last statement,
the response has no answer. A bare letter must stand alone: "I think" or "a bit" are words, not options; see
`_read_letter`.

Options come from `record["meta"]["options"]` (our prompt records) or else `record["options"]` (the layout of
the Hugging Face dataset), a list of at most ten strings.
"""

from __future__ import annotations

import re

from .base import (
    NO_ANSWER,
    ChatMessages,
    Extraction,
    Task,
    boxed_contents,
    gold_field,
    user_message,
)

LETTERS = "ABCDEFGHIJ"

_STATEMENTS = (
    ("answer_is", re.compile(r"\banswer\s+(?:is|would\s+be)\b", re.I)),
    ("answer_colon", re.compile(r"\banswer\s*(?:\*\*)?\s*:", re.I)),
    ("correct_choice", re.compile(r"\b(?:correct|right|best)\s+(?:choice|option)\s+(?:is|would\s+be)\b", re.I)),
)
# Words a model puts between a statement and its letter: "Answer: I think it's (B)", "it is probably (C)",
# "I'd go with D", "either (B) or (D)" (a hedge: see `_HEDGE`). "I think B" alone stays unread: there "I" may
# be the pronoun or the option, and the statement names no letter for sure.
_LEAD_IN = r"""(?:
    (?:i\s+(?:think|believe|guess)|i['\u2019]m\s+(?:fairly\s+|quite\s+)?(?:sure|confident))\s+(?:that\s+)?
        (?:it['\u2019]?s|it\s+is|it\s+would\s+be|the\s+answer\s+is)\s+
    | (?:it['\u2019]?s|it\s+is|that['\u2019]?s|this\s+is)\s+
    | (?:i(?:['\u2019]d|\s+would)\s+(?:say|go\s+with|choose|pick)|i(?:['\u2019]ll|\s+will)\s+go\s+with)\s+
    | (?:probably|likely|most\s+likely|definitely|clearly|either|between)\s+
    )*"""
# What may follow a statement: markup, LaTeX, "option", a lead-in, then "(X)", "[X]", a quoted X, or a bare X
# that is not the start of a word ("It", "I'm").
_LETTER = re.compile(
    r"""[\s:*$]*(?:\\[(\[]\s*)?(?:(?:option|choice)\s+)?"""
    + _LEAD_IN
    + r"""(?:(?:option|choice)\s+)?
    (?:\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{\s*)?(?:\*\*)?
    (?:\(([A-J])\)|\[([A-J])\]|["\u201c'\u2018`]([A-J])["\u201d'\u2019`]|([A-J])(?![\w'\u2019]))""",
    re.I | re.X,
)
# After a bare lowercase letter or a bare "I", only the end of the statement may follow ("is I.", "is b)").
_STATEMENT_END = re.compile(r"[*}$]*\s*(?:$|[.,;:!?)\]\n])")
_BOXED_LETTER = re.compile(r"[\s(]*(?:\\text(?:bf)?\{)?\s*\(?([A-J])\)?\s*\}?[\s).]*", re.I)
# A second letter joined to the first: "(B) or (D)", "B/D", "B, C", "(B). Or possibly (D)".
_HEDGE = re.compile(
    r"""[)\]*}$"\u201d'\u2019`]*(?:\s*,?\s*(?:or|and/or|and|vs\.?|versus)\s+|\s*/\s*|\s*,\s*|\s*[.;]\s*or\s+)
    (?:possibly\s+|maybe\s+|perhaps\s+|also\s+|potentially\s+)?""",
    re.I | re.X,
)
_HEDGE_BEFORE = re.compile(r"(?<![\w'])\(?[A-J]\)?\s*(?:,|or|/|and|and/or)\s*(?:option\s+|choice\s+)?$")
# "(F) is the correct answer", "option (X) is correct", "Option C is the right one", "B is correct.": a letter,
# optionally its option text (after a parenthesised letter), then the verdict. Not "incorrect", not a question.
_LETTER_CORRECT = re.compile(
    r"""(?:\b(?:option|choice)\s+)?(?:\*\*)?
    (?:\(([A-J])\)(?:\*\*)?(?:[^\n.()?]{0,40}?)|\[([A-J])\]|["\u201c]([A-J])["\u201d]|\b([A-J]))(?:\*\*)?
    \s+is\s+(?:the\s+)?(?:correct|right|best)\b(?!\s*\?)""",
    re.X,
)
_VERDICT = re.compile(r"\bis\s+(?:the\s+)?(?:correct|right|best)\b")
# A bare letter is an option only at the start of a sentence or after a word that leads to a conclusion:
# "Statement I is correct" and "part B is correct" speak of something else.
_BARE_LETTER_OPENING = re.compile(
    r"(?:[.,:;!?\n(]|\b(?:so|thus|therefore|hence|then|clearly|only|option|choice))\W*\Z", re.I
)
# A line that looks like an option: "(C) 42 m/s", "C. 42", "C) 42", "**(C)**".
_OPTION_LINE = re.compile(r"^[\s>*_#-]*\(?([A-J])[).:](?:\*\*)?(?:\s|$)")
_FINAL_OPTION_LINE = re.compile(r"^[\s>*_#-]*(?:\*\*)?\(([A-J])\)(?:\*\*)?(?:[ \t]+\S.*)?$")

ZERO_SHOT_INSTRUCTION = (
    'Think step by step, then finish your response with "The answer is (X)", where X is the letter of the '
    "correct option."
)
FEW_SHOT_HEADER = (
    "The following are multiple choice questions (with answers) about {subject}. Think step by step and then "
    'finish your answer with "the answer is (X)" where X is the correct letter choice.\n\n'
)
# lm-evaluation-harness's MMLU-Pro layout ("Question:\n...\nOptions:\nA. ...\nAnswer: Let's think step by step.")
# with exemplars written for this project: published evaluations use five per subject from the validation split.
FEW_SHOT_EXEMPLARS = (
    (
        "Which planet is closest to the Sun?",
        ["Venus", "Mercury", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune", "Pluto", "The Moon"],
        "Mercury orbits nearest the Sun, inside the orbit of Venus. The answer is (B).",
    ),
    (
        "What is 15% of 80?",
        ["8", "10", "12", "15", "16", "20", "24", "6", "18", "14"],
        "15% of 80 is 0.15 * 80 = 12. The answer is (C).",
    ),
    (
        "How many sides does a decagon have?",
        ["6", "7", "8", "9", "11", "12", "5", "4", "10", "3"],
        'The prefix "deca" means ten, so a decagon has 10 sides, which is option I. The answer is (I).',
    ),
)


def _read_letter(text: str, position: int) -> tuple[str, int] | None:
    """The option letter a statement names, read from `position`, right after its phrase, and where it ends."""
    match = _LETTER.match(text, position)
    if not match:
        return None
    if letter := match[1] or match[2] or match[3]:
        return letter.upper(), match.end()
    letter = match[4]
    if (letter.islower() or letter == "I") and not _STATEMENT_END.match(text, match.end()):
        return None  # "the answer is a bit...", "the answer is I think": words of running text, not options
    return letter.upper(), match.end()


def _hedged(text: str, end: int) -> bool:
    """Whether a second letter follows a letter that ends at `end` ("(B) or (D)", "B/D"): a hedge, no answer."""
    connective = _HEDGE.match(text, end)
    return connective is not None and _read_letter(text, connective.end()) is not None


def _statement_letter(text: str, position: int) -> tuple[bool, str | None]:
    """(whether a letter follows the phrase ending at `position`, that letter or None for a hedge)."""
    read = _read_letter(text, position)
    if read is None:
        return False, None
    letter, end = read
    return True, None if _hedged(text, end) else letter


def _opens_a_statement(text: str, position: int) -> bool:
    """Whether a bare letter at `position` starts its sentence (or follows "so", "therefore", ...)."""
    before = text[max(0, position - 40) : position]
    if position <= 40 and not re.sub(r"\W", "", before):
        return True  # the response starts with the letter
    return _BARE_LETTER_OPENING.search(before) is not None


def _letters_called_correct(text: str) -> list[tuple[int, str | None]]:
    """(position, letter or None for a hedge) of every "(X) is the correct answer" statement."""
    if not _VERDICT.search(text):
        return []  # most responses have no verdict; the full pattern is slow to try at every position
    found = []
    for match in _LETTER_CORRECT.finditer(text):
        letter = match[1] or match[2] or match[3] or match[4]
        if match[4] and not _opens_a_statement(text, match.start()):
            continue
        hedge = _HEDGE_BEFORE.search(text[max(0, match.start() - 30) : match.start()])
        found.append((match.start(), None if hedge else letter))
    return found


def _final_line_letter(text: str) -> tuple[int, str] | None:
    """(position, letter) when the response ends with a line that is just the option, "(C) 42 m/s".

    The line above must not be an option too: a response that ends by listing the options answers nothing.
    """
    text = text.rstrip()
    last_start = text.rfind("\n") + 1
    if not (last := _FINAL_OPTION_LINE.match(text[last_start:])):
        return None
    above = [line for line in text[:last_start].rsplit("\n", 4) if line.strip()]
    if above and _OPTION_LINE.match(above[-1]):
        return None
    return last_start, last[1].upper()


def format_options(options: list[str]) -> str:
    return "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, options, strict=False))


class MMLUPro(Task):
    name = "mmlu_pro"
    styles = ("zero_shot_cot", "few_shot")

    def _options(self, record: dict) -> list[str]:
        options = (record.get("meta") or {}).get("options", record.get("options"))
        if not isinstance(options, list) or not 1 <= len(options) <= len(LETTERS):
            raise ValueError(
                f"{self.name} record {record.get('id')!r}: field 'meta.options' (or 'options') must be a list of "
                f"1 to {len(LETTERS)} option strings, got {options!r}"
            )
        return [str(option).strip() for option in options]

    def _format(self, question: str, record: dict, style: str) -> str | ChatMessages:
        body = f"Question:\n{question}\nOptions:\n{format_options(self._options(record))}\n"
        if style == "few_shot":
            subject = (record.get("meta") or {}).get("category") or "various subjects"
            shots = "".join(
                f"Question:\n{q}\nOptions:\n{format_options(o)}\nAnswer: Let's think step by step. {a}\n\n"
                for q, o, a in FEW_SHOT_EXEMPLARS
            )
            return f"{FEW_SHOT_HEADER.format(subject=subject)}{shots}{body}Answer: Let's think step by step."
        return user_message(f"{body}\n{ZERO_SHOT_INSTRUCTION}")

    def parse_gold(self, record: dict) -> str:
        """The gold letter; datasets store it as a letter ("C") or as an index into the options (2)."""
        gold = record.get("gold")
        if isinstance(gold, int) and not isinstance(gold, bool):
            if 0 <= gold < len(LETTERS):
                return LETTERS[gold]
        elif (letter := gold_field(self.name, record).upper()) in LETTERS and len(letter) == 1:
            return letter
        raise ValueError(
            f"{self.name} record {record.get('id')!r}: field 'gold' must be a letter A-J or an index 0-9, got {gold!r}"
        )

    def _read(self, text: str) -> Extraction:
        found = []  # (position, letter or None for a hedge, rule) of every explicit statement
        for rule, pattern in _STATEMENTS:
            for match in pattern.finditer(text):
                named, letter = _statement_letter(text, match.end())
                if named:
                    found.append((match.start(), letter, rule))
        found += [(position, letter, "letter_correct") for position, letter in _letters_called_correct(text)]
        for position, content in boxed_contents(text):
            if box := _BOXED_LETTER.fullmatch(content):
                found.append((position, box[1].upper(), "boxed"))
        if final_line := _final_line_letter(text):
            found.append((*final_line, "final_line"))
        if not found:
            return NO_ANSWER
        _, letter, rule = max(found, key=lambda statement: statement[0])
        return Extraction(letter, rule) if letter is not None else NO_ANSWER

    def is_equivalent(self, a: str | None, b: str | None) -> bool:
        return a is not None and b is not None and a.strip().upper() == b.strip().upper()
