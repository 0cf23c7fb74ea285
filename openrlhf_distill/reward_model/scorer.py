"""Scoring texts with a trained reward model, as OpenRLHF scores them: used by `eval-rm` and by `serve-rm`."""

from __future__ import annotations

from ..compat.formats import reward_model_input
from ..model_folders import check_reward_model

# A text is cut to this many characters per RM position before tokenising (English averages about 4 per token).
CHARS_PER_TOKEN = 8
# The prefix's tokens must pass the positions by this much: only its last few tokens can differ from the whole
# text's (a word cut in two).
PREFIX_MARGIN = 16


class RewardScorer:
    """Scores texts with an OpenRLHF reward model, loaded by OpenRLHF's own loader (with the adapter's fixes).

    ``normalize``: rewards come back as (raw - mean) / std with the ``mean``/``std`` stored in the checkpoint's
    config.json, as OpenRLHF's PPO gives them with ``--reward.normalize_enable`` (the RL reward server uses it,
    so that a hybrid reward mixes the RM with a 0/1 vote reward on a known scale). Evaluation uses raw rewards.
    """

    def __init__(self, model_dir: str, batch_size: int = 16, normalize: bool = False, device: str | None = None):
        """``device``: where the RM scores; by default the GPU where this process sees one, else the CPU."""
        from ..compat import boot_install

        check_reward_model(model_dir)
        boot_install()  # among the patches: the fix that refills mean/std from config.json after loading
        import torch
        from openrlhf.models import get_llm_for_sequence_regression
        from transformers import AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = (
            get_llm_for_sequence_regression(
                model_dir, "reward", normalize_reward=normalize, attn_implementation="eager", param_dtype="bf16"
            )
            .eval()
            .to(self.device)
        )
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        self.batch_size = batch_size
        self.max_len = getattr(self.model.config, "max_position_embeddings", None)
        self.truncated = 0  # texts cut to max_len so far

    @property
    def eos_token(self) -> str:
        return self.tokenizer.eos_token

    def text(self, prompt, response) -> str:
        """Chat prompts (message lists) through the chat template, as training with --data.apply_chat_template;
        plain strings concatenated, as training without it."""
        if isinstance(prompt, list):
            reply = response if isinstance(response, list) else [{"role": "assistant", "content": response}]
            messages = prompt + reply
            text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        else:
            text = prompt + (response if isinstance(response, str) else response[-1]["content"])
        return reward_model_input(text, self.tokenizer.eos_token)

    def scores(self, texts: list[str]) -> list[float]:
        import torch

        out = []
        for start in range(0, len(texts), self.batch_size):
            ids = [self._cut(one) for one in self._token_ids(texts[start : start + self.batch_size])]
            batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
            with torch.no_grad():
                out += self.model(batch.input_ids, attention_mask=batch.attention_mask).float().tolist()
        return out

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        """The texts' token ids, each text longer than the RM reads first cut to a prefix of ``CHARS_PER_TOKEN``
        characters per position: a 15 MB text is not tokenised whole to keep its first ``max_len`` tokens (it
        held the server for 49 s, every other request waiting). A prefix that does not give comfortably more
        tokens than the positions (tokens of more than that many characters on average) is tokenised whole, so
        the ids kept are always those of the whole text."""
        budget = self.max_len * CHARS_PER_TOKEN if self.max_len else None
        short = [text[:budget] if budget else text for text in texts]
        ids = self.tokenizer(short, add_special_tokens=False)["input_ids"]
        for index, (text, one) in enumerate(zip(texts, ids, strict=True)):
            if budget and len(text) > budget and len(one) < self.max_len + PREFIX_MARGIN:
                ids[index] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def _cut(self, ids: list[int]) -> list[int]:
        """A text longer than the RM's positions, cut as OpenRLHF's RewardDataset cuts its training texts: the
        right end dropped, the last token made EOS (where the RM reads its score)."""
        if not self.max_len or len(ids) <= self.max_len:
            return ids
        self.truncated += 1
        return ids[: self.max_len - 1] + [self.tokenizer.eos_token_id]
