"""Multi-process training with ``torch.distributed`` (DDP), launched by ``torchrun``.

Every rank draws the same global batch from the same seeded loader and keeps
its own slice, so a run on N processes with batch B sees exactly the windows
of a single-process run with batch N*B. Rank 0 logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as torch_dist
from torch import nn

__all__ = ["DistributedContext", "init_distributed"]


class DistributedContext:
    """Rank, world size and the few collective operations the Trainer needs."""

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        self.rank = rank
        self.world_size = world_size

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that writes checkpoints and metrics."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)`` when there are several processes."""
        if self.world_size == 1:
            return model
        return nn.parallel.DistributedDataParallel(model)

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, *, last: bool) -> Iterator[None]:
        """Skip the gradient all-reduce on every micro-batch but the last."""
        if self.world_size > 1 and not last and isinstance(model, nn.parallel.DistributedDataParallel):
            with model.no_sync():
                yield
        else:
            yield

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        torch_dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.world_size > 1:
            torch_dist.barrier()


def init_distributed() -> DistributedContext:
    """Join the process group ``torchrun`` set up (``RANK``/``WORLD_SIZE``), or run alone.

    Uses NCCL when CUDA is available, gloo otherwise.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext()
    if not torch_dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch_dist.init_process_group(backend=backend)
    return DistributedContext(torch_dist.get_rank(), torch_dist.get_world_size())
