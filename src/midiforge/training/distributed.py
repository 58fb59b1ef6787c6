"""Process-group setup for ``torchrun`` and the few collectives the trainer needs.

``torchrun --nproc_per_node N -m midiforge train ...`` starts N copies of the command with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`init` reads them and joins the group (gloo on
CPU, NCCL on CUDA). A single plain process gets a ``Dist`` of world size 1 and every helper
below becomes a no-op, so the trainer has one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """Where this process sits among the training processes."""

    rank: int = 0  # global rank; rank 0 writes checkpoints and logs
    local_rank: int = 0  # rank on this machine; picks the CUDA device
    world_size: int = 1  # number of processes
    local_world_size: int = 1  # processes on this machine; they share its CPU cores

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The process's place as ``torchrun`` describes it in the environment (1 process if unset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Dist(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=world,
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )


def init(device_type: str) -> Dist:
    """Join the process group when launched by ``torchrun``; return this process's ``Dist``."""
    info = from_env()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def shutdown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value: Any, info: Dist) -> Any:
    """Rank 0's ``value`` on every rank (e.g. a run-dir name that contains a timestamp)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(tensor: torch.Tensor, info: Dist) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op for one process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: Dist) -> None:
    if info.enabled:
        dist.barrier()
