"""The command-line flags that choose and tune a sampling backend, shared by `generate`, `judge` and `eval`."""

from __future__ import annotations

import os

from ..argtypes import positive_int
from .backend import BackendError

# what both transformers (torch.<name>) and vLLM accept
DTYPES = ("auto", "float32", "float16", "bfloat16", "float", "half")


def add_backend_arguments(p) -> None:
    """--backend and the per-backend flags (--hf.*, --vllm.*, --openai.*)."""
    p.add_argument(
        "--backend",
        choices=["auto", "hf", "vllm", "openai"],
        default="auto",
        help="auto: openai if --openai.base_url is given, vllm on GPUs, hf otherwise",
    )
    p.add_argument("--hf.batch_size", type=positive_int, default=16, help="sequences per generate call")
    p.add_argument("--hf.dtype", choices=DTYPES, default="auto")
    p.add_argument("--vllm.tensor_parallel_size", type=positive_int, default=1)
    p.add_argument(
        "--vllm.data_parallel_size", type=positive_int, default=1, help="engines (Ray actors) to spread over"
    )
    p.add_argument("--vllm.gpu_memory_utilization", type=float, default=0.9)
    p.add_argument("--vllm.max_model_len", type=int, default=None)
    p.add_argument("--vllm.dtype", choices=DTYPES, default="auto")
    p.add_argument("--openai.base_url", default=None, help="e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--openai.api_key_env", default="OPENAI_API_KEY", help="environment variable holding the key")
    p.add_argument("--openai.concurrency", type=positive_int, default=8)
    p.add_argument("--openai.max_retries", type=int, default=4)


def gpus_used(args) -> int:
    """GPUs a run with these backend flags takes on a GPU machine: vLLM's engines x their tensor parallel size,
    transformers one device, a served model (openai) none of this machine's."""
    backend = args.backend
    if backend == "auto":
        backend = "openai" if getattr(args, "openai.base_url") else "vllm"
    if backend == "vllm":
        return getattr(args, "vllm.tensor_parallel_size") * getattr(args, "vllm.data_parallel_size")
    return 1 if backend == "hf" else 0


def backend_from_args(args, backend: str | None = None):
    """The backend the arguments ask for (a callable, so a run that has nothing to do loads no model)."""
    from . import choose_backend, make_backend

    name = backend or args.backend
    base_url = getattr(args, "openai.base_url")
    if name == "auto":
        name = choose_backend(args.model, base_url)
    options = {
        "hf": {"batch_size": getattr(args, "hf.batch_size"), "dtype": getattr(args, "hf.dtype")},
        "vllm": {
            "tensor_parallel_size": getattr(args, "vllm.tensor_parallel_size"),
            "data_parallel_size": getattr(args, "vllm.data_parallel_size"),
            "gpu_memory_utilization": getattr(args, "vllm.gpu_memory_utilization"),
            "max_model_len": getattr(args, "vllm.max_model_len"),
            "dtype": getattr(args, "vllm.dtype"),
            "seed": args.seed,
        },
        "openai": {
            "concurrency": getattr(args, "openai.concurrency"),
            "max_retries": getattr(args, "openai.max_retries"),
        },
    }[name]
    key = os.environ.get(getattr(args, "openai.api_key_env"))
    if name in ("hf", "vllm") and not os.path.isdir(args.model):
        # Checked before anything is written, so the same command with the right path is not refused later.
        raise BackendError(
            f"--model {args.model!r} is not a model folder (the {name} backend loads local folders; "
            "use --backend openai --openai.base_url URL for a served model)"
        )

    def start():
        return make_backend(name, args.model, openai_base_url=base_url, openai_api_key=key, **options)

    return name, start
