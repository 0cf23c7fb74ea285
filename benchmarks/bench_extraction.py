"""Answer extraction side by side: our task layer against the extractors published evaluations use.

One corpus per task: the cases of our test tables (tests/test_tasks_*.py, tests/test_extraction_*.py) and
benchmarks/data/extraction_corpus.jsonl (outputs in several model families' styles, each with the answer it
states; see benchmarks/data/make_extraction_corpus.py). An extractor agrees with a case when it reads the wanted
answer, or reads none where the output states none. The references are re-implemented here from their public
definitions (each with a link); math-verify is the real package, used when it is installed.

    PYTHONPATH=. python benchmarks/bench_extraction.py [--repeats 3] [--show-misses ours]

Numbers are compared by value for every extractor (a reference's "$18.00" counts as 18), so the table measures
reading, not formatting. Our extractor gets each sample's finish reason, as the pipeline's samples carry it; the
references read the text alone, as they do in their own evaluations. Speed: the time a reference takes over the
same cases divided by ours (above 1: ours is faster), best of --repeats runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openrlhf_distill.tasks import get_task  # noqa: E402
from openrlhf_distill.tasks.numbers import first_number  # noqa: E402

CORPUS = ROOT / "benchmarks" / "data" / "extraction_corpus.jsonl"
TASKS = ("gsm8k", "mmlu_pro", "math")


@dataclass(frozen=True)
class Case:
    task: str
    source: str  # "tests" or "corpus"
    text: str
    finish_reason: str | None
    want: str | None


# ---------------------------------------------------------------------------------------------------------------
# The cases


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_cases(task: str, module, tables: dict[str, str]) -> list[Case]:
    """Cases from a test module's tables; `tables` maps a table name to its layout."""
    cases = []
    for name, layout in tables.items():
        for row in getattr(module, name):
            if layout == "answer_rule":  # (text, answer, rule)
                cases.append(Case(task, "tests", row[0], None, row[1]))
            elif layout == "none":  # text with no answer
                cases.append(Case(task, "tests", row, None, None))
            elif layout == "finish":  # (text, finish reason, answer)
                cases.append(Case(task, "tests", row[0], row[1], row[2]))
            else:  # (text, answer)
                cases.append(Case(task, "tests", row[0], None, row[1]))
    return cases


def test_table_cases() -> list[Case]:
    try:
        import pytest  # noqa: F401  (the test modules need it to load)
    except ImportError:
        print("pytest is not installed: the test tables are left out; the corpus alone is measured.\n")
        return []
    tests = ROOT / "tests"
    gsm8k_kinds = [
        "FRACTION_BEFORE_PUNCTUATION",
        "ANSWER_LINE_WITH_WORDS",
        "ANSWER_IS_ARITHMETIC",
        "SELF_CORRECTION_AFTER_HASHES",
        "MADE_UP_CONTINUATIONS",
        "NUMBER_WORDS",
        "MIXED_NUMBERS",
        "SCALED_NUMBERS",
    ]
    mmlu_kinds = ["WRAPPED_LETTERS", "LETTER_CALLED_CORRECT", "FINAL_LINE_OPTION", "ANSWER_WITH_LEAD_IN", "HEDGES"]
    cases = _table_cases(
        "gsm8k",
        _load_module(tests / "test_tasks_gsm8k.py"),
        {"EXTRACTIONS": "answer_rule", "NO_ANSWERS": "none", "FRACTIONS_BEFORE_PUNCTUATION": "pair"},
    )
    cases += _table_cases(
        "gsm8k",
        _load_module(tests / "test_extraction_gsm8k_kinds.py"),
        {**dict.fromkeys(gsm8k_kinds, "pair"), "TRUNCATED": "finish"},
    )
    cases += _table_cases(
        "mmlu_pro",
        _load_module(tests / "test_tasks_mmlu_pro.py"),
        {"EXTRACTIONS": "answer_rule", "NO_ANSWERS": "none"},
    )
    cases += _table_cases(
        "mmlu_pro", _load_module(tests / "test_extraction_mmlu_pro_kinds.py"), dict.fromkeys(mmlu_kinds, "pair")
    )
    cases += _table_cases(
        "math", _load_module(tests / "test_tasks_math.py"), {"EXTRACTIONS": "answer_rule", "NO_ANSWERS": "none"}
    )
    return cases


