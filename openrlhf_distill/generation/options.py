"""The command-line flags that choose and tune a sampling backend, shared by `generate`, `judge` and `eval`: one
settings dataclass per backend (`--hf.*`, `--vllm.*`, `--openai.*`)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..argtypes import int_at_least, number_in
from ..settings import add_flags, from_args, setting
from .backend import BackendError

# what both transformers (torch.<name>) and vLLM accept
DTYPES = ("auto", "float32", "float16", "bfloat16", "float", "half")


@dataclass(frozen=True)
class HFSettings:
    """`--hf.*`: the transformers backend."""

    batch_size: int = setting(16, "sequences per generate call", check=int_at_least(1))
    dtype: str = setting("auto", "weights' dtype (auto: the checkpoint's)", choices=DTYPES)


@dataclass(frozen=True)
class VLLMSettings:
    """`--vllm.*`: offline vLLM engines."""

    tensor_parallel_size: int = setting(1, "GPUs per engine", check=int_at_least(1))
    data_parallel_size: int = setting(1, "engines (Ray actors) to spread over", check=int_at_least(1))
    gpu_memory_utilization: float = setting(0.9, "share of each GPU's memory an engine takes", check=number_in(0, 1))
    max_model_len: int | None = setting(None, "longest prompt + answer (default: the model's)", check=int_at_least(1))
    dtype: str = setting("auto", "weights' dtype (auto: the checkpoint's)", choices=DTYPES)


@dataclass(frozen=True)
class OpenAISettings:
    """`--openai.*`: any OpenAI-compatible server."""

    base_url: str | None = setting(None, "e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the key")
    concurrency: int = setting(8, "requests in flight", check=int_at_least(1))
    max_retries: int = setting(4, "retries of a failed request", check=int_at_least(0))


_BACKEND_SETTINGS = {"hf": HFSettings, "vllm": VLLMSettings, "openai": OpenAISettings}


def add_backend_arguments(p) -> None:
    """--backend and the per-backend flags (--hf.*, --vllm.*, --openai.*)."""
    p.add_argument(
        "--backend",
        choices=["auto", "hf", "vllm", "openai"],
        default="auto",
        help="auto: openai if --openai.base_url is given, vllm on GPUs, hf otherwise",
    )
    for group, cls in _BACKEND_SETTINGS.items():
        add_flags(p, cls, group)


def gpus_used(args) -> int:
    """GPUs a run with these backend flags takes on a GPU machine: vLLM's engines x their tensor parallel size,
    transformers one device, a served model (openai) none of this machine's."""
    backend = args.backend
    if backend == "auto":
        backend = "openai" if from_args(args, OpenAISettings, "openai").base_url else "vllm"
    if backend == "vllm":
        vllm = from_args(args, VLLMSettings, "vllm")
        return vllm.tensor_parallel_size * vllm.data_parallel_size
    return 1 if backend == "hf" else 0


def backend_from_args(args, backend: str | None = None):
    """The backend the arguments ask for (a callable, so a run that has nothing to do loads no model)."""
    from . import choose_backend, make_backend

    name = backend or args.backend
    openai = from_args(args, OpenAISettings, "openai")
    base_url = openai.base_url
    if name == "auto":
        name = choose_backend(args.model, base_url)
    options = dataclasses.asdict(from_args(args, _BACKEND_SETTINGS[name], name))
    if name == "vllm":
        options["seed"] = args.seed
    elif name == "openai":  # the address and the key are make_backend's own arguments
        options = {"concurrency": openai.concurrency, "max_retries": openai.max_retries}
    key = os.environ.get(openai.api_key_env)
    if name in ("hf", "vllm") and not os.path.isdir(args.model):
        # Checked before anything is written, so the same command with the right path is not refused later.
        raise BackendError(
            f"--model {args.model!r} is not a model folder (the {name} backend loads local folders; "
            "use --backend openai --openai.base_url URL for a served model)"
        )

    def start():
        return make_backend(name, args.model, openai_base_url=base_url, openai_api_key=key, **options)

    return name, start
