"""`make test-fast` leaves out every test that starts a process, however it starts it: this suite's conftest.py,
run by pytest on a file of example tests and collected the way `make test-fast` collects."""

import pathlib

pytest_plugins = ("pytester",)

CONFTEST = pathlib.Path(__file__).with_name("conftest.py")

EXAMPLES = """
import subprocess
import sys

import pytest


def _run_cli(*args):
    return subprocess.run([sys.executable, "-c", "pass", *args], check=True)


@pytest.fixture
def server():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    yield process
    process.wait()


def test_in_process():
    assert "subprocess.run(" in "a string is not a call"


def test_starts_a_python_itself():
    subprocess.check_output([sys.executable, "-c", "pass"])


def test_through_a_helper_of_its_module():
    _run_cli("--help")


def test_through_a_fixture(server):
    assert server.pid


def test_through_run_python(run_python):
    run_python("pass")


@pytest.mark.slow
def test_marked_slow_by_hand():
    pass
"""


def _collected(result) -> list[str]:
    return sorted(line.split("::", 1)[1] for line in result.outlines if "::" in line)


def test_make_test_fast_collects_only_the_tests_that_start_no_process(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    slow: x\n    subprocess: y\n")
    pytester.makepyfile(test_examples=EXAMPLES)

    everything = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert len(_collected(everything)) == 6, everything.outlines
    fast = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "-m", "not slow and not subprocess")
    assert _collected(fast) == ["test_in_process"], fast.outlines
    process_tests = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "-m", "subprocess")
    assert _collected(process_tests) == [
        "test_starts_a_python_itself",
        "test_through_a_fixture",
        "test_through_a_helper_of_its_module",
        "test_through_run_python",
    ]
