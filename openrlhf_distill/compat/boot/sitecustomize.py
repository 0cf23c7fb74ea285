"""Applies openrlhf-distill's runtime patches at interpreter start-up, in every process that has this folder
on PYTHONPATH: the trainer a stage launches, and the Ray workers and vLLM engine processes it starts in turn.
:func:`openrlhf_distill.compat.patches.subprocess_env` puts the folder there. Then chains to the
sitecustomize this one shadows, if any, so the environment's own start-up code still runs.
"""

import importlib.machinery
import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))

try:
    from openrlhf_distill.compat import boot_install

    boot_install()
except Exception as error:  # start-up must never break the interpreter; the trainer will fail loudly instead
    print(f"[openrlhf-distill] runtime patches not installed: {error!r}", file=sys.stderr)

_others = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", _others)
if _spec is not None and _spec.loader is not None:
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
