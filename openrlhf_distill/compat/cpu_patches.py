"""CPU patches: OpenRLHF's training path calls CUDA-only torch functions; without a GPU they point at the CPU.

Registered in group ``cpu``, so they apply only where ``torch.cuda.is_available()`` is False.
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
