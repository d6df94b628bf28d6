"""torch.distributed glue for sweeps and training launched with ``torchrun``.

A sweep splits the examples it attacks into the same batches in every process (the global list
of still-robust points, cut every ``batch_size``), and rank r attacks batches r, r + world, ...
Each example is attacked by exactly one rank, with a seed that depends on its batch's first
example index, never on the rank; per-example results are combined with ``all_reduce``. So a
distributed sweep reproduces the single-process one exactly, randomised attacks included.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks; ``Ranks()`` is the single-process default."""

    rank: int = 0
    world: int = 1
    collective_device: str = "cpu"  # nccl needs CUDA tensors

    @classmethod
    def current(cls) -> Ranks:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
        return cls(dist.get_rank(), dist.get_world_size(), device)

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes files and reports progress."""
        return self.rank == 0

    def pick(self, items: list) -> list:
        """This rank's share of ``items`` (all of them in a single process)."""
        return items[self.rank::self.world]

    def merge(self, values: torch.Tensor, touched: torch.Tensor) -> torch.Tensor:
        """Combine per-example ``values`` where each example was computed (``touched``) by exactly
        one rank; untouched examples keep their value, which is the same on every rank."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        mask = touched.view(-1, *[1] * (values.ndim - 1)).to(values.device)
        buf = torch.where(mask, values, torch.zeros_like(values)).to(self.collective_device)
        count = touched.to(torch.int32).to(self.collective_device)
        dist.all_reduce(buf)
        dist.all_reduce(count)
        seen = (count > 0).to(values.device).view_as(mask)
        return torch.where(seen, buf.to(values.device), values)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_from_env(device: str) -> Ranks:
    """Join the process group torchrun describes in the environment (nothing to do without it).

    Backend nccl for CUDA, gloo for CPU; each process uses the GPU of its local rank.
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return Ranks.current()
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Ranks.current()


def local_device(device: str) -> str:
    """Under torchrun on CUDA each process drives the GPU of its local rank."""
    if device in ("cuda", "auto") and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def shutdown(completed: bool = True) -> None:
    """Leave the process group.

    After a ``completed`` run every rank first waits for the others: a gloo rank that tears its
    group down while rank 0 is still writing files can abort in C++ ("terminate called without an
    active exception", seen on a loaded 2-core machine). After a failure nobody waits for a rank
    that may never arrive.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if completed:
            dist.barrier()
        dist.destroy_process_group()
