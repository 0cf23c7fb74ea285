"""Reward schemes of the RL stage: the reward function OpenRLHF loads from a file, and a batching RM server.

See :mod:`.schemes` for the schemes, :mod:`.function` for the rewards as plain functions (``vote_reward``,
``gold_reward``, ``style_reward``), the reward function OpenRLHF calls and its file, :mod:`.server` for
``openrlhf-distill serve-rm``.
"""

from .function import gold_reward, make_reward_func, style_reward, vote_reward, write_reward_file
from .schemes import FUNCTION_SCHEMES, RM_SCHEMES, SCHEMES, RewardConfig
from .server import RewardModelServer, RewardServerError, score

__all__ = [
    "FUNCTION_SCHEMES",
    "RM_SCHEMES",
    "SCHEMES",
    "RewardConfig",
    "RewardModelServer",
    "RewardServerError",
    "make_reward_func",
    "gold_reward",
    "score",
    "style_reward",
    "vote_reward",
    "write_reward_file",
]
