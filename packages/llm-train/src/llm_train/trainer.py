"""The Trainer: the book's pretraining loop plus what real runs need.

AdamW with selective weight decay, schedules, gradient accumulation and
clipping, bf16 autocast, optional ``torch.compile``, periodic evaluation and
samples, ``metrics.jsonl``, atomic checkpoints with exact resume (bitwise
identical weights after a crash), NaN detection, DDP and FSDP (rank 0 writes).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn
from torch.utils.checkpoint import checkpoint

from llm_core import get_registry
from llm_core.config_io import write_json_atomic
from llm_core.errors import CheckpointError, ConfigError, ScratchLMError
from llm_core.output_dirs import check_output_dir, claim_output_dir
from llm_model import generate_text
from llm_train.checkpoint import (
    STATE_FILE,
    capture_rng_state,
    find_latest_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
    prune_checkpoints,
    read_training_checkpoint,
    restore_rng_state,
    save_training_checkpoint,
)
from llm_train.config import TRAIN_CONFIG_FILE, OptimConfig, TrainConfig, train_config_from_saved
from llm_train.distributed import DistributedContext
from llm_train.metrics import MetricsWriter
from llm_train.optimizers import build_optimizer
from llm_train.schedules import lr_multiplier
from llm_train.tasks import LanguageModeling, Task

__all__ = [
    "TrainResult",
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "check_run_dir",
    "checkpoint_blocks",
]

#: Signals that stop a run at the end of the current step, after a checkpoint.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingError(ScratchLMError):
    """Training cannot go on (for example the loss became NaN)."""


class TrainingInterrupted(ScratchLMError):
    """Ctrl-C or SIGTERM: a checkpoint of the last finished step was saved; resume with ``--resume``."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    steps: int
    tokens_seen: int
    initial_val_loss: float | None
    val_loss: float | None
    train_loss: float | None
    final_dir: Path
    seconds: float
    is_main: bool = True  # False on the ranks > 0 of a torchrun job: they print nothing


def check_run_dir(
    run_dir: str | os.PathLike[str], *, command: str, resume: bool, overwrite: bool = False
) -> None:
    """Refuse ``run_dir`` before any work when a run cannot start or resume there; writes nothing.

    Resuming needs a ``step-N`` checkpoint. A fresh run needs a directory that is
    new, empty or ``command``'s own (:func:`llm_core.output_dirs.check_output_dir`)
    and holds no checkpoints; ``overwrite`` accepts any directory, and the fresh
    run then replaces the previous run's checkpoints (``step-N``, ``best``, ``final``).
    """
    run_dir = Path(run_dir)
    has_checkpoints = find_latest_checkpoint(run_dir) is not None
    if resume:
        if not has_checkpoints:
            raise CheckpointError(f"{run_dir}: no checkpoint to resume from (expected step-N directories)")
        return  # a run directory by its checkpoints, marked or not (runs older than the marker)
    check_output_dir(run_dir, command=command, overwrite=overwrite)
    if has_checkpoints and not overwrite:
        raise ConfigError(
            f"{run_dir} already holds checkpoints; pass --resume to continue it, "
            "--overwrite to start it again, or choose another --out"
        )