def corpus_cases() -> list[Case]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Case(r["task"], "corpus", r["text"], r["finish_reason"], r["want"]) for r in rows]


# ---------------------------------------------------------------------------------------------------------------
# The references, written for this benchmark from their public definitions


def _harness_regex_filter(pattern: re.Pattern, group_select: int) -> Callable[[str], str | None]:
    """lm-evaluation-harness's "regex" filter followed by "take_first": all matches, the one at `group_select`,
    of a match with several groups its first non-empty one; no match is the fallback "[invalid]" (None here).
    https://github.com/EleutherAI/lm-evaluation-harness/blob/main/lm_eval/filters/extraction.py"""

    def extract(text: str) -> str | None:
        matches = pattern.findall(text)
        if not matches:
            return None
        chosen = matches[group_select]
        if isinstance(chosen, tuple):
            chosen = next((group for group in chosen if group), None)
        return chosen.strip() if chosen else None

    return extract


# "strict-match" of the gsm8k task: the first "#### N".
# https://github.com/EleutherAI/lm-evaluation-harness/blob/main/lm_eval/tasks/gsm8k/gsm8k.yaml
harness_strict = _harness_regex_filter(re.compile(r"#### (\-?[0-9\.\,]+)"), 0)
# "strict-match" of the gsm8k-cot task: the first "The answer is N.".
# https://github.com/EleutherAI/lm-evaluation-harness/blob/main/lm_eval/tasks/gsm8k/gsm8k-cot.yaml
harness_strict_cot = _harness_regex_filter(re.compile(r"The answer is (\-?[0-9\.\,]+)."), 0)
# "flexible-extract" (both tasks): the last number-like run of the response.
harness_flexible = _harness_regex_filter(re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)"), -1)


def mmlu_pro_official(text: str) -> str | None:
    """The answer chain of MMLU-Pro's evaluation script: the first "answer is (X)", else the "Answer: X" found
    by a greedy line search, else the last standalone capital A-J anywhere; else nothing (the script then scores
    a random letter, which is a guess, not a reading, so it is left out here).
    https://github.com/TIGER-AI-Lab/MMLU-Pro/blob/main/evaluate_from_api.py (extract_answer, extract_again,
    extract_final)"""
    for pattern, flags in ((r"answer is \(?([A-J])\)?", 0), (r".*[aA]nswer:\s*([A-J])", 0)):
        if found := re.search(pattern, text, flags):
            return found[1]
    last_letter = re.search(r"\b[A-J]\b(?!.*\b[A-J]\b)", text, re.DOTALL)
    return last_letter[0] if last_letter else None


def math_verify_readers():
    """math-verify's parse for each task, or None when the package is not installed.
    https://github.com/huggingface/Math-Verify (parse with its default LaTeX and expression extraction; for
    letters, its StringExtractionConfig with the ten option letters)"""
    try:
        from math_verify import StringExtractionConfig, parse, verify
    except ImportError:
        return None
    letters = [StringExtractionConfig(strings=tuple("ABCDEFGHIJ"))]

    def letter(text: str) -> str | None:
        parsed = parse(text, extraction_config=letters)
        return str(parsed[-1]).upper() if parsed else None

    return {"parse": parse, "verify": verify, "letter": letter}


# ---------------------------------------------------------------------------------------------------------------
# Agreement


def same_number(read: str | None, want: str | None) -> bool:
    """Whether a reading names the wanted number (by value), or both are no answer."""
    if want is None or read is None:
        return want is None and read is None
    return first_number(read) == want


@dataclass
class Extractor:
    name: str
    read: Callable[[Case], object]  # what the extractor returns for a case
    agrees: Callable[[Case, object], bool]


