"""Children end with the process that started them (`openrlhf_distill/processes.py`)."""

import os
import signal
import subprocess
import sys
import time

import pytest

# A middle process starts a silent child (it writes nothing, so no broken pipe would end it) and prints its pid.
MIDDLE = """
import subprocess, sys
from openrlhf_distill.processes import ends_with_this_process
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=PREEXEC)
print(child.pid, flush=True)
child.wait()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("preexec, ends", [("ends_with_this_process()", True), ("None", False)])
def test_a_silent_child_ends_when_its_parent_is_killed_only_when_asked(preexec, ends):
    middle = subprocess.Popen(
        [sys.executable, "-c", MIDDLE.replace("PREEXEC", preexec)], stdout=subprocess.PIPE, text=True
    )
    child = int(middle.stdout.readline())
    middle.send_signal(signal.SIGKILL)
    middle.wait()
    deadline = time.time() + (10 if ends else 1.5)  # the negative case: still there after a while
    while time.time() < deadline and _alive(child):
        time.sleep(0.05)
    try:
        assert _alive(child) != ends  # with the request it is gone within seconds; without, still sleeping
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