def checkpoint_blocks(model: nn.Module) -> None:
    """Recompute each block of ``model.trf_blocks`` in the backward pass (activation checkpointing).

    Each block's ``forward`` runs under :func:`torch.utils.checkpoint.checkpoint` when
    gradients are on (generation and evaluation run it plainly); the parameter names,
    hence the checkpoints, do not change. Dropout's masks are replayed (torch saves and
    restores the RNG state), so the weights are those of a run without it.
    """
    blocks = getattr(model, "trf_blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ConfigError(
            f"activation_checkpointing needs a model whose blocks are in trf_blocks (scratchlm's "
            f"decoders); {type(model).__name__} has none"
        )
    for block in blocks:
        plain = block.forward

        def forward(*args: Any, _plain: Any = plain, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return _plain(*args, **kwargs)
            return checkpoint(_plain, *args, use_reentrant=False, **kwargs)

        block.forward = forward


class Trainer:
    """Train ``model`` on token arrays; checkpoints, metrics and samples go to ``run_dir``."""

    def __init__(
        self,
        model: nn.Module,
        config: OptimConfig,
        *,
        run_dir: str | Path,
        task: Task | None = None,
        train_tokens: Sequence[int] | np.ndarray | None = None,
        val_tokens: Sequence[int] | np.ndarray | None = None,
        tokenizer: Any = None,
        dist: DistributedContext | None = None,
        command: str = "pretrain",
    ) -> None:
        """Train on ``task``, or on ``train_tokens``/``val_tokens`` with :class:`LanguageModeling`.

        ``command`` names what writes ``run_dir`` (its marker, :mod:`llm_core.output_dirs`).
        """
        self.config = config
        self.command = command
        self.model = model
        self.dist = dist or DistributedContext()
        self.device = torch.device(config.device)
        self.run_dir = Path(run_dir)
        self.tokenizer = tokenizer
        model_config: Any = model.config
        model_context: int = model_config.context_length
        # pretraining's windows: its config's context_length, else the model's own
        own_context = config.context_length if isinstance(config, TrainConfig) else None
        self.context_length = own_context or model_context
        if self.context_length > model_context:
            raise ConfigError(
                f"context_length={self.context_length} exceeds the model's context_length={model_context}"
            )
        if task is None:
            if train_tokens is None:
                raise ConfigError("Trainer needs a task or train_tokens")
            sampling: dict[str, Any] = {}
            if isinstance(config, TrainConfig):
                sampling = {
                    "sampling": config.sampling,
                    "stride": config.stride,
                    "shuffle": config.shuffle,
                    "drop_last": config.drop_last,
                    "eval_data": config.eval_data,
                }
                if config.sampling == "windows" and not config.drop_last and self.dist.world_size > 1:
                    raise ConfigError(
                        "drop_last=false would give the processes uneven batches; keep drop_last"
                    )
            task = LanguageModeling(
                train_tokens,
                val_tokens,
                context_length=self.context_length,
                eval_batches=config.eval_batches,
                batch_size=config.batch_size,
                **sampling,
            )
        self.task = task
        self.global_batch = config.batch_size * self.dist.world_size
        self.loader = task.loader(self.global_batch, config.seed)
        self.max_steps = self._resolve_max_steps()
        self.model.to(self.device)
        if config.activation_checkpointing:
            checkpoint_blocks(self.model)
        self.forward_model: nn.Module = self.dist.wrap(self.model)  # FSDP shards before the optimizer
        self.optimizer = build_optimizer(
            config.optimizer,
            self.model,
            lr=config.lr,
            weight_decay=config.weight_decay,
            decay_all=config.decay_all,
            **({"betas": tuple(config.betas)} if config.betas is not None else {}),
            **config.optimizer_options,
        )
        get_registry("schedulers").get_obj(config.scheduler)  # unknown names fail before training
        self.callbacks = [get_registry("callbacks").get_obj(name)() for name in config.callbacks]
        if config.compile:
            self.forward_model = torch.compile(self.forward_model)  # type: ignore[assignment]
        self.step = 0
        self.tokens_seen = 0
        self.examples_seen = 0
        self.best_val = math.inf
        self.last_val: float | None = None
        self.initial_val: float | None = None
        self.last_train: float | None = None
        self.last_saved_step = -1
        self.started: float | None = None  # set by fit()
        self.elapsed_before = 0.0  # wall seconds of the run before a resume
        self.stop_signal: int | None = None  # set by the SIGINT/SIGTERM handler fit() installs

    # -- sizes ----------------------------------------------------------------
    def _resolve_max_steps(self) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        epochs = self.config.epochs if self.config.epochs is not None else 1.0
        per_step = self.global_batch * self.config.grad_accum
        return max(1, math.ceil(epochs * self.task.examples_per_epoch() / per_step))

    def elapsed(self) -> float:
        """Wall seconds of training so far, across resumes (for time-to-quality plots)."""
        running = time.perf_counter() - self.started if self.started is not None else 0.0
        return self.elapsed_before + running

    def epoch(self) -> float:
        """Epochs seen so far: examples seen over examples per epoch."""
        return self.examples_seen / self.task.examples_per_epoch()

    # -- evaluation ---------------------------------------------------------------
    def _autocast(self) -> Any:
        enabled = self.config.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def evaluate(self) -> dict[str, float | None]:
        """The task's held-out metrics, in eval mode without gradients."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._autocast():
                return self.task.evaluate(self.model)
        finally:
            self.model.train(was_training)

    def sample(self) -> str | None:
        """Greedy continuation of ``sample_prompt`` (None without a tokenizer)."""
        if self.tokenizer is None or not self.config.sample_prompt:
            return None
        was_training = self.model.training
        self.model.eval()
        try:
            return generate_text(
                self.model,
                self.tokenizer,
                self.config.sample_prompt,
                max_new_tokens=self.config.sample_tokens,
            )
        finally:
            self.model.train(was_training)

    # -- checkpoints ----------------------------------------------------------------
    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "examples_seen": self.examples_seen,
            "best_val": None if math.isinf(self.best_val) else self.best_val,
            "last_val": self.last_val,
            "initial_val": self.initial_val,
            "elapsed_s": self.elapsed(),
            "rng": capture_rng_state(),
            "data": self.loader.state_dict(),
            "world_size": self.dist.world_size,
            "config": self.config.to_dict(),
        }

    def save(self, name: str | None = None) -> Path | None:
        """Write a checkpoint (rank 0 writes): ``step-N`` by default, or ``name``."""
        path = None
        model_state, optimizer_state = self.dist.full_state(self.model, self.optimizer)  # collective
        if self.dist.is_main:
            tokenizer = {"tokenizer": self.config.tokenizer} if isinstance(self.config, TrainConfig) else {}
            extra = {**tokenizer, **getattr(self.task, "checkpoint_config", dict)()}
            try:
                path = save_training_checkpoint(
                    self.run_dir,
                    name or f"step-{self.step:07d}",
                    self.model,
                    optimizer_state,
                    self._trainer_state(),
                    extra_config=extra,
                    model_state=model_state,
                )
            except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
                reason = getattr(exc, "strerror", None) or exc
                raise CheckpointError(
                    f"cannot write a checkpoint in {self.run_dir}: {reason}; "
                    "the previous checkpoints are untouched"
                ) from None
            if name is None:
                prune_checkpoints(self.run_dir, self.config.keep_last)
        self.last_saved_step = self.step
        self.dist.barrier()
        return path

    def _restore(self) -> None:
        latest = find_latest_checkpoint(self.run_dir)
        if latest is None:
            raise CheckpointError(
                f"{self.run_dir}: no checkpoint to resume from (expected step-N directories)"
            )
        if self.dist.sharded:
            weights, optimizer_state, state = read_training_checkpoint(latest)
        else:
            _, optimizer_state, state = load_training_checkpoint(latest, self.model)
        saved_world = state.get("world_size", self.dist.world_size)  # unrecorded before format 3
        if isinstance(saved_world, bool) or not isinstance(saved_world, int) or saved_world < 1:
            raise CheckpointError(f"{latest / STATE_FILE}: 'world_size' must be a positive integer")
        if saved_world != self.dist.world_size:
            raise ConfigError(
                f"cannot resume {self.run_dir}: its checkpoints were written by {saved_world} "
                f"process(es) (global batch {saved_world * self.config.batch_size} = {saved_world} x "
                f"batch_size {self.config.batch_size}), this run has "
                f"{self.dist.world_size}, which would change the batches; resume with "
                f"torchrun --nproc-per-node {saved_world}, or start a new --out"
            )
        where = f"{latest / STATE_FILE}: 'config'"
        saved = train_config_from_saved(
            state["config"], source=where, error=CheckpointError, cls=type(self.config)
        )
        differences = self.config.changes_from(saved)
        if differences:
            raise ConfigError(
                f"cannot resume {self.run_dir}: the config differs from the run's "
                f"({'; '.join(differences)}); "
                "use the same settings or a new --out"
            )
        if self.dist.sharded:
            self.dist.load_full_state(self.model, self.optimizer, weights, optimizer_state)
        else:
            self.optimizer.load_state_dict(optimizer_state)
        self.loader.load_state_dict(state["data"])
        restore_rng_state(state["rng"])
        self.step = state["step"]
        self.tokens_seen = state["tokens_seen"]
        self.examples_seen = state["examples_seen"]
        self.best_val = math.inf if state["best_val"] is None else state["best_val"]
        self.last_val = state["last_val"]
        self.initial_val = state["initial_val"]
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.last_saved_step = self.step

    def _prepare_run_dir(self, resume: bool, overwrite: bool) -> None:
        if not self.dist.is_main:
            return
        check_run_dir(self.run_dir, command=self.command, resume=resume, overwrite=overwrite)
        claim_output_dir(self.run_dir, command=self.command, overwrite=overwrite or resume)
        try:
            if overwrite and not resume:  # a fresh run: the previous run's checkpoints go
                previous = [path for _, path in list_checkpoints(self.run_dir)]
                previous += [self.run_dir / name for name in ("best", "final")]
                for old in previous:
                    if old.is_symlink():
                        old.unlink()  # the link, never what it points to
                    elif (old / STATE_FILE).is_file():
                        shutil.rmtree(old)
            for old in self.run_dir.glob(".*.old-*"):  # a crash between a rewrite's two renames
                kept = self.run_dir / old.name[1:].rsplit(".old-", 1)[0]
                if not kept.exists():
                    old.rename(kept)  # the previous complete version comes back
            for stale in [*self.run_dir.glob(".*.tmp-*"), *self.run_dir.glob(".*.old-*")]:
                shutil.rmtree(stale, ignore_errors=True)  # left by a crash mid-write
            write_json_atomic(self.run_dir / TRAIN_CONFIG_FILE, self.config.to_dict())
        except OSError as exc:
            raise CheckpointError(f"cannot write to {self.run_dir}: {exc.strerror or exc}") from None

    # -- the loop ---------------------------------------------------------------------
    def _train_step(self) -> tuple[float, float | None]:
        """One optimizer step over ``grad_accum`` micro-batches; returns (loss, grad norm if clipped)."""
        cfg = self.config
        multiplier = lr_multiplier(
            cfg.scheduler,
            self.step,
            max_steps=self.max_steps,
            warmup_steps=cfg.warmup_steps,
            min_lr_ratio=cfg.min_lr_ratio,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * multiplier
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        rank_rows = slice(self.dist.rank * cfg.batch_size, (self.dist.rank + 1) * cfg.batch_size)
        for micro in range(cfg.grad_accum):
            batch = tuple(t[rank_rows] for t in next(self.loader))  # this rank's slice of the global batch
            with self.dist.no_sync(self.forward_model, last=micro == cfg.grad_accum - 1):
                with self._autocast():
                    loss = self.task.loss(self.forward_model, batch)
                (loss / cfg.grad_accum if cfg.grad_accum > 1 else loss).backward()
            total += loss.item() / cfg.grad_accum
            self.tokens_seen += self.task.tokens(batch) * self.dist.world_size
            self.examples_seen += self.global_batch
        total = self.dist.mean(total)
        if not math.isfinite(total):
            latest = find_latest_checkpoint(self.run_dir)
            where = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
            raise TrainingError(
                f"the loss became {total} at step {self.step + 1}; {where}. "
                "Lower --lr, enable grad clipping or check the data"
            )
        grad_norm = None  # without clipping, measured only when logged (_grad_norm)
        if cfg.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            grad_norm = self.dist.grad_norm(norm)
        self.optimizer.step()
        self.step += 1
        return total, grad_norm

    def fit(self, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
        """Train to ``max_steps``; ``resume`` continues from the newest checkpoint in ``run_dir``.

        ``run_dir`` must be new, empty or this command's own (see :func:`check_run_dir`);
        ``overwrite`` starts a fresh run in any directory. SIGINT and SIGTERM (in the main
        thread) stop the run at the end of the current step, after a checkpoint of that step,
        with :class:`TrainingInterrupted`; a second one stops it at once, without a checkpoint.
        """
        self._prepare_run_dir(resume, overwrite)
        if resume:
            self._restore()
        self.model.train()
        metrics = (
            MetricsWriter(self.run_dir / "metrics.jsonl", resume_step=self.step if resume else None)
            if self.dist.is_main
            else None
        )
        start = self.started = time.perf_counter()
        progress = self._progress()
        previous_handlers = self._install_stop_handlers()
        try:
            book = self.config.eval_schedule == "book"  # the book's loop evaluates only after updates
            if self.step == 0 and self.config.eval_every and not resume and not book:
                self._evaluate_and_log(metrics, progress)  # a step-0 checkpoint has it
            self._stop_if_asked()
            for callback in self.callbacks:
                getattr(callback, "on_train_start", lambda t: None)(self)
            window_start, window_start_tokens, window_tokens, losses = (
                time.perf_counter(),
                self.tokens_seen,
                0,
                [],
            )
            while self.step < self.max_steps:
                loss, grad_norm = self._train_step()
                losses.append(loss)
                window_tokens = self.tokens_seen - window_start_tokens
                self.last_train = loss
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(
                        loss=f"{loss:.3f}",
                        tok_s=f"{window_tokens / max(1e-9, time.perf_counter() - window_start):.0f}",
                    )
                if self.step % self.config.log_every == 0 or self.step == self.max_steps:
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "kind": "train",
                        "step": self.step,
                        "tokens_seen": self.tokens_seen,
                        "elapsed_s": self.elapsed(),
                        "epoch": self.epoch(),
                        "train_loss": sum(losses) / len(losses),
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "grad_norm": grad_norm if grad_norm is not None else self._grad_norm(),
                        "tokens_per_s": window_tokens / max(elapsed, 1e-9),
                    }
                    if metrics:
                        metrics.write(record)
                    for callback in self.callbacks:
                        getattr(callback, "on_step_end", lambda t, m: None)(self, record)
                    window_start, window_start_tokens, losses = time.perf_counter(), self.tokens_seen, []
                if self._evaluation_due():
                    self._evaluate_and_log(metrics, progress)
                elif self.config.eval_every and self.step == self.max_steps:
                    with torch.random.fork_rng(devices=[]):  # off the schedule: the random streams
                        self._evaluate_and_log(metrics, progress)  # stay those of a longer run
                if self.config.sample_every and self.step % self.config.sample_every == 0:
                    self._sample_and_log(metrics, progress)
                if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                    self._checkpoint()
                self._stop_if_asked()  # the step boundary: the state a checkpoint must hold
            if self.last_saved_step != self.step:
                self._checkpoint()
            final_dir = self.run_dir / "final"
            self.save("final")
            for callback in self.callbacks:
                getattr(callback, "on_train_end", lambda t: None)(self)
        except KeyboardInterrupt:  # a second Ctrl-C, or one raised by code: the state may be mid-step
            latest = find_latest_checkpoint(self.run_dir)
            kept = f"the newest checkpoint is {latest}" if latest else "no checkpoint was written yet"
            raise TrainingInterrupted(
                f"stopped at once during step {self.step + 1}, without a checkpoint; {kept}; "
                "continue with --resume"
            ) from None
        finally:
            self._restore_handlers(previous_handlers)
            if progress is not None:
                progress.close()
            if metrics:
                metrics.close()
        return TrainResult(
            steps=self.step,
            tokens_seen=self.tokens_seen,
            initial_val_loss=self.initial_val,
            val_loss=self.last_val,
            train_loss=self.last_train,
            final_dir=final_dir,
            seconds=time.perf_counter() - start,
            is_main=self.dist.is_main,
        )

    # -- interrupts ---------------------------------------------------------------------
    def _install_stop_handlers(self) -> dict[int, Any]:
        """Make SIGINT/SIGTERM only ask for a stop (main thread only; ignored signals stay ignored)."""
        self.stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in _STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, self._on_stop_signal)
        return previous

    @staticmethod
    def _restore_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        """The handler: the first signal asks for a stop at the step boundary, a second one stops now."""
        if self.stop_signal is not None:
            raise KeyboardInterrupt
        self.stop_signal = signum
        if self.dist.is_main:
            try:
                sys.stderr.write(
                    f"\n{signal.Signals(signum).name}: stopping at the end of this step, after a "
                    "checkpoint (interrupt again to stop at once, without one)\n"
                )
                sys.stderr.flush()
            except (OSError, RuntimeError, ValueError):  # a closed or busy stream: the stop still happens
                pass

    def _stop_if_asked(self) -> None:
        """At a step boundary: if any rank was signalled, checkpoint this step and stop."""
        if not self.dist.any_rank(self.stop_signal is not None):
            return
        if self.last_saved_step != self.step:
            self._checkpoint()
        name = signal.Signals(self.stop_signal).name if self.stop_signal is not None else "a signal"
        raise TrainingInterrupted(
            f"interrupted ({name}) at step {self.step}; checkpoint saved in {self.run_dir}; "
            "continue with --resume"
        )

    def _grad_norm(self) -> float:
        """The norm of the last step's gradients (still held: the next step clears them)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        return self.dist.grad_norm(torch.nn.utils.get_total_norm(grads)) if grads else 0.0

    def _evaluation_due(self) -> bool:
        """Whether the step just finished is on the schedule (``eval_every``, ``eval_schedule``)."""
        every = self.config.eval_every
        offset = 1 if self.config.eval_schedule == "book" else 0
        return bool(every) and (self.step - offset) % every == 0

    def _checkpoint(self) -> None:
        # best/ first: a crash between the two writes then resumes from an older step-N and
        # rewrites best/ identically, instead of leaving best/ behind the newest step-N.
        if self.last_val is not None and self.last_val < self.best_val:
            self.best_val = self.last_val
            self.save("best")
        self.save()

    def _evaluate_and_log(self, metrics: MetricsWriter | None, progress: Any) -> None:
        result = self.evaluate()
        self.last_val = result["val_loss"]
        if self.step == 0:
            self.initial_val = self.last_val
        record = {
            "kind": "eval",
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "elapsed_s": self.elapsed(),
            "epoch": self.epoch(),
            **result,
        }
        if metrics:
            metrics.write(record)
        for callback in self.callbacks:
            getattr(callback, "on_eval_end", lambda t, m: None)(self, record)
        if progress is not None:
            shown = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in result.items() if v is not None)
            progress.write(f"step {self.step}: {shown}")

    def _sample_and_log(self, metrics: MetricsWriter | None, progress: Any) -> None:
        text = self.sample()
        if text is None:
            return
        if metrics:
            metrics.write({"kind": "sample", "step": self.step, "text": text})
        if progress is not None:
            progress.write(f"step {self.step} sample: {text!r}")

    def _progress(self) -> Any:
        if not (self.config.progress and self.dist.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.max_steps,
            initial=self.step,
            desc=getattr(self.task, "name", "train"),
            unit="step",
            dynamic_ncols=True,
        )