def extractors_for(task: str, mv) -> list[Extractor]:
    ours = get_task(task)
    found = [
        Extractor(
            "ours (openrlhf_distill.tasks)",
            lambda c: ours.extract_answer(c.text, finish_reason=c.finish_reason),
            lambda c, read: read == c.want if task != "math" else _math_agrees(ours, c, read),
        )
    ]
    if task == "gsm8k":
        found += [
            Extractor(
                "lm-eval strict-match (gsm8k, `#### N`)",
                lambda c: harness_strict(c.text),
                lambda c, r: same_number(r, c.want),
            ),
            Extractor(
                "lm-eval strict-match (gsm8k-cot, `The answer is N.`)",
                lambda c: harness_strict_cot(c.text),
                lambda c, r: same_number(r, c.want),
            ),
            Extractor(
                "lm-eval flexible-extract", lambda c: harness_flexible(c.text), lambda c, r: same_number(r, c.want)
            ),
        ]
    if task == "mmlu_pro":
        found.append(
            Extractor("MMLU-Pro official chain", lambda c: mmlu_pro_official(c.text), lambda c, r: r == c.want)
        )
    if mv is not None:
        if task == "mmlu_pro":
            found.append(Extractor("math-verify (letters)", lambda c: mv["letter"](c.text), lambda c, r: r == c.want))
        else:
            found.append(Extractor("math-verify", lambda c: mv["parse"](c.text), lambda c, r: _verified(mv, c, r)))
    return found


def _verified(mv, case: Case, parsed) -> bool:
    if case.want is None:
        return not parsed
    return bool(parsed) and mv["verify"](mv["parse"](f"${case.want}$"), parsed)


def _math_agrees(task, case: Case, read: str | None) -> bool:
    if case.want is None or read is None:
        return case.want is None and read is None
    return task.is_equivalent(read, case.want)  # math-verify decides LaTeX equivalence inside our task too


# ---------------------------------------------------------------------------------------------------------------
# The run


def best_time(extractor: Extractor, cases: list[Case], repeats: int) -> tuple[float, list]:
    """(best wall time of `repeats` passes over the cases, the readings of the last pass)."""
    best, readings = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        readings = [extractor.read(case) for case in cases]
        best = min(best, time.perf_counter() - start)
    return best, readings


def speed_ratio(ratio: float) -> str:
    """A reference's time over ours, written so that both directions read plainly."""
    return f"x{ratio:.1f} (ours faster)" if ratio >= 1 else f"x{ratio:.3f} (ours {1 / ratio:.0f}x slower)"


def rate(flags: list[bool]) -> str:
    return f"{100 * sum(flags) / len(flags):.1f}%" if flags else "-"


def run(repeats: int, show_misses: str | None) -> None:
    cases = test_table_cases() + corpus_cases()
    mv = math_verify_readers()
    if mv is None:
        print("math-verify is not installed: its rows are skipped (pip install math-verify to include them).\n")
    print("| task | extractor | agreement | on test tables | on corpus | n | time (ms) | its time / ours |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for task in TASKS:
        task_cases = [c for c in cases if c.task == task]
        our_time = None
        for extractor in extractors_for(task, mv):
            if task == "math" and extractor.name.startswith("ours") and mv is None:
                print(f"| {task} | {extractor.name} | (needs math-verify for equivalence) | | | | | |")
                break
            seconds, readings = best_time(extractor, task_cases, repeats)
            our_time = seconds if our_time is None else our_time
            agree = [extractor.agrees(c, r) for c, r in zip(task_cases, readings, strict=True)]
            by_source = {
                s: [a for c, a in zip(task_cases, agree, strict=True) if c.source == s] for s in ("tests", "corpus")
            }
            ratio = "-" if extractor.name.startswith("ours") else speed_ratio(seconds / our_time)
            print(
                f"| {task} | {extractor.name} | **{rate(agree)}** | {rate(by_source['tests'])} | "
                f"{rate(by_source['corpus'])} | {len(task_cases)} | {1000 * seconds:.1f} | {ratio} |"
            )
            if show_misses and extractor.name.startswith(show_misses):
                for case, reading, ok in zip(task_cases, readings, agree, strict=True):
                    if not ok:
                        print(f"    miss: want {case.want!r} read {reading!r}: {case.text[-160:]!r}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="passes over the cases; the best time counts")
    parser.add_argument(
        "--show-misses",
        metavar="NAME",
        help="print to stderr the misses of extractors whose "
        "name starts with NAME (e.g. ours, lm-eval, MMLU-Pro, math-verify)",
    )
    args = parser.parse_args()
    run(args.repeats, args.show_misses)


if __name__ == "__main__":
    main()
