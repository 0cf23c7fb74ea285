"""The vLLM backend: offline ``vllm.LLM`` engines, tensor parallel within an engine, data parallel across engines.

One engine (``data_parallel_size=1``) runs in this process. With ``data_parallel_size > 1`` each engine is a Ray
actor holding ``tensor_parallel_size`` GPUs; requests are split across engines by expected work and the answers
put back in request order (:func:`split_across_engines` / :func:`merge_from_engines`). Engine actors import this
module, so the package must be installed on every node of the Ray cluster.

On a machine without CUDA the same code drives vLLM's CPU build: eager mode, an explicit KV-cache size (without
one the CPU worker asks for most of the machine's memory and refuses to start), and no chunked prefill (with it,
seeded sampling kills the CPU engine once a batch's prompts exceed one step's token budget).
"""

from __future__ import annotations

import os

from .backend import Backend, BackendError, BackendInfo, Completion, Request

CPU_KV_CACHE_BYTES = 1 << 30

REPRODUCIBLE = (
    "per-request seeds: the same seed gives the same samples whatever else is in the batch and whichever engine "
    "serves it, for the same model, dtype, vLLM version, tensor-parallel size and hardware (checked on CPU; on "
    "GPUs a different batch mix can still flip a rare token through rounding unless VLLM_BATCH_INVARIANT=1)"
)


def check_model_folder(model: str) -> None:
    """Fails early, before vLLM is imported, on a local path that is not a saved model.

    ``model`` may also be a Hugging Face hub id ("org/name"): a relative path is read as a local folder when its
    first component exists here, so "runs/student_sft" with a missing last folder is caught, "Qwen/Qwen2.5-7B" is not.
    """
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise BackendError(f"vllm backend: {model!r} has no config.json; pass a folder saved with save_pretrained")
        return
    parts = model.split("/")
    looks_local = model.startswith(("/", ".", "~")) or len(parts) != 2 or os.path.isdir(parts[0])
    if looks_local:
        raise BackendError(
            f"vllm backend: model folder {model!r} does not exist; check --model (a saved model "
            "folder or a Hugging Face hub id)"
        )


def split_across_engines(weights: list[int], num_engines: int) -> list[list[int]]:
    """Request indices per engine, each list ascending; every index appears exactly once.

    Each request goes, in order, to the engine with the least work so far (ties: the lowest engine), so engines
    finish together even when requests differ in size. Engines may get nothing when requests are few.
    """
    if num_engines < 1:
        raise ValueError(f"num_engines must be at least 1, got {num_engines}")
    loads = [0] * num_engines
    parts: list[list[int]] = [[] for _ in range(num_engines)]
    for index, weight in enumerate(weights):
        engine = min(range(num_engines), key=lambda e: (loads[e], e))
        parts[engine].append(index)
        loads[engine] += max(1, weight)
    return parts


def merge_from_engines(parts: list[list[int]], results: list[list], total: int) -> list:
    """Inverse of :func:`split_across_engines`: ``results[e][k]`` answers request ``parts[e][k]``."""
    merged: list = [None] * total
    for indices, answers in zip(parts, results, strict=True):
        if len(indices) != len(answers):
            raise BackendError(f"vllm backend: an engine answered {len(answers)} of {len(indices)} requests")
        for index, answer in zip(indices, answers, strict=True):
            merged[index] = answer
    missing = [i for i, answer in enumerate(merged) if answer is None]
    if missing:
        raise BackendError(f"vllm backend: no answer for requests {missing[:10]}")
    return merged


