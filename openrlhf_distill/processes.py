"""Child processes that end with the process that started them.

A stage, a trainer or a server started by a command outlives it when the command is killed with SIGKILL (or its
terminal goes away): it would keep the GPUs, write into the run folder, and let a rerun start beside it. On Linux
the kernel can send the child a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``); each level of our
processes asks for it, so the whole chain goes. Elsewhere nothing is set.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def ends_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGTERM when this process ends (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def set_up() -> None:  # runs in the child, between fork and exec
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return set_up
