"""Reward schemes of the RL stage: the reward function OpenRLHF loads from a file, and a batching RM server.

See :mod:`.schemes` for the schemes, :mod:`.function` for the reward function and its file, :mod:`.server`
for ``openrlhf-distill serve-rm``.
"""

from .function import make_reward_func, write_reward_file
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
    "score",
    "write_reward_file",
]