def generate_on_engine(llm, requests: list[Request]) -> list[list[Completion]]:
    """Runs ``requests`` as one ``llm.generate`` call: the code shared by the local engine and the Ray actors."""
    from vllm import SamplingParams

    try:
        from vllm.exceptions import VLLMClientError as InputError
    except ImportError:  # older vLLM checks inputs with ValueError only
        InputError = ValueError
    tokenizer = llm.get_tokenizer()
    prompts, params = [], []
    for request in requests:
        if isinstance(request.prompt, str):
            prompts.append(request.prompt)
        else:
            # Token ids rather than text: the template already holds any BOS token, and vLLM would add another
            # when tokenizing text. Chat and string prompts still share one generate call.
            text = tokenizer.apply_chat_template(request.prompt, tokenize=False, add_generation_prompt=True)
            prompts.append({"prompt_token_ids": tokenizer.encode(text, add_special_tokens=False)})
        greedy = request.temperature == 0
        params.append(
            SamplingParams(
                n=1 if greedy else request.n,  # vLLM refuses n > 1 for greedy; greedy samples are all the same
                temperature=request.temperature,
                top_p=request.top_p,
                max_tokens=request.max_new_tokens,
                seed=request.seed,
                stop=list(request.stop) or None,
            )
        )
    try:
        outputs = llm.generate(prompts, params, use_tqdm=False)
    except (ValueError, InputError) as e:  # vLLM's checks of the inputs, e.g. a prompt longer than max_model_len
        raise BackendError(f"vllm backend: {e}") from e
    results = []
    for request, output in zip(requests, outputs, strict=True):
        completions = [_completion(c) for c in output.outputs]
        results.append(completions * request.n if request.temperature == 0 else completions)
    return results


def _completion(output) -> Completion:
    if output.finish_reason not in ("stop", "length"):
        raise BackendError(f"vllm backend: a sequence ended with finish_reason={output.finish_reason!r}")
    return Completion(text=output.text, finish_reason=output.finish_reason, num_tokens=len(output.token_ids))


class VLLMBackend(Backend):
    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        kv_cache_memory_bytes: int | None = None,
        enforce_eager: bool = False,
        seed: int = 0,
        extra_engine_args: dict | None = None,
    ):
        check_model_folder(model)
        if tensor_parallel_size < 1 or data_parallel_size < 1:
            raise BackendError("vllm backend: tensor_parallel_size and data_parallel_size must be at least 1")
        try:
            import vllm
        except ImportError as e:
            raise BackendError(
                f"vllm backend: vLLM is not importable ({e}); install it (`pip install vllm`, or "
                "`make venv` for the CPU build) or use --backend hf"
            ) from e
        import torch

        on_cpu = not torch.cuda.is_available()
        if on_cpu and kv_cache_memory_bytes is None and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kv_cache_memory_bytes = CPU_KV_CACHE_BYTES
        engine_args = dict(
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager or on_cpu,  # graph capture is a CUDA feature
            seed=seed,
        )
        if kv_cache_memory_bytes is not None:
            engine_args["kv_cache_memory_bytes"] = kv_cache_memory_bytes
        if on_cpu:
            # vLLM 0.32 CPU: a seeded request whose prompt is split across steps (chunked prefill, e.g. a batch
            # of more than max_num_batched_tokens prompt tokens) rewinds its torch.Generator, which CPU
            # generators cannot do: the engine dies ("CPU Generator does not use offset"). Whole prefills only.
            engine_args["enable_chunked_prefill"] = False
        engine_args.update(extra_engine_args or {})

        self._llm, self._owns_engine = None, True
        self._engines: list = []
        self._placement_group = None
        if data_parallel_size == 1:
            try:
                self._llm = vllm.LLM(model=model, **engine_args)
            except Exception as e:
                raise BackendError(f"vllm backend: the engine for {model!r} did not start: {e}") from e
        else:
            if on_cpu:
                # Ray would wait forever for GPUs that do not exist: say so instead of hanging.
                raise BackendError("vllm backend: data_parallel_size > 1 needs GPUs; use 1 on a CPU machine")
            self._start_ray_engines(model, engine_args, tensor_parallel_size, data_parallel_size)
        self.info = BackendInfo(
            name="vllm",
            model=model,
            reproducible=REPRODUCIBLE,
            extra={
                "vllm_version": vllm.__version__,
                "device": "cpu" if on_cpu else "cuda",
                "tensor_parallel_size": tensor_parallel_size,
                "data_parallel_size": data_parallel_size,
                "greedy": "sampled once and repeated n times",
            },
        )

    @classmethod
    def from_engine(cls, llm, model_name: str) -> VLLMBackend:
        """Wraps an ``vllm.LLM`` built elsewhere (benchmarks, or a caller that already holds one)."""
        import vllm

        backend = cls.__new__(cls)
        backend._llm, backend._owns_engine, backend._engines, backend._placement_group = llm, False, [], None
        backend.info = BackendInfo(
            name="vllm",
            model=model_name,
            reproducible=REPRODUCIBLE,
            extra={"vllm_version": vllm.__version__, "wrapped_engine": True},
        )
        return backend

    def _start_ray_engines(self, model: str, engine_args: dict, tp: int, dp: int) -> None:
        """One Ray actor per engine, all in one placement group of ``dp * tp`` GPU bundles.

        Untested in this repository's CI (no GPUs there): written against Ray's placement-group API and vLLM's
        VLLM_RAY_BUNDLE_INDICES convention for tensor-parallel workers.
        """
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if not ray.is_initialized():
            ray.init()  # joins the cluster named by RAY_ADDRESS, or starts a local one
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus < dp * tp:
            raise BackendError(
                f"vllm backend: {dp} engines x {tp} GPUs need {dp * tp} GPUs; the Ray cluster has "
                f"{gpus:g}; lower --vllm.data_parallel_size"
            )
        self._placement_group = placement_group([{"GPU": 1, "CPU": 1}] * (dp * tp), strategy="PACK")
        ray.get(self._placement_group.ready())
        bundles = _bundles_by_node(self._placement_group)
        actor_class = ray.remote(_EngineActor)
        for engine in range(dp):
            indices = bundles[engine * tp : (engine + 1) * tp]
            strategy = PlacementGroupSchedulingStrategy(
                placement_group=self._placement_group,
                placement_group_bundle_index=indices[0],
                placement_group_capture_child_tasks=True,
            )
            # tp == 1: the actor owns its GPU. tp > 1: vLLM starts its own Ray workers on the engine's bundles,
            # so the actor itself takes no GPU.
            gpus_for_actor = 1 if tp == 1 else 0
            options = dict(num_gpus=gpus_for_actor, num_cpus=gpus_for_actor, scheduling_strategy=strategy)
            # Engines differ in seed, as OpenRLHF's do; per-request seeds decide the samples anyway.
            args = {**engine_args, "seed": engine_args["seed"] + engine}
            self._engines.append(actor_class.options(**options).remote(model, args, indices))
        ray.get([e.ready.remote() for e in self._engines])

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        if not requests:
            return []
        if self._llm is not None:
            return generate_on_engine(self._llm, requests)
        if not self._engines:
            raise BackendError("vllm backend: generate() after close()")
        import ray

        parts = split_across_engines([r.n * r.max_new_tokens for r in requests], len(self._engines))
        used = [(engine, part) for engine, part in zip(self._engines, parts, strict=True) if part]
        results = ray.get([engine.generate.remote([requests[i] for i in part]) for engine, part in used])
        return merge_from_engines([part for _, part in used], results, len(requests))

    def close(self) -> None:
        if self._llm is not None:
            engine_core = getattr(getattr(self._llm, "llm_engine", None), "engine_core", None)
            if engine_core is not None and self._owns_engine:
                engine_core.shutdown()  # engine processes exit now rather than at interpreter exit
            self._llm = None
        if self._engines:
            import ray
            from ray.util.placement_group import remove_placement_group

            for engine in self._engines:
                ray.kill(engine)
            self._engines = []
            remove_placement_group(self._placement_group)
            self._placement_group = None


