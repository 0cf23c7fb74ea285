"""A missing or unsupported OpenRLHF is named in one clear sentence, not a traceback from deep inside."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from openrlhf_distill.compat.version import (
    ALLOW_UNTESTED_ENV,
    SUPPORTED_RANGE,
    OpenRLHFNotSupported,
    check_openrlhf,
)


def test_the_installed_openrlhf_is_supported():
    assert check_openrlhf() == "0.11.2"


@pytest.mark.parametrize("installed", ["0.9.6", "0.10.1", "0.11.0", "0.11.3", "0.12.0"])
def test_an_untested_version_names_both_versions_and_how_to_fix_it(installed, monkeypatch):
    # Only the tested release: 0.11.0 -> 0.11.2 renamed flags, so a patch release is not assumed compatible.
    monkeypatch.delenv(ALLOW_UNTESTED_ENV, raising=False)
    with pytest.raises(OpenRLHFNotSupported) as error:
        check_openrlhf(installed)
    message = str(error.value)
    assert f"OpenRLHF {installed} is installed" in message and SUPPORTED_RANGE in message and "pip install" in message
    assert ALLOW_UNTESTED_ENV in message
    monkeypatch.setenv(ALLOW_UNTESTED_ENV, "1")  # the user's say: run it anyway, warned
    with pytest.warns(UserWarning, match=f"OpenRLHF {installed} is installed.*running it anyway"):
        assert check_openrlhf(installed) == installed


# Runs the real CLI with site-packages' openrlhf hidden (missing) or shadowed by an old dist-info (wrong).
HIDE_OR_FAKE = textwrap.dedent(
    """
    import sys, importlib.metadata
    mode = sys.argv[1]
    if mode == "missing":
        real = importlib.metadata.version
        def version(name):
            if name == "openrlhf":
                raise importlib.metadata.PackageNotFoundError(name)
            return real(name)
        importlib.metadata.version = version
    else:
        sys.path.insert(0, sys.argv[2])  # a folder holding openrlhf-0.9.6.dist-info
    from openrlhf_distill.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.mark.parametrize(
    "mode, expected", [("missing", "OpenRLHF is not installed"), ("old", "OpenRLHF 0.9.6 is installed")]
)
def test_cli_reports_a_missing_or_old_openrlhf_without_a_traceback(mode, expected, tmp_path):
    dist = tmp_path / "openrlhf-0.9.6.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: openrlhf\nVersion: 0.9.6\n")
    cmd = [
        sys.executable,
        "-c",
        HIDE_OR_FAKE,
        mode,
        str(tmp_path),
        "sft",
        "--engine",
        "cpu",
        "--data.dataset",
        "x.jsonl",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr

    doctor = subprocess.run(
        [sys.executable, "-c", HIDE_OR_FAKE, mode, str(tmp_path), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert doctor.returncode == 1
    report = json.loads(doctor.stdout)
    assert report["openrlhf"]["ok"] is False and any(expected in p for p in report["problems"])
