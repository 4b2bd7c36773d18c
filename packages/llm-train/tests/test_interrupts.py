"""SIGINT/SIGTERM inside every phase of a step stop the run at the step boundary; resume is bitwise exact.

The signal is real (``os.kill`` of this process) and sent from a hook that runs
inside the phase: a block's forward, the backward pass, the optimizer step, the
evaluation, the checkpoint write. The Trainer's handler only records it; the
step finishes, is checkpointed, and the resumed run ends with the weights and
optimizer state of a run that was never interrupted.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_setup import tiny_config

import llm_train.checkpoint as checkpoint_module
from llm_model import build_model
from llm_train import Trainer, TrainingInterrupted, read_metrics
from llm_train.checkpoint import list_checkpoints, load_training_checkpoint

MODEL = {**tiny_config().model, "drop_rate": 0.1}  # dropout: the RNG state must be restored exactly


def make_trainer(tokens: np.ndarray, run_dir: Path) -> Trainer:
    config = tiny_config(model=MODEL)
    torch.manual_seed(config.seed)
    model = build_model(config.arch, preset=config.preset, **config.model)
    return Trainer(model, config, train_tokens=tokens[:1800], val_tokens=tokens[1800:], run_dir=run_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_setup import synthetic_tokens

    run = tmp_path_factory.mktemp("reference") / "run"
    make_trainer(synthetic_tokens(), run).fit()
    return run / "final"


def assert_bitwise_equal(expected: Path, got: Path) -> None:
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(str(expected / name)), load_file(str(got / name))
        assert a.keys() == b.keys(), name
        assert all(torch.equal(a[k], b[k]) for k in a), name


def send(sig: int, times: int = 1) -> None:
    for _ in range(times):
        os.kill(os.getpid(), sig)


def arm(trainer: Trainer, phase: str, sig: int, at_step: int, monkeypatch: Any, times: int = 1) -> list[int]:
    """Send ``sig`` from inside ``phase`` when the trainer is at ``at_step``; returns the calls made."""
    sent: list[int] = []

    def fire(training: bool | None = None) -> None:
        if not sent and trainer.step == at_step and (training is None or trainer.model.training == training):
            sent.append(trainer.step)
            send(sig, times)

    block = trainer.model.trf_blocks[1]
    if phase == "forward":
        block.register_forward_hook(lambda *_: fire(training=True))
    elif phase == "backward":
        next(block.parameters()).register_hook(lambda grad: fire())
    elif phase == "optimizer step":
        trainer.optimizer.register_step_pre_hook(lambda *_: fire())
    elif phase == "evaluation":
        block.register_forward_hook(lambda *_: fire(training=False))
    elif phase == "checkpoint write":
        original: Callable[..., Any] = checkpoint_module.write_model_files

        def write_then_fire(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)  # inside the write: model files done, optimizer not yet
            fire()
            return result

        monkeypatch.setattr(checkpoint_module, "write_model_files", write_then_fire)
    return sent


@pytest.mark.parametrize(
    ("phase", "sig", "at_step", "stopped_at"),
    [
        ("forward", signal.SIGINT, 5, 6),
        ("backward", signal.SIGTERM, 5, 6),
        ("optimizer step", signal.SIGINT, 2, 3),
        ("evaluation", signal.SIGTERM, 4, 4),  # the evaluation after step 4
        ("checkpoint write", signal.SIGINT, 8, 8),  # best/ or step-8 half written
    ],
)
def test_a_signal_inside_a_step_stops_at_its_end_and_resume_is_bitwise_identical(
    tokens: np.ndarray,
    tmp_path: Path,
    reference: Path,
    monkeypatch: pytest.MonkeyPatch,
    phase: str,
    sig: int,
    at_step: int,
    stopped_at: int,
) -> None:
    run = tmp_path / "run"
    trainer = make_trainer(tokens, run)
    sent = arm(trainer, phase, sig, at_step, monkeypatch)
    expected = rf"interrupted \({signal.Signals(sig).name}\) at step {stopped_at}; checkpoint saved"
    with pytest.raises(TrainingInterrupted, match=expected):
        trainer.fit()
    assert sent == [at_step]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.undo()
    steps, latest = list_checkpoints(run)[-1]
    assert steps == stopped_at
    _, _, state = load_training_checkpoint(latest)
    assert state["step"] == stopped_at
    assert state["tokens_seen"] == stopped_at * 4 * 16  # every batch drawn was trained on
    make_trainer(tokens, run).fit(resume=True)
    assert_bitwise_equal(reference, run / "final")
    train_steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert train_steps == list(range(2, 13, 2))  # log_every=2: each once


def test_a_second_signal_stops_at_once_without_a_checkpoint(
    tokens: np.ndarray, tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    trainer = make_trainer(tokens, run)
    arm(trainer, "forward", signal.SIGINT, 5, monkeypatch, times=2)
    with pytest.raises(TrainingInterrupted, match=r"stopped at once during step 6, without a checkpoint; "):
        trainer.fit()
    assert [step for step, _ in list_checkpoints(run)] == [4]  # nothing half-made was saved
    make_trainer(tokens, run).fit(resume=True)
    assert_bitwise_equal(reference, run / "final")


def test_a_signal_before_the_first_step_saves_step_0_and_resumes(
    tokens: np.ndarray, tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    trainer = make_trainer(tokens, run)
    arm(trainer, "evaluation", signal.SIGTERM, 0, monkeypatch)
    with pytest.raises(TrainingInterrupted, match=r"at step 0;"):
        trainer.fit()
    assert [step for step, _ in list_checkpoints(run)] == [0]
    make_trainer(tokens, run).fit(resume=True)
    assert_bitwise_equal(reference, run / "final")
    evals = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert evals == [0, 4, 8, 12]  # the step-0 evaluation is not repeated by the resume


def test_an_ignored_signal_stays_ignored(tokens: np.ndarray, tmp_path: Path) -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # e.g. a job started with nohup
    try:
        trainer = make_trainer(tokens, tmp_path / "run")
        trainer.callbacks.append(type("Term", (), {"on_step_end": lambda self, t, m: send(signal.SIGTERM)})())
        assert trainer.fit().steps == 12
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
