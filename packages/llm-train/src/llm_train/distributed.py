"""Multi-process training with ``torch.distributed``, launched by ``torchrun``: DDP or FSDP.

Every rank draws the same global batch from the same seeded loader and keeps
its own slice, so a run on N processes with batch B sees exactly the windows
of a single-process run with batch N*B. Rank 0 logs and checkpoints.

``ddp`` keeps a full copy of the model and optimizer on every rank and
all-reduces gradients. ``fsdp`` (FSDP2 ``fully_shard``) shards parameters,
gradients and optimizer state over the ranks, one unit per transformer block
plus the root, for models that do not fit one device. Checkpoints are the same
in both modes: full tensors gathered to rank 0, loadable by a single process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator
from typing import Any, Literal

import torch
import torch.distributed as torch_dist
from torch import nn

from llm_core.errors import ConfigError

__all__ = ["PARALLEL_MODES", "DistributedContext", "init_distributed"]

PARALLEL_MODES = ("ddp", "fsdp")
Parallel = Literal["ddp", "fsdp"]


def _fully_shard() -> Any:
    from torch.distributed.fsdp import fully_shard  # FSDP2 (the family needs torch >= 2.7)

    return fully_shard


def _state_dict_api() -> Any:
    from torch.distributed.checkpoint import state_dict

    return state_dict


class DistributedContext:
    """Rank, world size, the parallel mode and the few collective operations the Trainer needs."""

    def __init__(self, rank: int = 0, world_size: int = 1, parallel: Parallel = "ddp") -> None:
        if parallel not in PARALLEL_MODES:
            raise ConfigError(f"parallel={parallel!r} is not one of {', '.join(PARALLEL_MODES)}")
        self.rank = rank
        self.world_size = world_size
        self.parallel = parallel

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that writes checkpoints and metrics."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """True when parameters are sharded over several processes (FSDP)."""
        return self.world_size > 1 and self.parallel == "fsdp"

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP: ``DistributedDataParallel(model)``; FSDP: shard ``model`` in place and return it.

        Call before building the optimizer: FSDP replaces the parameters by sharded ones.
        """
        if self.world_size == 1:
            return model
        if self.parallel == "ddp":
            return nn.parallel.DistributedDataParallel(model)
        fully_shard = _fully_shard()
        for module in list(model.modules()):
            if isinstance(module, nn.ModuleList):  # the transformer blocks: one FSDP unit each
                for block in module:
                    fully_shard(block)
        fully_shard(model)
        return model

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module, *, last: bool) -> Iterator[None]:
        """Skip the gradient reduction on every micro-batch but the last."""
        if self.sharded:
            sharded: Any = getattr(model, "_orig_mod", model)  # unwrap torch.compile
            sharded.set_requires_gradient_sync(last)
            yield
        elif self.world_size > 1 and not last and isinstance(model, nn.parallel.DistributedDataParallel):
            with model.no_sync():
                yield
        else:
            yield

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks."""
        if self.world_size == 1:
            return value
        nccl = torch_dist.get_backend() == "nccl"  # NCCL reduces CUDA tensors only
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        torch_dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def any_rank(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank (every rank must call it)."""
        if self.world_size == 1:
            return flag
        nccl = torch_dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        tensor = torch.tensor([int(flag)], dtype=torch.int32, device=device)
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MAX)
        return bool(tensor.item())

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.world_size > 1:
            torch_dist.barrier()

    def full_state(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
        """Full model and optimizer state dicts (collective under FSDP; meaningful on rank 0).

        The model state is None when ``model.state_dict()`` already holds full
        tensors. The optimizer state is always in ``optimizer.state_dict()``'s
        layout (parameters numbered in group order), whatever the mode.
        """
        if not self.sharded:
            return None, optimizer.state_dict()
        api = _state_dict_api()
        options = api.StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = api.get_model_state_dict(model, options=options)
        optimizer_state = api.get_optimizer_state_dict(model, optimizer, options=options)
        if not self.is_main:  # cpu_offload gathers to rank 0 only
            return {}, {}
        return model_state, _numbered(optimizer_state)

    def load_full_state(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        model_state: dict[str, torch.Tensor],
        optimizer_state: dict[str, Any],
    ) -> None:
        """Load full state dicts (read by every rank from a checkpoint) into a sharded model and optimizer.

        The inverse of :meth:`full_state` under FSDP; tied weights stored once are re-tied.
        """
        from llm_model import tied_parameter_aliases

        api = _state_dict_api()
        for alias, kept in tied_parameter_aliases(model).items():
            model_state.setdefault(alias, model_state[kept])
        options = api.StateDictOptions(full_state_dict=True)
        api.set_model_state_dict(model, model_state, options=options)
        names = _parameter_names(model, optimizer)
        api.set_optimizer_state_dict(model, optimizer, _named(optimizer_state, names), options=options)

    def grad_norm(self, norm: torch.Tensor) -> float:
        """A float from ``clip_grad_norm_``'s result (a DTensor under FSDP)."""
        full = getattr(norm, "full_tensor", None)
        return float(full() if full is not None else norm)


def _numbered(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state keyed by parameter name -> keyed by position, as ``Optimizer.state_dict``."""
    index: dict[str, int] = {}
    groups = []
    for group in state["param_groups"]:
        numbers = [index.setdefault(name, len(index)) for name in group["params"]]
        groups.append({**group, "params": numbers})
    return {"state": {index[name]: value for name, value in state["state"].items()}, "param_groups": groups}


def _parameter_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the optimizer's parameters, in ``Optimizer.state_dict`` numbering order."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def _named(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Inverse of :func:`_numbered`."""
    groups = [{**group, "params": [names[i] for i in group["params"]]} for group in state["param_groups"]]
    return {"state": {names[int(i)]: value for i, value in state["state"].items()}, "param_groups": groups}


def _leave_process_group() -> None:
    """Tear the process group down before the interpreter does.

    Left to interpreter shutdown, gloo's communication threads can be destroyed while
    still joinable, and the process aborts ("terminate called without an active
    exception") after its work is done, which fails the whole launch.
    """
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def init_distributed(parallel: Parallel = "ddp") -> DistributedContext:
    """Join the process group ``torchrun`` set up (``RANK``/``WORLD_SIZE``), or run alone.

    Uses NCCL when CUDA is available, gloo otherwise; ``parallel`` picks DDP or FSDP.
    With CUDA, each process takes the GPU of its ``LOCAL_RANK``, so ``device = "cuda"``
    means that GPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(parallel=parallel)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not torch_dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch_dist.init_process_group(backend=backend)
        atexit.register(_leave_process_group)
    return DistributedContext(torch_dist.get_rank(), torch_dist.get_world_size(), parallel)
