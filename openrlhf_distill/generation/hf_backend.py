"""The transformers backend: batched ``model.generate`` with a KV cache, left padding and stop strings.

The default for small models on a CPU, and the reference the other backends are checked against. Requests that
share sampling settings are batched together (``batch_size`` sequences at a time, ``n`` of them per prompt).
"""

from __future__ import annotations

import hashlib
import os
from itertools import groupby

from .backend import Backend, BackendError, BackendInfo, Completion, Request


def _group_key(request: Request):
    return (request.temperature, request.n, request.max_new_tokens, request.stop, request.top_p)


class HFBackend(Backend):
    def __init__(self, model: str, *, batch_size: int = 16, dtype: str = "auto", device: str | None = None):
        if not os.path.isdir(model):
            raise BackendError(
                f"hf backend: model folder {model!r} does not exist (the hf backend loads local "
                "folders only; use --backend openai for a served model)"
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = max(1, batch_size)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        self.info = BackendInfo(
            name="hf",
            model=model,
            reproducible="same seed, shard size and --hf.batch_size on the same hardware and library versions: "
            "a batch shares one random stream, so changing how prompts are batched changes the samples",
            extra={"batch_size": self.batch_size, "device": self.device},
        )

    def _prompt_text(self, prompt) -> tuple[str, bool]:
        if isinstance(prompt, str):
            return prompt, True
        text = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return text, False  # the template already holds any BOS token

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        results: list[list[Completion] | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: _group_key(requests[i]))
        for _, members in groupby(order, key=lambda i: _group_key(requests[i])):
            members = list(members)
            per_batch = max(1, self.batch_size // requests[members[0]].n)
            for start in range(0, len(members), per_batch):
                chunk = members[start : start + per_batch]
                for i, completions in zip(chunk, self._generate_batch([requests[i] for i in chunk]), strict=True):
                    results[i] = completions
        return results

    def _generate_batch(self, batch: list[Request]) -> list[list[Completion]]:
        torch, tok = self.torch, self.tokenizer
        first = batch[0]
        texts = [self._prompt_text(r.prompt) for r in batch]
        # Plain strings get the tokenizer's special tokens; chat-templated text already has them.
        add_special = all(special for _, special in texts)
        inputs = tok([t for t, _ in texts], return_tensors="pt", padding=True, add_special_tokens=add_special)
        inputs = inputs.to(self.device)
        greedy = first.temperature == 0
        # One random stream per batch, seeded by the requests in it: the same batch gives the same samples.
        seed = int(hashlib.sha256(",".join(str(r.seed) for r in batch).encode()).hexdigest()[:8], 16)
        torch.manual_seed(seed)
        kwargs = dict(
            max_new_tokens=first.max_new_tokens,
            do_sample=not greedy,
            num_return_sequences=1 if greedy else first.n,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        if not greedy:
            kwargs.update(temperature=first.temperature, top_p=first.top_p, top_k=0)
        if first.stop:
            kwargs.update(stop_strings=list(first.stop), tokenizer=tok)
        with torch.no_grad():
            output = self.model.generate(**inputs, **kwargs)
        generated = output[:, inputs["input_ids"].shape[1] :]
        completions = [self._completion(row, first) for row in generated]
        per_prompt = 1 if greedy else first.n
        grouped = [completions[i * per_prompt : (i + 1) * per_prompt] for i in range(len(batch))]
        return [group * first.n if greedy else group for group in grouped]  # greedy: n identical samples

    def _completion(self, row, request: Request) -> Completion:
        tok = self.tokenizer
        ids = row.tolist()
        ended = tok.eos_token_id in ids
        if ended:
            ids = ids[: ids.index(tok.eos_token_id) + 1]
        elif tok.pad_token_id != tok.eos_token_id:
            while ids and ids[-1] == tok.pad_token_id:  # a row that stopped on a stop string is padded
                ids.pop()
        text = tok.decode(ids, skip_special_tokens=True)
        stopped = False
        for stop in request.stop:
            if stop in text:
                text, stopped = text[: text.index(stop)], True
        finish = "stop" if ended or stopped or len(ids) < request.max_new_tokens else "length"
        return Completion(text=text, finish_reason=finish, num_tokens=len(ids))
