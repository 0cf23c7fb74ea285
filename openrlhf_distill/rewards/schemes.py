"""The reward schemes of the RL stage, and the settings of the reward function that implements some of them.

| scheme | reward | where it is computed |
| --- | --- | --- |
| ``rm`` | the distilled reward model (the paper) | OpenRLHF's own RM path, ``--reward.model_name_or_path`` |
| ``judge`` | an RM trained on the teacher-judge's labels (open-ended tasks) | the same path |
| ``vote`` | 1 when the student's answer equals the teacher's pseudo-label, else 0 | our reward function |
| ``gold`` | 1 when it equals the gold answer (an upper bound; the only scheme that reads gold) | our reward function |
| ``hybrid`` | ``alpha`` * normalised RM reward + ``beta`` * the ``vote`` reward | our reward function + RM server |
| ``random`` | 1 with probability ``random_p``, whatever the response (a control) | our reward function |
| ``style`` | 1 when the response has style ``style`` (e.g. "worked"; a control) | our reward function |

``random`` and ``style`` are controls, not methods: a gain that a random reward also brings (Shao et al. 2025,
"Spurious Rewards") or that rewarding a style alone brings is not the learned RM's doing.

``RewardConfig`` holds the settings of the reward-function schemes; ``check`` refuses the others, which have
no reward function.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..argtypes import number_in
from ..settings import setting

SCHEMES = ("rm", "vote", "gold", "hybrid", "judge", "random", "style")
FUNCTION_SCHEMES = (
    "vote",
    "gold",
    "hybrid",
    "random",
    "style",
)  # computed by our reward_func (--reward.remote_url FILE.py)
RM_SCHEMES = ("rm", "judge")  # OpenRLHF's learned-RM path (--reward.model_name_or_path)
LABEL_SCHEMES = ("vote", "hybrid")  # read each prompt's pseudo-label: only prompts the teacher's vote labelled


@dataclass(frozen=True)
class RewardConfig:
    # Set by `ppo` from the run: the scheme, the default task (a row's own task, in its reward label, wins), the
    # hybrid's RM server, the seed of each rollout actor's coin flips (random).
    scheme: str = setting(flag=False)
    task: str | None = setting(None, flag=False)
    # `ppo --distill.reward.*`:
    alpha: float = setting(1.0, "hybrid: weight of the normalised RM reward")
    beta: float = setting(1.0, "hybrid: weight of the vote reward")
    rm_url: str | None = setting(None, flag=False)
    rm_timeout_s: float = setting(120.0, "hybrid: seconds per request to the RM server, retries included")
    random_p: float = setting(0.5, "random: chance of reward 1", check=number_in(0, 1))
    style: str = setting("worked", "style: the rewarded style, as the task's response_style names it (worked, direct)")
    seed: int = setting(0, flag=False)

    def check(self) -> RewardConfig:
        """Raises a ValueError saying what is wrong with these settings for a reward function; returns self."""
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown reward scheme {self.scheme!r}; valid schemes: {', '.join(SCHEMES)}")
        if self.scheme in RM_SCHEMES:
            raise ValueError(
                f"reward scheme {self.scheme!r} uses OpenRLHF's learned reward model "
                f"(--reward.model_name_or_path) and has no reward function; reward functions exist "
                f"for {', '.join(FUNCTION_SCHEMES)}"
            )
        if self.task is not None:
            from ..tasks import TASK_NAMES

            if self.task not in TASK_NAMES:
                raise ValueError(f"reward config: unknown task {self.task!r}; known tasks: {', '.join(TASK_NAMES)}")
            if self.task == "open":
                raise ValueError(
                    f"reward scheme {self.scheme!r} compares answers, and task 'open' has none; "
                    "open-ended prompts are rewarded by a judge-trained RM (scheme 'judge')"
                )
        for name in ("alpha", "beta", "rm_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"reward config: {name} must be a finite number, got {value!r}")
        if not 0.0 <= self.random_p <= 1.0:
            raise ValueError(f"reward config: random_p must be in [0, 1], got {self.random_p}")
        if self.scheme == "style":
            from ..tasks import get_task

            styles = getattr(get_task(self.task), "styles_of_responses", None) if self.task else None
            if styles is None:
                raise ValueError(
                    f"reward scheme 'style' needs a task whose responses have styles (arithmetic), got {self.task!r}"
                )
            if self.style not in styles:
                raise ValueError(f"reward config: style {self.style!r} is not one of {', '.join(styles)}")
        if self.rm_timeout_s <= 0:
            raise ValueError(f"reward config: rm_timeout_s must be > 0, got {self.rm_timeout_s}")
        if self.scheme == "hybrid":
            if not self.rm_url:
                raise ValueError(
                    "reward scheme 'hybrid' needs rm_url, the URL of a reward-model server "
                    "(start one with `openrlhf-distill serve-rm --model RM_DIR`)"
                )
            if not self.rm_url.startswith(("http://", "https://")):
                raise ValueError(f"reward config: rm_url must be an http(s) URL, got {self.rm_url!r}")
            if self.alpha == 0 and self.beta == 0:
                raise ValueError("reward scheme 'hybrid' with alpha = beta = 0 gives every response reward 0")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RewardConfig:
        if not isinstance(values, dict):
            raise ValueError(f"reward config must be an object, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"reward config: unknown field(s) {unknown}; known fields: {sorted(known)}")
        if "scheme" not in values:
            raise ValueError("reward config: field 'scheme' is missing")
        return cls(**values)
