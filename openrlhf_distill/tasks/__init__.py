"""The task layer: the ONE place where answers are read.

Voting, labels, rewards and evaluation all call `get_task(name)` and use its `extract`, `is_equivalent` and
`parse_gold`, so a response is read the same way by every stage.

    >>> task = get_task("gsm8k")
    >>> task.extract("She pays 3 * 6 = 18 dollars.\\n#### $18.00")
    Extraction(answer='18', rule='hashes')
    >>> task.is_equivalent(task.extract_answer("The answer is 18.0."), "18")
    True
"""

from __future__ import annotations

from .arithmetic import Arithmetic
from .base import Extraction, Task
from .gsm8k import GSM8K
from .math_boxed import MathBoxed
from .mmlu_pro import MMLUPro
from .open_ended import OpenEnded

_TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (GSM8K, MMLUPro, MathBoxed, Arithmetic, OpenEnded)}
TASK_NAMES: tuple[str, ...] = tuple(_TASKS)


def get_task(name: str, **options) -> Task:
    """A new task by registry name; `options` go to its constructor (e.g. gsm8k's `last_number_fallback`)."""
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}")
    return _TASKS[name](**options)


__all__ = ["TASK_NAMES", "Extraction", "Task", "get_task"]
