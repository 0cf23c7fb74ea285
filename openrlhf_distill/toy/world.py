"""The toy world: multi-step integer arithmetic, the CPU-sized stand-in for "70B teacher -> 1B student on GSM8K".

A question is a chain of one to three operations ("What is 23 + 15 - 7?"), its worked solution one step per
operation in GSM8K's answer format ("23 + 15 = 38. 38 - 7 = 31. #### 31"), read by the `arithmetic` task.
Everything is drawn from one seed, deterministically:

- ``prompts_test.jsonl``, ``prompts_train.jsonl``, ``prompts_dev.jsonl``: prompt records (``id``, ``prompt`` =
  the question, ``task`` = "arithmetic", ``gold`` = the answer, ``meta.n_ops``). Gold is for measurement only:
  the pipeline distils on the teacher's votes over ``prompts_train``, never on its gold. ``prompts_dev`` is
  what pretraining stops on (see below); nothing else uses it.
- ``pretrain_teacher.jsonl``, ``pretrain_student.jsonl``: (question, worked solution) pairs that pretrain the
  two models from scratch (``id``, ``prompt``, ``response``, ``answer``). The student's corpus is the first
  part of the teacher's, optionally with some worked solutions made wrong (``student_noise``).

The four sets of questions (test, dev, train, pretraining) are pairwise disjoint, and `write_world` asserts it:
the models have never seen a question they are measured or distilled on.

`build_toy_world` writes the data, pretrains the teacher (larger model, larger corpus) and the student with
`pretrain.pretrain`, measures both, and records everything in ``world.json``; `add_arguments` / `run` are the
``openrlhf-distill toy-world`` command (also ``python -m openrlhf_distill.toy.world``).

Why the pretraining stops on a dev accuracy: models this small learn the task in a sharp transition (greedy
accuracy goes from ~10% to ~99% within a few hundred steps) whose timing moves with the seed, so a fixed number of
steps gives a teacher anywhere in that range. Stopping when the dev accuracy reaches a target (teacher 0.65,
student 0.2) gives every seed an imperfect teacher whose samples disagree (so the vote carries information) and a
weaker student, the setting of the paper.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from ..argtypes import int_at_least, number_in
from ..contract import Output, add_paths
from ..processes import ends_with_this_process
from ..records import PROMPT, read_records, write_json_atomic, write_jsonl_atomic
from ..settings import add_flags, flag_values, setting
from ..tasks.arithmetic import STEP
from .pretrain import ToyModelSpec, measure, pretrain

TASK = "arithmetic"
WORLD_FILE = "world.json"
FILES = {
    "train": "prompts_train.jsonl",
    "test": "prompts_test.jsonl",
    "dev": "prompts_dev.jsonl",
    "pretrain_teacher": "pretrain_teacher.jsonl",
    "pretrain_student": "pretrain_student.jsonl",
}
FORMAT_VERSION = 1  # bump when the data or training code changes what a given set of settings produces


def _was(name: str) -> tuple[str, ...]:
    """The flag's earlier spelling (``--n-train``), still accepted."""
    return (f"--{name.replace('_', '-')}",) if "_" in name else ()


@dataclass(frozen=True)
class ArithmeticSpec:
    """How hard the questions are. Operations are applied left to right; "*" only ever comes first, so left to
    right is also the usual precedence."""

    min_ops: int = setting(1, "operations per question, at least", check=int_at_least(1), aliases=_was("min_ops"))
    max_ops: int = setting(3, "operations per question, at most", check=int_at_least(1), aliases=_was("max_ops"))
    max_operand: int = setting(
        50, "operands of + and - are drawn from 1..N", check=int_at_least(1), aliases=_was("max_operand")
    )
    max_value: int = setting(
        99,
        "every intermediate result stays in 0..N (no negative numbers)",
        check=int_at_least(1),
        aliases=_was("max_value"),
    )
    multiply_prob: float = setting(
        0.0,
        'chance that a question opens with "a * k", k in 2..9',
        check=number_in(0, 1),
        aliases=_was("multiply_prob"),
    )
    max_multiplier: int = setting(9, flag=False)
    halve_prob: float = setting(
        0.0, 'chance that an operation (on a value >= 2) is "/ 2" (floor halving)', aliases=_was("halve_prob")
    )
    max_first: int | None = setting(
        None,
        "the first number is drawn from 1..N (none: max_operand)",
        check=int_at_least(1),
        aliases=_was("max_first"),
    )

    def __post_init__(self):
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        if not 1 <= self.max_operand <= self.max_value:
            raise ValueError(f"need 1 <= max_operand <= max_value, got {self.max_operand}, {self.max_value}")
        if not 0.0 <= self.multiply_prob <= 1.0 or self.max_multiplier < 2:
            raise ValueError("multiply_prob must be in [0, 1] and max_multiplier >= 2")
        if not 0.0 <= self.halve_prob < 1.0:
            raise ValueError(f"halve_prob must be in [0, 1), got {self.halve_prob}")
        if self.max_first is not None and not 1 <= self.max_first <= self.max_value:
            raise ValueError(f"need 1 <= max_first <= max_value, got {self.max_first}")


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str  # the worked solution, ending "#### answer"
    answer: int
    numbers: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def n_ops(self) -> int:
        return len(self.ops)


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a // b


