"""Process-group set-up for DDP runs started by ``torchrun`` (one process per device)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """Where this process stands: rank ``rank`` of ``size`` (``local_rank`` on its host)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def join_world(device_type: str) -> World:
    """Join the process group that ``torchrun`` describes in the environment (NCCL on CUDA,
    gloo on the CPU); a plain single-process run gets ``World()``."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return world


def leave_world(world: World) -> None:
    """Tear down the process group joined by ``join_world``."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_world(values: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of ``values`` over all processes (every process gets the same result)."""
    if world.distributed:
        values = values.clone()
        dist.all_reduce(values)
        values /= world.size
    return values


def wait_for_all(world: World) -> None:
    """A barrier (no-op in a single process)."""
    if world.distributed:
        dist.barrier()
