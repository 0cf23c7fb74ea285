"""Shared fixtures. Tests run offline on CPU with tiny models built here, in seconds, from nothing downloaded."""

import os
import subprocess
import sys

import pytest
from hypothesis import settings

# No per-example deadline: on a loaded 2-core CI machine a fast example can still take over 200 ms.
settings.register_profile("project", deadline=None)
settings.load_profile("project")

# Set before anything imports transformers/vLLM, and inherited by every subprocess a test starts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny random Qwen2 causal LM + tokenizer, saved once per session."""
    from openrlhf_distill.toy.tiny_models import build_tiny_causal_lm

    return build_tiny_causal_lm(str(tmp_path_factory.mktemp("tiny_qwen2")))


@pytest.fixture
def run_python(tmp_path):
    """Runs code as a script in a fresh interpreter of this venv, so start-up hooks and imports are real.

    A script file rather than ``-c``, so that "spawn" multiprocessing can re-import its ``__main__``.
    """

    def run(code: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
        script = tmp_path / "script.py"
        script.write_text(code)
        return subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
        )

    return run
