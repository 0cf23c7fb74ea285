"""CPU patches: OpenRLHF's training path calls CUDA-only torch functions; without a GPU they point at the CPU.

Registered in group ``cpu``, so they apply only in the processes of a CPU-engine run (see :mod:`.patches`).
The RL stage's own (replay buffer device, weight sync) are in :mod:`.rl_cpu_patches`.
"""

from __future__ import annotations

from .patches import patch


@patch(
    "torch",
    name="torch_cuda_to_cpu",
    group="cpu",
    why="set_device/synchronize/empty_cache raise without CUDA; current_device() is used as a .to() target",
)
def redirect_torch_cuda(torch) -> None:
    cuda = torch.cuda
    cuda.set_device = lambda *args, **kwargs: None
    # OpenRLHF writes `.to(torch.cuda.current_device())` and `torch.zeros(..., device=current_device())`:
    # answering "cpu" keeps those tensors on the CPU.
    cuda.current_device = lambda: "cpu"
    cuda.synchronize = lambda *args, **kwargs: None
    cuda.empty_cache = lambda *args, **kwargs: None
    cuda.current_stream = lambda *args, **kwargs: None


@patch(
    "torch",
    name="device_mesh_on_cpu",
    group="cpu",
    why='DeepspeedStrategy.setup_distributed builds init_device_mesh("cuda", ...), which needs CUDA',
)
def device_mesh_on_cpu(torch) -> None:
    # Hooked on "torch", not on the submodule: torch imports device_mesh while torch itself is half-initialised.
    import torch.distributed.device_mesh as device_mesh

    original = device_mesh.init_device_mesh

    def init_device_mesh(device_type, *args, **kwargs):
        return original("cpu" if device_type == "cuda" else device_type, *args, **kwargs)

    device_mesh.init_device_mesh = init_device_mesh


@patch(
    "deepspeed.comm.torch",
    name="no_shm_allreduce_build",
    group="cpu",
    why="DeepSpeed's CPU backend compiles a shared-memory all-reduce (about 1 min on 2 cores) that no trainer calls",
)
def no_shm_allreduce_build(module) -> None:
    # The op is built when the comm backend starts and only serves DeepSpeed-inference's tensor-parallel
    # all-reduce; torch.distributed's gloo all-reduce is what ZeRO uses here either way.
    module.build_shm_op = lambda: None


@patch(
    "openrlhf.utils.deepspeed.deepspeed",
    name="torch_adamw_on_cpu",
    group="cpu",
    why="on the CPU DeepSpeed picks its FusedAdam, a C++ op compiled on first use (about 1.5 min on 2 cores)",
)
def torch_adamw_on_cpu(module) -> None:
    # DeepSpeed's own "torch_adam" switch: the same AdamW update from torch.optim, on ZeRO's fp32 master weights.
    original = module.DeepspeedStrategy.get_ds_train_config

    def get_ds_train_config(self, *args, **kwargs):
        config = original(self, *args, **kwargs)
        optimizer = config.get("optimizer") or {}
        if optimizer.get("type") in ("Adam", "AdamW"):
            optimizer.setdefault("params", {})["torch_adam"] = True
        return config

    module.DeepspeedStrategy.get_ds_train_config = get_ds_train_config
