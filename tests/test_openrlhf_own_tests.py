"""OpenRLHF's own test suite (shipped in its wheel as the top-level `tests` package) still passes with our
runtime patches installed in every process: the adapter must not break the host it adapts."""

import importlib.metadata
import os
import subprocess
import sys

import pytest

from openrlhf_distill.compat import patches


@pytest.mark.slow
def test_openrlhfs_bundled_tests_pass_with_the_patches_active(tmp_path):
    files = [f for f in importlib.metadata.files("openrlhf") if str(f).startswith("tests/test_")]
    folder = os.path.dirname(str(files[0].locate()))
    cmd = [sys.executable, "-m", "pytest", folder, "-q", "-s", "-p", "no:cacheprovider", "--rootdir", folder]
    env = {**patches.subprocess_env(), patches.ENV_VERBOSE: "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    assert "applied torch_cuda_to_cpu" in result.stderr  # the patches really were on
