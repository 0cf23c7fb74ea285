"""How OpenRLHF turns records into model inputs, where our code must match it exactly."""

from __future__ import annotations


def reward_model_input(text: str, eos_token: str) -> str:
    """The text OpenRLHF's RewardDataset scores for a prompt + response (chat template already applied).

    It strips trailing newlines and ends the text with the EOS token, and the RM reads its reward at that
    last token; a text scored any other way (e.g. ending in the chat template's "\\n") gets another reward.
    """
    text = text.rstrip("\n")
    return text if text.endswith(eos_token) else text + " " + eos_token
