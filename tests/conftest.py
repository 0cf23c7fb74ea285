"""Shared fixtures. Tests run offline on CPU with tiny models built here, in seconds, from nothing downloaded."""

import ast
import functools
import inspect
import os
import subprocess
import sys
import textwrap

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

# `make test-fast` leaves out the tests marked `subprocess`: every test that starts a process (a fresh Python with
# its start-up hooks and imports, a recipe script, a CLI command) costs seconds where an in-process test costs
# milliseconds. The mark is given here, by reading each test, rather than by hand, so a new test cannot forget it.
PROCESS_STARTERS = {"run", "Popen", "check_output", "check_call"}  # of the subprocess module


def _starts_a_process(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id == "run_python"  # the fixture below
    return (
        isinstance(func, ast.Attribute)
        and func.attr in PROCESS_STARTERS
        and isinstance(func.value, ast.Name)
        and func.value.id == "subprocess"
    )


@functools.cache
def _tree(function) -> ast.AST:
    """A function's syntax tree, parsed once (the items of a parametrised test share their function)."""
    return ast.parse(textwrap.dedent(inspect.getsource(function)))


def _code_run_by(item) -> list[ast.AST]:
    """The test function, its module's functions it calls by name, and the fixtures it uses from tests/."""
    function = item.function
    module = inspect.getmodule(function)
    trees = [_tree(function)]
    for node in ast.walk(trees[0]):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called = getattr(module, node.func.id, None)
            if inspect.isfunction(called) and inspect.getmodule(called) is module:
                trees.append(_tree(called))
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for name in item.fixturenames:
        for definition in item._fixtureinfo.name2fixturedefs.get(name, ()):
            path = inspect.getsourcefile(definition.func) or ""
            if os.path.dirname(os.path.abspath(path)) == tests_dir:
                trees.append(_tree(definition.func))
    return trees


def pytest_collection_modifyitems(items):
    for item in items:
        if not hasattr(item, "function") or item.get_closest_marker("slow"):
            continue
        calls = (node for tree in _code_run_by(item) for node in ast.walk(tree) if isinstance(node, ast.Call))
        if any(_starts_a_process(call) for call in calls):
            item.add_marker(pytest.mark.subprocess)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny random Qwen2 causal LM + tokenizer, saved once per session."""
    from openrlhf_distill.toy.tiny_model import build_tiny_causal_lm

    return build_tiny_causal_lm(str(tmp_path_factory.mktemp("tiny_qwen2")))


@pytest.fixture(scope="session")
def teacher_sample() -> dict:
    """One teacher sample record of question q1 ("What is 1 + 1?"), answered 2."""
    return {
        "id": "q1",
        "source": "teacher",
        "model": "m",
        "temperature": 1.0,
        "sample_index": 0,
        "response": "#### 2",
        "finish_reason": "stop",
        "answer": "2",
        "extraction": "marker",
    }


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
