"""Multi-process training under torchrun: PyTorch's own DistributedDataParallel, nothing more.

``torchrun --nproc_per_node=N train.py ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; a plain
``python train.py`` sets none of them and runs as a world of one, with no process group.
"""

from __future__ import annotations

import gc
import inspect
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch itself is imported where a world of several processes needs it
    import torch
    from torch import Tensor, nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # the processes on this machine

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run directory: events, checkpoints, metrics.json."""
        return self.rank == 0

    # ------------------------------------------------------------------ collectives
    def broadcast(self, obj: object) -> object:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        _dist().broadcast_object_list(box, src=0)
        return box[0]

    def all_min(self, tensor: Tensor) -> Tensor:
        if self.distributed:
            dist = _dist()
            dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return tensor

    def all_max(self, value: int) -> int:
        """The largest of the ranks' values (host ints; a collective, so every rank calls it)."""
        if not self.distributed:
            return value
        box = [None] * self.size
        _dist().all_gather_object(box, value)
        return max(box)

    def all_equal(self, value: object) -> bool:
        if not self.distributed:
            return True
        box = [None] * self.size
        _dist().all_gather_object(box, value)
        return all(v == box[0] for v in box)

    def agreed_signal(self, received: int | None, collective: bool) -> int | None:
        """A signal stops every rank at the same step: ranks agree where ``collective`` (log
        and checkpoint steps); alone, a process stops after the step in flight."""
        if not self.distributed:
            return received
        if not collective:
            return None
        return self.all_max(received or 0) or None

    def in_sync(self, modules: list[nn.Module]) -> bool | None:
        """Under torchrun, whether every rank holds the same weights (a collective); None
        without one."""
        if not self.distributed:
            return None
        import torch

        with torch.no_grad():
            params = [p for m in modules for p in m.parameters()]
            checksum = float(torch.stack([p.double().sum() for p in params]).sum())
        return self.all_equal(checksum)

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` in its own DistributedDataParallel (its gradients are averaged over the
        ranks in its backward), or ``module`` itself in a world of one."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, **_no_forward_buffer_sync())


def _dist() -> ModuleType:
    """torch.distributed, imported by a world of several processes only."""
    import torch.distributed

    return torch.distributed


def _no_forward_buffer_sync() -> dict[str, bool]:
    """DDP must not overwrite rank-local buffers (spectral norm's vectors, BatchNorm
    statistics) at each forward: torch >= 2.13 names that forward_sync_buffers
    (broadcast_buffers is deprecated there); older releases only know broadcast_buffers."""
    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


#: a plain ``python train.py``: one process, no process group
SINGLE_PROCESS = World()


def world_from_env() -> World:
    return World(
        rank=int(os.environ.get("RANK", 0)),
        size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    )


def init(world: World) -> None:
    """Join the process group: gloo for CPU tensors, NCCL for CUDA ones when there is CUDA."""
    if not world.distributed or _dist().is_initialized():
        return
    import torch

    dist = _dist()
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=10))


def shutdown() -> None:
    """Leave the process group together, so that no rank aborts at exit with gloo's
    'terminate called without an active exception'. First the DistributedDataParallel
    wrappers no one holds any more are freed: a Trainer's sit in reference cycles, which
    Python may not free before the interpreter shuts down, and each holds the group alive
    past destroy_process_group, its worker threads into the interpreter's finalization. Then
    a barrier, so that no rank tears its group down while another still has a collective in
    flight."""
    dist = sys.modules.get("torch.distributed")  # never imported: no group to leave
    if dist is None or not dist.is_initialized():
        return
    gc.collect()
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()
