"""The reward function of the function schemes (``vote``, ``gold``, ``hybrid`` and the controls ``random`` and
``style``), and the file OpenRLHF loads it from.

OpenRLHF (``--reward.remote_url FILE.py``) imports FILE.py by path in every rollout actor and calls its
``reward_func(queries, prompts, labels)`` once per sample, in a thread:

- ``queries[i]``: ``decode(prompt_ids + response_ids, skip_special_tokens=False)``: the prompt, the response,
  and often the EOS token's text at the end;
- ``prompts[i]``: the prompt after the chat template;
- ``labels[i]``: the raw ``--data.label_key`` value: our ``distill_label`` JSON string, or a user's plain label
  (:func:`openrlhf_distill.records.decode_reward_label`).

Rewards (1.0 / 0.0 from the task layer's answer extraction and equivalence):

- ``vote``: the student's answer equals the pseudo-label;
- ``gold``: it equals the gold answer (an upper bound: the only scheme whose reward reads gold);
- ``hybrid``: ``alpha`` * the RM's normalised reward (from a :mod:`.server` reward-model server) + ``beta`` *
  the vote reward;
- ``random`` (a control): 1 with probability ``random_p``, drawn independently of the response;
- ``style`` (a control): 1 when the task reads the response as written in ``style`` (arithmetic: "worked").

Gold never changes a ``vote`` or ``hybrid`` reward: there it is read only for the ``distill/gold_correct``
and ``distill/has_gold`` logs, and a gold answer the task cannot parse is logged as absent, not an error.

Each call returns ``{"rewards", "scores", "extra_logs"}``; ``scores`` (what OpenRLHF's dynamic filtering reads)
is the 0/1 agreement the scheme rewards, so for ``hybrid`` it is the vote reward. ``extra_logs`` always has
the same keys (OpenRLHF averages them per step): ``distill/pseudo_correct``, ``distill/has_pseudo_label``,
``distill/gold_correct``, ``distill/has_gold``, ``distill/answer_found``, and for hybrid ``distill/rm_reward``.

OpenRLHF logs an exception raised here only at INFO and then fails with "reward_model_group is required", so
the function logs every exception at ERROR with its traceback, prints it to stderr, and re-raises it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import traceback

from ..records import RewardLabel, decode_reward_label, write_text_atomic
from .schemes import RewardConfig

logger = logging.getLogger(__name__)

LOG_KEYS = (
    "distill/pseudo_correct",
    "distill/has_pseudo_label",
    "distill/gold_correct",
    "distill/has_gold",
    "distill/answer_found",
)
RM_LOG_KEY = "distill/rm_reward"

# The text special tokens decode to at the end of a response: vLLM stops at (and keeps) the EOS token, and
# OpenRLHF decodes with skip_special_tokens=False. Qwen/ChatML <|im_end|>, <|endoftext|>; Llama 3 <|eot_id|>,
# <|end_of_text|>; Llama 2 / Mistral </s>; Gemma <eos>, <end_of_turn>; DeepSeek <｜end▁of▁sentence｜>.
_TRAILING_SPECIAL_TOKENS = re.compile(
    r"(?:\s*(?:<\|[^<>|\s]{1,40}\|>|</s>|<eos>|<end_of_turn>|<｜[^<>｜]{1,40}｜>))+\s*$"
)
# How much of the prompt's end is searched for in a query that does not start with the whole prompt.
_PROMPT_TAIL_CHARS = 64
_warned_fallbacks = 0


def strip_trailing_special_tokens(text: str) -> str:
    return _TRAILING_SPECIAL_TOKENS.sub("", text)


def split_response(query: str, prompt: str) -> str:
    """The response part of ``query`` (= prompt + response as OpenRLHF decoded them), special tokens kept.

    1. The query starts with the prompt (the normal case): what follows it.
    2. Otherwise the prompt did not survive the tokenizer round trip unchanged: OpenRLHF cut its start to fit
       ``max_len``, or decoding normalised some text. The end of a prompt (the chat template's assistant header
       and the question's last words) normally survives: what follows its first occurrence.
    3. Otherwise: the query from the prompt's length on. Decoding differences are a few characters, so at
       worst the response loses or gains a few characters at its start, while a final answer sits at its end;
       never the whole query, which would let answers in the prompt (few-shot examples) earn rewards.
    Cases 2 and 3 are logged (the first few times), since a systematic mismatch deserves a look.
    """
    if query.startswith(prompt):
        return query[len(prompt) :]
    tail = prompt[-_PROMPT_TAIL_CHARS:]
    found = query.find(tail) if tail.strip() else -1
    response = query[found + len(tail) :] if found >= 0 else query[len(prompt) :]
    global _warned_fallbacks
    if _warned_fallbacks < 5:
        _warned_fallbacks += 1
        how = "after the prompt's last characters" if found >= 0 else "from the prompt's length on"
        logger.warning(
            "reward_func: the query does not start with the prompt (tokenizer round trip or truncation); "
            "took the response %s: %r",
            how,
            response[:200],
        )
    return response


# --- The rewards themselves: plain functions of a response ----------------------------------------------------
#
# What the schemes reward, one response at a time; `_Rewarder` below is the OpenRLHF side (decoding its batch, the
# labels, the logs). ``reference`` is a canonical answer (``task.parse_gold``); None means none is known.


def vote_reward(response: str, pseudo_label: str | None, task) -> float:
    """The ``vote`` scheme: 1.0 when the response's final answer equals the question's pseudo-label (the
    teacher's majority answer), else 0.0; 0.0 for a question without one.

    >>> from openrlhf_distill.tasks import get_task
    >>> vote_reward("3 boxes of 6 is 18. #### 18", "18", get_task("gsm8k"))
    1.0
    >>> vote_reward("#### 17", "18", get_task("gsm8k")), vote_reward("#### 18", None, get_task("gsm8k"))
    (0.0, 0.0)
    """
    return float(pseudo_label is not None and task.is_equivalent(task.extract_answer(response), pseudo_label))


def gold_reward(response: str, gold: str, task) -> float:
    """The ``gold`` scheme (an upper bound, for prompts with known answers): 1.0 for the gold answer.

    >>> from openrlhf_distill.tasks import get_task
    >>> gold_reward("#### 18.00", "18", get_task("gsm8k"))
    1.0
    """
    return vote_reward(response, gold, task)


def style_reward(response: str, style: str, task) -> float:
    """The ``style`` control: 1.0 when the response is written in ``style`` (a task with response styles, the
    toy world's arithmetic: "worked" or "direct"), whether or not its answer is right.

    >>> from openrlhf_distill.tasks import get_task
    >>> style_reward("14 / 2 = 7. 7 - 4 = 3. #### 3", "worked", get_task("arithmetic"))
    1.0
    >>> style_reward("#### 3", "worked", get_task("arithmetic"))
    0.0
    """
    return float(task.response_style(response) == style)


def _row(label: RewardLabel) -> str:
    return f"row {label.id!r}" if label.id is not None else "a row without id"


class _Rewarder:
    def __init__(self, config: RewardConfig):
        from ..tasks import get_task

        self.config = config.check()
        self._get_task = get_task
        self._tasks: dict = {}
        # random: each rollout actor flips its own coins (the actor's pid keeps two actors' streams apart)
        self._coins = random.Random(f"{config.seed}-{os.getpid()}")

    def task(self, label: RewardLabel):
        name = label.task or self.config.task
        if name is None:
            raise ValueError(
                f"no task for reward label {label!r}: the label names none and the reward config has "
                "no default task (set RewardConfig.task, e.g. 'gsm8k')"
            )
        if name == "open":
            raise ValueError(
                f"{_row(label)} has task 'open', which has no answers to compare; scheme "
                f"{self.config.scheme!r} needs an answer task (open-ended prompts: scheme 'judge')"
            )
        if name not in self._tasks:  # one instance per task: the math task caches parsed answers
            self._tasks[name] = self._get_task(name)
        return self._tasks[name]

    @staticmethod
    def canonical(task, label: RewardLabel, field: str, value: str | None) -> str | None:
        """An answer from the label in the task's canonical form (e.g. "18.00" -> "18"); ValueError naming the
        field when the task cannot read it."""
        if value is None:
            return None
        try:
            return task.parse_gold({"id": label.id, "gold": value})
        except ValueError as error:  # the task's message calls it 'gold' whatever it is: say what it was
            raise ValueError(
                f"reward label of {_row(label)}, field '{field}': task {task.name!r} cannot read "
                f"{value!r} as an answer ({error})"
            ) from None

    def reference_answers(self, task, label: RewardLabel) -> tuple[str | None, str | None]:
        """(pseudo-label, gold) in canonical form. An answer the scheme's reward does not depend on is only
        logged, so one the task cannot read counts as absent rather than stopping the run."""
        scheme = self.config.scheme
        pseudo_value, gold_value = label.label, label.gold
        if label.from_plain_string and scheme == "gold":  # a user's plain label column holds gold answers
            pseudo_value, gold_value = None, label.label
        answers = []
        for field, value in (("label", pseudo_value), ("gold", gold_value)):
            rewarded = (field == "gold") == (scheme == "gold")
            try:
                answers.append(self.canonical(task, label, field, value))
            except ValueError as error:
                if rewarded:
                    raise
                logger.warning("reward_func: %s; logged as absent", error)
                answers.append(None)
        return answers[0], answers[1]

    def __call__(self, queries, prompts, labels) -> dict:
        import torch

        if not (len(queries) == len(prompts) == len(labels)):
            raise ValueError(f"reward_func got {len(queries)} queries, {len(prompts)} prompts, {len(labels)} labels")
        scheme, logs = self.config.scheme, {key: [] for key in LOG_KEYS}
        agreement, raw_responses = [], []
        for query, prompt, raw_label in zip(queries, prompts, labels, strict=True):
            label = decode_reward_label(raw_label)
            task = self.task(label)
            raw_response = split_response(query, prompt)
            raw_responses.append(raw_response)
            response = strip_trailing_special_tokens(raw_response)
            pseudo, gold = self.reference_answers(task, label)
            if scheme == "gold" and gold is None:
                raise ValueError(
                    f"scheme 'gold' needs a gold answer, and the reward label of {_row(label)} has "
                    "none (the gold scheme is an upper bound for prompts with known answers)"
                )
            pseudo_correct, gold_correct = vote_reward(response, pseudo, task), vote_reward(response, gold, task)
            if scheme == "random":
                agreement.append(float(self._coins.random() < self.config.random_p))
            elif scheme == "style":
                agreement.append(style_reward(response, self.config.style, task))
            else:
                agreement.append(gold_correct if scheme == "gold" else pseudo_correct)
            for key, value in zip(
                LOG_KEYS,
                (
                    pseudo_correct,
                    pseudo is not None,
                    gold_correct,
                    gold is not None,
                    task.extract_answer(response) is not None,
                ),
                strict=True,
            ):
                logs[key].append(float(value))
        rewards = agreement
        if scheme == "hybrid":
            from .server import score

            rm = score(self.config.rm_url, list(prompts), raw_responses, timeout=self.config.rm_timeout_s)
            logs[RM_LOG_KEY] = rm
            rewards = [self.config.alpha * r + self.config.beta * v for r, v in zip(rm, agreement, strict=True)]
        return {
            "rewards": torch.tensor(rewards, dtype=torch.float32),
            "scores": torch.tensor(agreement, dtype=torch.float32),
            "extra_logs": {key: torch.tensor(values, dtype=torch.float32) for key, values in logs.items()},
        }


def _report_loudly(config: RewardConfig, error: Exception, queries, prompts, labels) -> None:
    """OpenRLHF would log this at INFO and fail later with "reward_model_group is required": say it clearly."""
    example = f"label {labels[0]!r:.300}, query ending {str(queries[0])[-200:]!r}" if labels and queries else ""
    message = (
        f"openrlhf-distill reward_func (scheme {config.scheme!r}) failed: {type(error).__name__}: {error}\n"
        f"  on {example}\n  (OpenRLHF reports this only later, as 'reward_model_group is required')"
    )
    logger.error(message, exc_info=error)
    print(f"ERROR {message}\n{traceback.format_exc()}", file=sys.stderr, flush=True)


def make_reward_func(config: RewardConfig):
    """OpenRLHF's ``reward_func(queries, prompts, labels)`` for the config of any function scheme."""
    rewarder = _Rewarder(config)

    def reward_func(queries, prompts, labels):
        try:
            return rewarder(queries, prompts, labels)
        except Exception as error:
            _report_loudly(rewarder.config, error, queries, prompts, labels)
            raise

    reward_func.config = rewarder.config
    return reward_func


_FILE_TEMPLATE = """\
# Generated by openrlhf-distill {version} (openrlhf_distill.rewards.function.write_reward_file).
# The reward function of scheme {scheme!r} for OpenRLHF: --reward.remote_url {path}
# OpenRLHF imports this file by path in each rollout actor and calls reward_func(queries, prompts, labels)
# once per sample. The code lives in the openrlhf_distill package, which must be importable there; the
# settings are the JSON below (regenerate the file rather than editing it).
import json

try:
    from openrlhf_distill.rewards.function import make_reward_func
    from openrlhf_distill.rewards.schemes import RewardConfig
except ImportError as error:
    raise ImportError(
        "this reward file needs the openrlhf_distill package in the Python environment of OpenRLHF's rollout "
        "actors (pip install openrlhf-distill on every node): " + str(error)
    ) from error

CONFIG = json.loads({config_json!r})

reward_func = make_reward_func(RewardConfig.from_dict(CONFIG))
"""


def write_reward_file(path: str, config: RewardConfig) -> str:
    """Writes (atomically) the self-contained python file OpenRLHF loads with ``--reward.remote_url PATH``;
    returns its absolute path."""
    from .. import __version__

    config.check()
    path = os.path.abspath(path)
    if not path.endswith(".py"):
        raise ValueError(
            f"the reward file must end in .py (OpenRLHF loads a reward function only from a .py path), got {path!r}"
        )
    text = _FILE_TEMPLATE.format(
        version=__version__, scheme=config.scheme, path=path, config_json=json.dumps(config.to_dict(), sort_keys=True)
    )
    write_text_atomic(path, text)
    return path
