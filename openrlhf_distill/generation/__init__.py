"""Stages 1 and 5: sampling the teacher and the student. See :mod:`.generate` for the stage, :mod:`.backend` for
what a backend is, and hf_backend / vllm_backend / openai_backend for the three backends."""

from __future__ import annotations

import importlib.util
import os

from .backend import Backend, BackendError, BackendInfo, Completion, Request

BACKENDS = ("hf", "vllm", "openai")


def choose_backend(model: str, openai_base_url: str | None = None) -> str:
    """`auto`: openai when a server URL is given; vllm on a GPU machine that has it; hf otherwise (CPU, tiny
    models: vLLM's CPU engine takes ~25 s to start, longer than a tiny model takes to sample)."""
    if openai_base_url:
        return "openai"
    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None:
        return "vllm"
    return "hf"


def make_backend(
    backend: str, model: str, *, openai_base_url: str | None = None, openai_api_key: str | None = None, **options
) -> Backend:
    """A started backend by name ("auto", "hf", "vllm", "openai"); ``options`` go to its constructor."""
    if backend == "auto":
        backend = choose_backend(model, openai_base_url)
    if backend == "hf":
        from .hf_backend import HFBackend

        return HFBackend(model, **options)
    if backend == "vllm":
        from .vllm_backend import VLLMBackend

        return VLLMBackend(model, **options)
    if backend == "openai":
        from .openai_backend import OpenAIBackend

        if not openai_base_url:
            raise BackendError("the openai backend needs --openai.base_url (e.g. http://127.0.0.1:8000/v1)")
        key = openai_api_key if openai_api_key is not None else os.environ.get("OPENAI_API_KEY")
        return OpenAIBackend(model, base_url=openai_base_url, api_key=key, **options)
    raise BackendError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "BackendError", "BackendInfo", "Completion", "Request", "make_backend"]
