"""OpenRLHF's wheel installs a top-level `tests` package; our suite must never be confused with it."""

import os
import sys

REPO_TESTS = os.path.dirname(os.path.abspath(__file__))


def test_this_module_and_conftest_are_ours_and_no_openrlhf_test_module_was_loaded():
    assert os.path.dirname(os.path.abspath(sys.modules[__name__].__file__)) == REPO_TESTS
    loaded = {name: getattr(m, "__file__", None) or "" for name, m in list(sys.modules.items())}
    conftests = [f for f in loaded.values() if f.endswith("conftest.py")]
    assert conftests and all(f.startswith(REPO_TESTS) for f in conftests)
    theirs = [name for name, f in loaded.items() if f"site-packages{os.sep}tests{os.sep}" in f]
    assert not theirs, f"OpenRLHF's own test modules were imported: {theirs}"


def test_openrlhf_ships_a_tests_package_and_ours_is_not_a_package():
    import importlib.metadata

    shipped = {str(f) for f in importlib.metadata.files("openrlhf")}
    assert "tests/__init__.py" in shipped  # the hazard is real: `import tests` would find OpenRLHF's
    assert not os.path.exists(os.path.join(REPO_TESTS, "__init__.py"))  # so ours is collected by path only


def test_pytest_collects_only_our_tests_folder():
    import tomllib

    config = tomllib.load(open(os.path.join(os.path.dirname(REPO_TESTS), "pyproject.toml"), "rb"))
    options = config["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests"] and "--import-mode=importlib" in options["addopts"]


def test_the_wheel_ships_the_boot_hook_that_carries_patches_to_every_process(tmp_path):
    import subprocess
    import zipfile

    repo = os.path.dirname(REPO_TESTS)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), repo]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("openrlhf_distill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "openrlhf_distill/compat/boot/sitecustomize.py" in names
    assert not any(n.startswith("tests/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "openrlhf-distill = openrlhf_distill.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