def _bundles_by_node(group) -> list[int]:
    """Bundle indices ordered so that consecutive ones share a node: an engine's tensor-parallel GPUs stay together."""
    import ray

    by_node: dict[str, list[int]] = {}
    for bundle, node in ray.util.placement_group_table(group)["bundles_to_node_id"].items():
        by_node.setdefault(node, []).append(bundle)
    return [bundle for node in by_node for bundle in sorted(by_node[node])]


class _EngineActor:
    """One vLLM engine inside a Ray actor (wrapped with ``ray.remote`` where it is started)."""

    def __init__(self, model: str, engine_args: dict, bundle_indices: list[int]):
        import vllm

        if engine_args["tensor_parallel_size"] > 1:
            # vLLM places its tensor-parallel workers on these bundles of the current placement group. Ray set
            # this actor's CUDA_VISIBLE_DEVICES for a zero-GPU actor; the workers must choose their own.
            os.environ["VLLM_RAY_BUNDLE_INDICES"] = ",".join(map(str, bundle_indices))
            os.environ["VLLM_RAY_PER_WORKER_GPUS"] = "1"
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            engine_args = {**engine_args, "distributed_executor_backend": "ray"}
        self.llm = vllm.LLM(model=model, **engine_args)

    def ready(self) -> bool:
        return True

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        return generate_on_engine(self.llm, requests)