def solve(numbers, ops) -> tuple[str, int]:
    """The worked solution of a chain (one "a op b = r." step per operation, then "#### r") and its answer."""
    steps, value = [], numbers[0]
    for op, b in zip(ops, numbers[1:], strict=True):
        result = _apply(value, op, b)
        steps.append(f"{value} {op} {b} = {result}.")
        value = result
    return " ".join(steps) + f" #### {value}", value


def make_problem(rng: random.Random, spec: ArithmeticSpec = ArithmeticSpec()) -> Problem:
    n_ops = rng.randint(spec.min_ops, spec.max_ops)
    ops: list[str] = []
    if rng.random() < spec.multiply_prob:
        k = rng.randint(2, spec.max_multiplier)
        numbers = [rng.randint(1, max(1, spec.max_value // k)), k]
        ops.append("*")
    else:
        numbers = [rng.randint(1, spec.max_first or spec.max_operand)]
    value = numbers[0] if not ops else numbers[0] * numbers[1]
    while len(ops) < n_ops:
        if value >= 2 and spec.halve_prob and rng.random() < spec.halve_prob:
            ops.append("/")
            numbers.append(2)
            value //= 2
            continue
        room_up, room_down = min(spec.max_operand, spec.max_value - value), min(spec.max_operand, value)
        op = rng.choice("+-") if room_up >= 1 and room_down >= 1 else "+" if room_up >= 1 else "-"
        b = rng.randint(1, room_up if op == "+" else room_down)
        ops.append(op)
        numbers.append(b)
        value = _apply(value, op, b)
    expression = " ".join([str(numbers[0])] + [f"{op} {b}" for op, b in zip(ops, numbers[1:], strict=True)])
    solution, answer = solve(numbers, ops)
    return Problem(f"What is {expression}?", solution, answer, tuple(numbers), tuple(ops))


def generate_problems(n: int, rng: random.Random, spec: ArithmeticSpec, exclude: set[str]) -> list[Problem]:
    """``n`` problems with distinct questions, none in ``exclude`` (which is extended with the new questions)."""
    out, attempts = [], 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 10_000:
            raise ValueError(f"could not draw {n} distinct questions from {spec}: the question space is too small")
        problem = make_problem(rng, spec)
        if problem.question not in exclude:
            exclude.add(problem.question)
            out.append(problem)
    return out


_QUESTION = re.compile(r"What is (\d+(?: [-+*/] \d+)+)\?")


def check_steps(solution: str) -> list[bool]:
    """For each "a op b = r." step in a worked solution, whether it is arithmetically right."""
    return [_apply(int(a), op, int(b)) == int(r) for a, op, b, r in STEP.findall(solution)]


def parse_question(question: str) -> tuple[list[int], list[str]]:
    """(numbers, ops) of a toy question; ValueError if it is not one."""
    match = _QUESTION.fullmatch(question.strip())
    if not match:
        raise ValueError(f"not a toy arithmetic question: {question!r}")
    tokens = match.group(1).split()
    return [int(t) for t in tokens[::2]], tokens[1::2]


def direct_answer(problem: Problem) -> str:
    """The answer alone, in the worked solution's closing format: "#### 5"."""
    return f"#### {problem.answer}"


def shortcut_answer(problem: Problem) -> str:
    """A direct answer that stops one step short: the value before the chain's last operation ("#### 7" for
    "3 + 4 / 2"). A systematic error, the same every time, which a model learns as a habit."""
    value = problem.numbers[0]
    for op, b in zip(problem.ops[:-1], problem.numbers[1:-1], strict=True):
        value = _apply(value, op, b)
    return f"#### {value}"


def corrupt(problem: Problem, rng: random.Random) -> str:
    """A worked solution of ``problem`` with one step's result off by 1..10, carried through to a wrong answer."""
    numbers, ops = list(problem.numbers), problem.ops
    wrong_step = rng.randrange(len(ops))
    steps, value = [], numbers[0]
    for i, (op, b) in enumerate(zip(ops, numbers[1:], strict=True)):
        result = _apply(value, op, b)
        if i == wrong_step:
            delta = rng.choice([-1, 1]) * rng.randint(1, 10)
            result = result + delta if result + delta >= 0 else result - delta
        steps.append(f"{value} {op} {b} = {result}.")
        value = result
    return " ".join(steps) + f" #### {value}"


def _prompt_record(split: str, index: int, problem: Problem) -> dict:
    return {
        "id": f"{split}-{index:05d}",
        "prompt": problem.question,
        "task": TASK,
        "gold": str(problem.answer),
        "meta": {"n_ops": problem.n_ops},
    }


def _pretrain_record(who: str, index: int, problem: Problem, response: str) -> dict:
    return {
        "id": f"pretrain-{who}-{index:06d}",
        "prompt": problem.question,
        "response": response,
        "answer": str(problem.answer),
    }


def _check_world_settings(sizes: dict[str, int], student_noise: float, shares: dict[str, float]) -> None:
    if min(sizes.values()) < 1:
        raise ValueError("every split needs at least one question")
    if sizes["n_pretrain_student"] > sizes["n_pretrain_teacher"]:
        raise ValueError("the student's pretraining corpus is part of the teacher's: n_pretrain_student too big")
    if not 0.0 <= student_noise < 1.0:
        raise ValueError(f"student_noise must be in [0, 1), got {student_noise}")
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {share}")


class _Styler:
    """Picks each pretraining answer's style: the worked solution with probability ``share``, else the answer
    alone, which is one step short with probability ``shortcut_share``. One random stream for both corpora, drawn
    in corpus order (so a world is the same for the same seed)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def __call__(self, problem: Problem, worked: str, share: float, shortcut_share: float = 0.0) -> str:
        if share >= 1.0 or self.rng.random() < share:
            return worked
        if shortcut_share and self.rng.random() < shortcut_share:
            return shortcut_answer(problem)
        return direct_answer(problem)


def _assert_disjoint(**sets: set[str]) -> None:
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not sets[a] & sets[b], f"{a} and {b} questions overlap"


def write_world(
    out_dir: str,
    *,
    n_train: int,
    n_test: int,
    seed: int,
    n_dev: int = 200,
    n_pretrain_teacher: int = 40_000,
    n_pretrain_student: int = 10_000,
    student_noise: float = 0.0,
    teacher_worked_share: float = 1.0,
    student_worked_share: float = 1.0,
    student_shortcut_share: float = 0.0,
    spec: ArithmeticSpec = ArithmeticSpec(),
    pretrain_min_ops: int | None = None,
) -> dict:
    """Writes the data files of a toy world (`FILES`) into ``out_dir``; returns their paths and counts.

    Test questions are drawn first, then dev, then train, then the pretraining pool, each excluding the questions
    drawn before it, so the four are disjoint (asserted again on what is written). The student's corpus is the
    first ``n_pretrain_student`` problems of the teacher's of the asked length (``spec.min_ops`` or more
    operations: the shorter chains that ``pretrain_min_ops`` adds are the teacher's alone), with a share
    ``student_noise`` of them given a wrong worked solution (`corrupt`). Each corpus answers worked out step by
    step with probability ``<role>_worked_share``, else with the answer alone (`direct_answer`), which for the
    student is a share ``student_shortcut_share`` of the time the answer one step short (`shortcut_answer`).
    """
    sizes = {"n_train": n_train, "n_test": n_test, "n_dev": n_dev}
    sizes.update(n_pretrain_teacher=n_pretrain_teacher, n_pretrain_student=n_pretrain_student)
    shares = {"teacher_worked_share": teacher_worked_share, "student_worked_share": student_worked_share}
    shares["student_shortcut_share"] = student_shortcut_share
    _check_world_settings(sizes, student_noise, shares)
    rng = random.Random(f"toy-world-{seed}")
    seen: set[str] = set()
    test = generate_problems(n_test, rng, spec, seen)
    dev = generate_problems(n_dev, rng, spec, seen)
    train = generate_problems(n_train, rng, spec, seen)
    # Shorter chains in the pretraining pool teach the single steps; the questions measured stay as specified.
    pool_spec = dataclasses.replace(spec, min_ops=pretrain_min_ops) if pretrain_min_ops else spec
    pool = generate_problems(n_pretrain_teacher, rng, pool_spec, seen)
    noise_rng = random.Random(f"toy-world-noise-{seed}")
    styled = _Styler(random.Random(f"toy-world-style-{seed}"))
    teacher_rows = [
        _pretrain_record("teacher", i, p, styled(p, p.solution, teacher_worked_share)) for i, p in enumerate(pool)
    ]
    student_rows = []
    student_pool = [p for p in pool if p.n_ops >= spec.min_ops][:n_pretrain_student]
    if len(student_pool) < n_pretrain_student:
        raise ValueError(
            f"the teacher's corpus holds {len(student_pool)} questions of {spec.min_ops}+ operations, "
            f"fewer than n_pretrain_student={n_pretrain_student}"
        )
    noisy = 0
    for i, p in enumerate(student_pool):
        worked = corrupt(p, noise_rng) if noise_rng.random() < student_noise else p.solution
        noisy += worked != p.solution
        student_rows.append(
            _pretrain_record("student", i, p, styled(p, worked, student_worked_share, student_shortcut_share))
        )
    _assert_disjoint(
        test={p.question for p in test},
        dev={p.question for p in dev},
        train={p.question for p in train},
        pretrain={r["prompt"] for r in teacher_rows} | {r["prompt"] for r in student_rows},
    )
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, file) for name, file in FILES.items()}
    for split, problems in (("test", test), ("dev", dev), ("train", train)):
        write_jsonl_atomic(paths[split], (_prompt_record(split, i, p) for i, p in enumerate(problems)))
    write_jsonl_atomic(paths["pretrain_teacher"], teacher_rows)
    write_jsonl_atomic(paths["pretrain_student"], student_rows)
    return {
        "paths": paths,
        "counts": {
            "train": n_train,
            "test": n_test,
            "dev": n_dev,
            "pretrain_teacher": len(teacher_rows),
            "pretrain_student": len(student_rows),
        },
        "student_noisy": noisy,  # wrong worked solutions drawn (those given as the answer alone included)
    }


def read_prompts(path: str) -> list[dict]:
    return [record for _, record in read_records(path, PROMPT)]


# --- Building a whole toy world: data, the two pretrained models, world.json ----------------------------------

# Defaults chosen on the 2-core development machine (world.json of a build holds the numbers of each run). The
# teacher has 1.7x the student's parameters, a 2.5x larger corpus and a higher target; both stop on a dev
# accuracy (`pretrain.pretrain`), so every seed's teacher and student land in their bands.
TEACHER_SPEC = ToyModelSpec(  # 362k parameters
    hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)
STUDENT_SPEC = ToyModelSpec(  # 218k parameters
    hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1
)


_COUNT, _SHARE = int_at_least(1), number_in(0, 1)


@dataclass(frozen=True)
class WorldSettings:
    """Everything that decides what `build_toy_world` produces; world.json keeps it, and a rebuild with equal
    settings is skipped."""

    seed: int = setting(0, "draws the data and the models' initial weights")
    n_train: int = setting(1000, "unlabelled questions for distillation", check=_COUNT, aliases=_was("n_train"))
    n_test: int = setting(500, "test questions (gold for measurement)", check=_COUNT, aliases=_was("n_test"))
    n_dev: int = setting(200, "dev questions the pretraining stops on", check=_COUNT, aliases=_was("n_dev"))
    n_pretrain_teacher: int = setting(
        50_000, "the teacher's pretraining questions", check=_COUNT, aliases=_was("n_pretrain_teacher")
    )
    n_pretrain_student: int = setting(
        20_000, "the student's (a part of the teacher's)", check=_COUNT, aliases=_was("n_pretrain_student")
    )
    student_noise: float = setting(
        0.0, "share of the student's pretraining solutions made wrong in one step", aliases=_was("student_noise")
    )
    teacher_worked_share: float = setting(
        1.0,
        "share of the teacher's pretraining answers worked out step by step; the rest are the answer alone (#### N)",
        check=_SHARE,
        aliases=_was("teacher_worked_share"),
    )
    student_worked_share: float = setting(
        1.0, "the same for the student", check=_SHARE, aliases=_was("student_worked_share")
    )
    student_shortcut_share: float = setting(
        0.0,
        "share of the student's direct answers one step short",
        check=_SHARE,
        aliases=_was("student_shortcut_share"),
    )
    arithmetic: ArithmeticSpec = setting(ArithmeticSpec(), flag=False)  # its own flags (add_arguments)
    pretrain_min_ops: int | None = setting(
        None,
        "pretraining questions have at least N operations (none: as asked)",
        check=int_at_least(1),
        aliases=_was("pretrain_min_ops"),
    )
    teacher_spec: ToyModelSpec = setting(TEACHER_SPEC, flag=False)  # --teacher_shape
    student_spec: ToyModelSpec = setting(STUDENT_SPEC, flag=False)
    teacher_target: float | None = setting(
        0.65, "dev greedy accuracy that stops its pretraining (0: never)", check=_SHARE, aliases=_was("teacher_target")
    )
    student_target: float | None = setting(
        0.2, "the same for the student", check=_SHARE, aliases=_was("student_target")
    )
    teacher_steps: int = setting(2500, "pretraining steps, at most", check=_COUNT, aliases=_was("teacher_steps"))
    student_steps: int = setting(1500, "the same for the student", check=_COUNT, aliases=_was("student_steps"))
    teacher_lr: float = setting(3e-3, "the teacher's pretraining learning rate", aliases=_was("teacher_lr"))
    student_lr: float = setting(3e-3, "the student's", aliases=_was("student_lr"))
    batch_size: int = setting(32, "pretraining batch size", check=_COUNT, aliases=_was("batch_size"))
    measure_questions: int = setting(
        200,
        "test questions the models are measured on after pretraining",
        check=_COUNT,
        aliases=_was("measure_questions"),
    )
    measure_sampling: bool = setting(
        False,
        "also measure sampling at 0.3/0.7/1.0 (10 each): single, maj@10, the vote (slower)",
        aliases=_was("measure_sampling"),
    )

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> WorldSettings:
        values = {k: v for k, v in values.items() if k != "format_version"}
        values["arithmetic"] = ArithmeticSpec(**values["arithmetic"])
        values["teacher_spec"] = ToyModelSpec(**values["teacher_spec"])
        values["student_spec"] = ToyModelSpec(**values["student_spec"])
        return cls(**values)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


# The worlds `toy-world --preset` builds (what each shows: README "The toy world").
# - styles (the default, what `make demo` runs): "a terse teacher, and a student that does better when it shows
#   its work". Chains of 3-4 small steps (+b, -b with b <= 5, floor halving) on values 0..19. The teacher is
#   pretrained on answers alone ("#### 5") and answers that way; the student, a smaller model, on a mix of 30%
#   worked solutions and 70% answers alone, so it answers directly when greedy while its worked answers, which
#   it samples now and then, are right far more often. Distilled rewards can then move it to its better style.
# - chains: the first toy world: chains of 1-3 operations with operands up to 50, worked solutions only. Every
#   error there is a missing arithmetic fact; no reward lifted the student (README).
STYLES_ARITHMETIC = ArithmeticSpec(min_ops=3, max_ops=4, max_operand=5, max_value=19, halve_prob=0.34, max_first=19)
PRESETS = {
    "styles": WorldSettings(
        n_train=600,
        n_test=300,
        n_pretrain_teacher=40_000,
        n_pretrain_student=20_000,
        teacher_worked_share=0.0,
        student_worked_share=0.3,
        # Its direct answers stop one step short, a habit that is always wrong; without it the student's direct
        # skill appeared suddenly, at 31% or 74% greedy for the same budget (docs/toy_worlds.md), passing the
        # teacher in some builds. Its worked answers are unharmed (99% right when forced, a probe).
        student_shortcut_share=1.0,
        arithmetic=STYLES_ARITHMETIC,
        pretrain_min_ops=1,
        teacher_spec=dataclasses.replace(TEACHER_SPEC, num_hidden_layers=4),  # 658k parameters
        student_spec=dataclasses.replace(STUDENT_SPEC, num_hidden_layers=2),  # 156k parameters
        # Dev greedy 0.8 (0.9 gave 85.5% on test, as good as the student's worked answers): a teacher whose
        # student can pass it by working the steps out, the paper's headline.
        teacher_target=0.8,
        student_target=None,  # a fixed budget: its worked answers must be learnt, not only its direct ones
        teacher_steps=3000,
        # 2,000: its worked answers learnt (98.5% right when forced, seed 0's student; 34% after 1,000 steps); its
        # direct ones stay one step short whatever the length (docs/toy_worlds.md)
        student_steps=2000,
        batch_size=64,
    ),
    "chains": WorldSettings(),
}
PRESET_HELP = {
    "styles": "3-4 small steps; a teacher that answers directly, a student better when it works the steps out",
    "chains": "1-3 operations with operands up to 50, worked solutions only (the first toy world)",
}
DEFAULT_PRESET = "styles"

SAMPLING_TEMPERATURES = (0.3, 0.7, 1.0)
PROGRESS_STEPS = 100  # pretraining prints a progress line (loss, time, time left) every so many steps


def _train_and_measure(role: str, out_dir: str, world_dir: str, settings: WorldSettings, threads: int) -> dict:
    """Pretrains one model of the world into ``out_dir`` (through a temporary folder) and measures it."""
    teacher = role == "teacher"
    partial = f"{out_dir}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    metrics = pretrain(
        partial,
        os.path.join(world_dir, FILES[f"pretrain_{role}"]),
        settings.teacher_spec if teacher else settings.student_spec,
        steps=settings.teacher_steps if teacher else settings.student_steps,
        lr=settings.teacher_lr if teacher else settings.student_lr,
        batch_size=settings.batch_size,
        seed=settings.seed * 2 + (0 if teacher else 1),
        target_accuracy=settings.teacher_target if teacher else settings.student_target,
        dev=read_prompts(os.path.join(world_dir, FILES["dev"])),
        threads=threads,
        log_every=PROGRESS_STEPS,
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(partial, out_dir)
    test = read_prompts(os.path.join(world_dir, FILES["test"]))[: settings.measure_questions]
    temperatures = SAMPLING_TEMPERATURES if settings.measure_sampling else ()
    return {"pretrain": metrics, "test": measure(out_dir, test, temperatures=temperatures, seed=settings.seed)}


def _worker(argv: list[str]) -> None:
    """A subprocess's entry point: ``ROLE OUT_DIR WORLD_DIR SETTINGS_JSON THREADS RESULT_JSON``."""
    role, out, world_dir, settings_path, threads, result_path = argv
    with open(settings_path, encoding="utf-8") as f:
        settings = WorldSettings.from_dict(json.load(f))
    write_json_atomic(result_path, _train_and_measure(role, out, world_dir, settings, int(threads)))


def _relay_progress(logs: dict[str, str], offsets: dict[str, int]) -> None:
    """Prints the progress lines the pretraining workers added to their logs since the last call, by role."""
    for role, path in logs.items():
        with open(path, encoding="utf-8", errors="replace") as f:
            f.seek(offsets[role])
            text = f.read()
        complete = text[: text.rfind("\n") + 1]  # a line still being written waits for the next call
        offsets[role] += len(complete.encode("utf-8", errors="replace"))
        for line in complete.splitlines():
            if line.startswith("  step "):
                print(f"{role}:{line[1:]}", flush=True)


def _train_in_subprocesses(out_dir: str, models: dict[str, str], settings: WorldSettings, threads: int) -> dict:
    """Trains and measures the models at the same time, each in a fresh interpreter (no multiprocessing, so no
    ``if __name__ == "__main__"`` demand on the caller and no fork of a process that already runs torch);
    their output goes to ``<role>_pretrain.log`` in ``out_dir``, and their progress lines to this output."""
    settings_path = os.path.join(out_dir, f".settings-{os.getpid()}.json")
    write_json_atomic(settings_path, settings.to_dict())
    code = (
        "import sys; from openrlhf_distill.compat.quiet import quiet_harmless_warnings; "
        "quiet_harmless_warnings(); from openrlhf_distill.toy.world import _worker; _worker(sys.argv[1:])"
    )
    running = {}
    try:
        for role, path in models.items():
            result = os.path.join(out_dir, f".{role}-result-{os.getpid()}.json")
            log = open(os.path.join(out_dir, f"{role}_pretrain.log"), "w", encoding="utf-8")  # noqa: SIM115
            argv = [sys.executable, "-c", code, role, path, out_dir, settings_path, str(threads), result]
            child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=ends_with_this_process())
            running[role] = (child, log, result)
        logs, offsets = {role: entry[1].name for role, entry in running.items()}, dict.fromkeys(running, 0)
        while any(process.poll() is None for process, _, _ in running.values()):
            _relay_progress(logs, offsets)
            time.sleep(2)
        _relay_progress(logs, offsets)
        results = {}
        for role, (process, log, result) in running.items():
            process.wait()
            log.close()
            if process.returncode != 0:
                with open(log.name, encoding="utf-8", errors="replace") as f:
                    tail = f.read()[-3000:]
                raise RuntimeError(
                    f"pretraining the {role} failed (exit {process.returncode}); {log.name} ends:\n{tail}"
                )
            with open(result, encoding="utf-8") as f:
                results[role] = json.load(f)
        return results
    finally:
        for process, log, result in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(result)
        os.remove(settings_path)


# Worlds whose trained models ship with the package, one folder per settings fingerprint (teacher/, student/ and
# models.json, the records of their pretraining and measurement): a build with those settings writes the data (a
# few seconds, deterministic) and copies the models instead of pretraining them (the demo's world: about 18
# minutes on 2 cores). `toy-world --pretrain` pretrains anyway; `--export-prebuilt` adds a pretrained world here.
PREBUILT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prebuilt")
PREBUILT_FILE = "models.json"
ROLES = ("teacher", "student")


def prebuilt_models(settings: WorldSettings) -> str | None:
    """The folder holding the shipped models of ``settings``, or None when none ship."""
    folder = os.path.join(PREBUILT_DIR, settings.fingerprint())
    return folder if os.path.isfile(os.path.join(folder, PREBUILT_FILE)) else None


def _copy_prebuilt(folder: str, models: dict[str, str], settings: WorldSettings) -> dict:
    """Copies the shipped models into place (through temporary folders) and returns their records by role."""
    with open(os.path.join(folder, PREBUILT_FILE), encoding="utf-8") as f:
        shipped = json.load(f)
    if shipped.get("fingerprint") != settings.fingerprint():  # a folder renamed by hand, or a stale copy
        found, wanted = shipped.get("fingerprint"), settings.fingerprint()
        raise ValueError(f"{folder}: {PREBUILT_FILE} is for settings {found}, not {wanted}")
    for role, path in models.items():
        partial = f"{path}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(os.path.join(folder, role), partial)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(partial, path)
    return {role: shipped[role] for role in models}


def export_prebuilt(world_dir: str, dest_root: str | None = None) -> str:
    """Ships the models of a world pretrained here (``world_dir``) in ``<dest_root or PREBUILT_DIR>/<fingerprint>``;
    returns that folder."""
    world = _read_world_json(world_dir)
    if world is None:
        raise ValueError(f"{world_dir}: no {WORLD_FILE}; build the world first")
    if world.get("models_from") != "pretrained":
        copied = world.get("models_from")
        raise ValueError(f"{world_dir}: its models were copied ({copied}), not pretrained; rebuild it with --pretrain")
    folder = os.path.join(dest_root or PREBUILT_DIR, world["fingerprint"])
    partial = f"{folder}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    for role in ROLES:
        shutil.copytree(os.path.join(world_dir, role), os.path.join(partial, role))
    record = {key: world[key] for key in ("fingerprint", "settings", "teacher", "student", "cores")}
    write_json_atomic(os.path.join(partial, PREBUILT_FILE), record)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    return folder


def _read_world_json(out_dir: str) -> dict | None:
    try:
        with open(os.path.join(out_dir, WORLD_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def build_toy_world(
    out_dir: str,
    settings: WorldSettings | None = None,
    *,
    force: bool = False,
    pretrain_models: bool = False,
    **overrides,
) -> dict:
    """Builds a toy world in ``out_dir``: the data files (`write_world`), ``teacher/`` and ``student/`` (HF
    folders, pretrained from scratch with `pretrain.pretrain` and measured with `pretrain.measure`) and
    ``world.json`` (settings, counts, metrics, wall times), written last. Returns world.json's content.

    ``overrides`` replace fields of ``settings`` (e.g. ``seed=1, teacher_steps=800``). Idempotent: when
    world.json holds the same settings and both model folders are there, nothing is rebuilt (``force``
    rebuilds). When the package ships models for these settings (`prebuilt_models`) they are copied instead of
    pretrained, unless ``pretrain_models``; world.json's ``models_from`` says which happened.

    The two models train at the same time, in two processes with half the cores each: on the 2-core development
    machine one thread each. Models this small gain little from a second thread, and when other jobs
    share the cores the threads spin: 200 teacher steps once took 390 s with two threads on a shared machine,
    against about 25 s with one.
    """
    settings = dataclasses.replace(settings or WorldSettings(), **overrides)
    previous = _read_world_json(out_dir)
    models = {role: os.path.join(out_dir, role) for role in ROLES}
    shipped = None if pretrain_models else prebuilt_models(settings)
    if (
        not force
        and previous
        and previous.get("fingerprint") == settings.fingerprint()
        and not (pretrain_models and previous.get("models_from") != "pretrained")
        and all(os.path.isfile(os.path.join(m, "config.json")) for m in models.values())
        and all(os.path.isfile(os.path.join(out_dir, f)) for f in FILES.values())
    ):
        return {**previous, "skipped": True}
    started = time.monotonic()
    os.makedirs(out_dir, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out_dir, WORLD_FILE))  # a world.json never describes a half-rebuilt world
    data = write_world(
        out_dir,
        n_train=settings.n_train,
        n_test=settings.n_test,
        seed=settings.seed,
        n_dev=settings.n_dev,
        n_pretrain_teacher=settings.n_pretrain_teacher,
        n_pretrain_student=settings.n_pretrain_student,
        student_noise=settings.student_noise,
        teacher_worked_share=settings.teacher_worked_share,
        student_worked_share=settings.student_worked_share,
        student_shortcut_share=settings.student_shortcut_share,
        spec=settings.arithmetic,
        pretrain_min_ops=settings.pretrain_min_ops,
    )
    data_s = time.monotonic() - started
    cores = os.cpu_count() or 1
    if shipped:
        results = _copy_prebuilt(shipped, models, settings)
    elif cores >= 2:
        results = _train_in_subprocesses(out_dir, models, settings, threads=cores // 2)
    else:
        results = {role: _train_and_measure(role, path, out_dir, settings, 1) for role, path in models.items()}
    world = {
        "format_version": FORMAT_VERSION,
        "fingerprint": settings.fingerprint(),
        "settings": settings.to_dict(),
        "task": TASK,
        "files": dict(FILES),
        "models": {"teacher": "teacher", "student": "student"},
        "counts": data["counts"],
        "student_noisy_solutions": data["student_noisy"],
        "teacher": {"spec": settings.teacher_spec.to_dict(), **results["teacher"]},
        "student": {"spec": settings.student_spec.to_dict(), **results["student"]},
        # "pretrained" here, or the shipped folder the models were copied from (their records are of that build)
        "models_from": "pretrained" if not shipped else os.path.relpath(shipped, os.path.dirname(PREBUILT_DIR)),
        "wall_s": {
            "data": round(data_s, 1),
            "pretrain_and_measure": round(time.monotonic() - started - data_s, 1),
            "total": round(time.monotonic() - started, 1),
        },
        "cores": cores,
    }
    write_json_atomic(os.path.join(out_dir, WORLD_FILE), world)
    return world


# --- The command: openrlhf-distill toy-world OUT_DIR ---------------------------------------------------------

_SHAPE_KEYS = {
    "hidden": "hidden_size",
    "intermediate": "intermediate_size",
    "layers": "num_hidden_layers",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "arch": "arch",
}


def parse_shape(text: str, base: ToyModelSpec, flag: str = "--teacher_shape") -> ToyModelSpec:
    """``hidden=128,layers=2,...`` (keys: hidden, intermediate, layers, heads, kv_heads, arch) over ``base``."""
    fields = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key not in _SHAPE_KEYS or not value or (key != "arch" and not value.isdigit()):
            raise ValueError(
                f"{flag}: bad model shape item {item!r}; KEY=N with keys {', '.join(_SHAPE_KEYS)} (arch=qwen2|llama)"
            )
        fields[_SHAPE_KEYS[key]] = value if key == "arch" else int(value)
    try:
        return dataclasses.replace(base, **fields)
    except ValueError as error:
        raise ValueError(f"{flag} {text}: {error}") from None


def _preset_defaults(cls) -> dict:
    """Every flag of ``cls`` defaults to None: the chosen preset's value."""
    return {field.name: None for field in dataclasses.fields(cls)}


# what a build killed half-way leaves, and a rerun rebuilds over
_WORLD_FOLDER = (*FILES.values(), *ROLES, WORLD_FILE, "*_pretrain.log", ".settings-*", ".*-result-*", "*.tmp-*")
PATHS = (
    Output(
        "out_dir",
        "folder",
        "folder of the world: prompts_*.jsonl, pretrain_*.jsonl, teacher/, student/, world.json",
        positional=True,
        resumable=_WORLD_FOLDER,
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_paths(parser, PATHS)
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="which world (every setting below defaults to its value): "
        + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()),
    )
    add_flags(parser, WorldSettings, defaults=_preset_defaults(WorldSettings))
    add_flags(parser, ArithmeticSpec, defaults=_preset_defaults(ArithmeticSpec))
    keys = "hidden, intermediate, layers, heads, kv_heads, arch (qwen2|llama); head size hidden/heads must suit vLLM"
    for role in ("teacher", "student"):
        parser.add_argument(
            f"--{role}_shape",
            f"--{role}-shape",
            dest=f"{role}_shape",
            default="",
            metavar="KEY=N,...",
            help=f"changes to the preset's {role} shape; keys: {keys}",
        )
    parser.add_argument("--force", action="store_true", help="rebuild even when world.json has these settings")
    parser.add_argument(
        "--pretrain",
        action="store_true",
        help="pretrain the models even when the package ships them for these settings",
    )
    parser.add_argument(
        "--export_prebuilt",
        "--export-prebuilt",
        dest="export_prebuilt",
        action="store_true",
        help="after pretraining, ship the models in the package (maintainers)",
    )


def settings_from_args(args) -> WorldSettings:
    """The preset's settings with the flags given on the command line in place of its values."""
    base = PRESETS[args.preset]
    given = {k: v for k, v in flag_values(args, WorldSettings).items() if v is not None}
    for name in ("teacher_target", "student_target"):  # 0 switches the early stop off
        if given.get(name) == 0:
            given[name] = None
    arithmetic = {k: v for k, v in flag_values(args, ArithmeticSpec).items() if v is not None}
    return dataclasses.replace(
        base,
        **given,
        arithmetic=dataclasses.replace(base.arithmetic, **arithmetic),
        teacher_spec=parse_shape(args.teacher_shape, base.teacher_spec, "--teacher_shape"),
        student_spec=parse_shape(args.student_shape, base.student_spec, "--student_shape"),
    )


def summary_lines(world: dict) -> list[str]:
    lines = []
    for role in ("teacher", "student"):
        info = world[role]
        p, t = info["pretrain"], info["test"]
        line = (
            f"{role:8s} {p['parameters']:>8,d} params  {p['steps_run']:>5d} steps  {p['wall_s']:6.1f} s  "
            f"test greedy {t['greedy']:.3f} ({t['n_questions']} questions)"
        )
        if "mixed" in t:
            vote = t["mixed"]
            line += (
                f"  T=1 single {t['T1']['single']:.3f}  maj@10 {t['T1']['maj@10']:.3f}  "
                f"vote@10 (0.3/0.7/1.0) {vote['maj@10']:.3f}"
            )
        lines.append(line)
    lines.append(f"wall {world['wall_s']['total']:.0f} s (data {world['wall_s']['data']:.0f} s)")
    return lines


def check(args) -> WorldSettings:
    """The world's settings from the flags, refused (ValueError) before anything is built."""
    if args.export_prebuilt and not args.pretrain:
        raise ValueError("--export_prebuilt ships pretrained models: add --pretrain")
    return settings_from_args(args)


def run(args) -> int:
    settings = check(args)
    world = build_toy_world(args.out_dir, settings, force=args.force, pretrain_models=args.pretrain)
    if world.get("skipped"):
        print(f"toy world in {args.out_dir} is up to date (world.json has these settings); --force rebuilds")
    elif world["models_from"] != "pretrained":
        print(f"models copied from {world['models_from']} (shipped for these settings); --pretrain trains them")
    for line in summary_lines(world):
        print(line)
    print(f"written: {os.path.join(args.out_dir, WORLD_FILE)}")
    if args.export_prebuilt:
        print(f"shipped: {export_prebuilt(args.out_dir)}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m openrlhf_distill.toy.world", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
