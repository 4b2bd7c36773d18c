"""SIGKILL real training processes, many times and inside checkpoint writes; resuming must lose nothing.

The package test ``packages/llm-train/tests/test_kill_resume.py`` kills a run 4
times, once per checkpoint interval. This suite goes further:

* every step writes a checkpoint, so the run spends about half its time in
  checkpoint writes, and every other kill is aimed at a write (it waits for the
  write's temporary directory to appear, then kills within a few ms);
* 5 kills in CI, 20 with ``SCRATCHLM_NIGHTLY=1``; after each kill the newest
  complete checkpoint must verify (sha256 of every file) and load;
* the uninterrupted reference run and the final ``--resume`` are the real
  ``scratchlm pretrain`` command; the killed runs are the same ``pretrain()``
  call in processes forked from a server that has torch imported already
  (``multiprocessing`` "forkserver"), so a kill costs no 5 s interpreter start;
* two kills at exact moments of the ``best`` checkpoint write (after ``step-N``
  is saved, and between the two renames that replace ``best``), injected by
  wrapping functions inside the doomed child only.

A kill "landed mid-checkpoint" when it left a checkpoint's temporary or
renamed-aside directory behind (``.step-N.tmp-PID``, ``.best.old-PID``).

SIGINT (Ctrl-C) and SIGTERM get the same treatment, 2 of each in CI and 20 of each with
``SCRATCHLM_NIGHTLY=1``: each is sent from inside a phase of a step (forward, backward,
optimizer step, evaluation, checkpoint write: a hook in the child sends it) or at a
random moment from outside; the run must stop with a checkpoint of a whole step and
the final resume must be bitwise identical.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llm_train.checkpoint import find_latest_checkpoint, list_checkpoints, load_training_checkpoint

FORKSERVER = multiprocessing.get_context("forkserver")
# What a training process spends its first seconds importing (torch._dynamo comes with torch.optim).
FORKSERVER.set_forkserver_preload(["torch", "torch._dynamo", "llm_train.pretrain", "llm_train.config"])

CHILD = """
import torch
torch.set_num_threads(1)  # the same threads as the CLI reference (OMP_NUM_THREADS=1): same sums
from llm_train.checkpoint import find_latest_checkpoint
from llm_train.config import load_train_config
from llm_train.pretrain import pretrain

pretrain(load_train_config(CONFIG), RUN_DIR, resume=find_latest_checkpoint(RUN_DIR) is not None)
"""


def start_training(config: Path, run_dir: Path, prelude: str = "", child: str = CHILD) -> Any:
    """A process running ``pretrain()`` (resuming when ``run_dir`` holds a checkpoint)."""
    process = FORKSERVER.Process(
        target=exec, args=(prelude + child, {"CONFIG": str(config), "RUN_DIR": str(run_dir)})
    )
    process.start()
    return process


def scratchlm(*args: str | Path) -> subprocess.CompletedProcess:
    """Run the real CLI (``python -m llm_core.cli``) and return its result."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCRATCHLM_PLUGINS": ""}
    command = [sys.executable, "-m", "llm_core.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def latest_step(run_dir: Path) -> int:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][0] if checkpoints else -1


def leftovers(run_dir: Path) -> list[str]:
    """Temporary or renamed-aside checkpoint directories: the marks of a write cut short."""
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def wait_until(condition: Callable[[], Any], timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the training process made no progress in time")
        time.sleep(poll)


def same_files(expected: Path, got: Path, names: tuple[str, ...]) -> list[str]:
    """Names of the safetensors files whose tensors differ (bitwise) between two checkpoints."""
    differing = []
    for name in names:
        a, b = load_file(str(expected / name)), load_file(str(got / name))
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            differing.append(name)
    return differing


def train_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r["step"] for r in map(json.loads, lines) if r.get("kind") == "train"]


#: the book's data order: windows 512 tokens apart, reshuffled each epoch: 12 batches an
#: epoch here, so the 30 steps run 2.5 epochs and the kills land mid-epoch and across epochs
WINDOWS = 'sampling = "windows"\nstride = 512\nshuffle = true\ndrop_last = true\n'


@pytest.mark.parametrize("sampling", ["random", "windows"])
def test_sigkill_many_times_then_resume_is_bitwise_identical(
    tmp_path: Path, write_train_config: Any, nightly: bool, figures: dict, sampling: str
) -> None:
    wanted = 20 if nightly else 5
    max_steps = 4 * wanted + 10
    extra = WINDOWS if sampling == "windows" else ""
    config = write_train_config(tmp_path / "train.toml", max_steps, extra)
    reference = subprocess.Popen(  # the uninterrupted run, through the CLI, beside the kills
        [
            sys.executable,
            "-m",
            "llm_core.cli",
            "pretrain",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "ref"),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1", "SCRATCHLM_PLUGINS": ""},
        stderr=subprocess.PIPE,
        text=True,
    )
    rng = random.Random(20261127)
    run = tmp_path / "killed"
    kills, mid_checkpoint, aimed = 0, 0, 0
    started = time.perf_counter()
    for round_number in range(wanted):
        before = latest_step(run)
        process = start_training(config, run)
        progressed = lambda p=process, b=before: latest_step(run) > b or not p.is_alive()  # noqa: E731
        wait_until(progressed, timeout=300, poll=0.005)
        if round_number % 2 == 0:  # aim at a checkpoint write: wait for its temporary directory
            aimed += 1
            writing = lambda p=process: leftovers(run) or not p.is_alive()  # noqa: E731
            wait_until(writing, timeout=60, poll=0.0005)
            time.sleep(rng.uniform(0.0, 0.004))
        else:  # anywhere: mid-step, mid-evaluation, mid-write or mid-prune
            time.sleep(rng.uniform(0.0, 0.15))
        if not process.is_alive():
            break
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert process.exitcode == -signal.SIGKILL
        kills += 1
        mid_checkpoint += bool(leftovers(run))
        latest = find_latest_checkpoint(run)
        assert latest is not None
        _, _, state = load_training_checkpoint(latest)  # sha256 of every file, weights and optimizer
        assert state["step"] == latest_step(run)
    resumed = scratchlm("pretrain", "--config", config, "--out", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    figures["kill_resume" if sampling == "random" else "kill_resume_windows"].update(
        kills=kills, mid_checkpoint=mid_checkpoint, aimed_at_writes=aimed, max_steps=max_steps,
        seconds=round(time.perf_counter() - started, 1),
    )  # fmt: skip
    assert kills == wanted, f"the run finished after {kills} kills; raise max_steps"
    assert mid_checkpoint >= 1, "no kill landed inside a checkpoint write"
    ref = tmp_path / "ref"
    assert same_files(ref / "final", run / "final", ("model.safetensors", "optimizer.safetensors")) == []
    assert train_steps(run) == list(range(1, max_steps + 1)) == train_steps(ref)
    assert leftovers(run) == []


#: Runs inside the doomed child, before training: SIGKILL itself at one exact moment of the
#: ``best`` checkpoint write of step KILL_STEP.
KILL_BETWEEN_BEST_AND_STEP = """
import os, signal
import llm_train.trainer as _trainer

_save = _trainer.save_training_checkpoint

def _save_or_die(run_dir, name, model, optimizer, state, *args, **kwargs):
    if name == f"step-{KILL_STEP:07d}":
        os.kill(os.getpid(), signal.SIGKILL)  # best is on disk (written first); step-N is not yet
    return _save(run_dir, name, model, optimizer, state, *args, **kwargs)

_trainer.save_training_checkpoint = _save_or_die
"""

KILL_BETWEEN_RENAMES = """
import os, pathlib, signal
import llm_train.trainer as _trainer

_rename = pathlib.Path.rename

def _rename_or_die(self, target):
    if self.name.startswith(".best.tmp-") and _trainer_step[0] == KILL_STEP:
        os.kill(os.getpid(), signal.SIGKILL)  # the old best is renamed aside, the new one not in place
    return _rename(self, target)

_trainer_step = [0]
_state = _trainer.Trainer._trainer_state

def _tracking_state(self):
    _trainer_step[0] = self.step
    return _state(self)

pathlib.Path.rename = _rename_or_die
_trainer.Trainer._trainer_state = _tracking_state
"""


@pytest.fixture(scope="module")
def short_reference(tmp_path_factory: pytest.TempPathFactory, write_train_config: Any) -> dict[str, Path]:
    """An uninterrupted 5-step run: evaluations at steps 0 and 5, ``best`` saved at steps 1 and 5."""
    directory = tmp_path_factory.mktemp("short")
    config = write_train_config(directory / "train.toml", 5)
    process = start_training(config, directory / "ref")
    process.join(timeout=300)
    assert process.exitcode == 0
    best_state = json.loads((directory / "ref" / "best" / "trainer_state.json").read_text())
    assert best_state["step"] == 5, "the setup needs the validation loss to improve by step 5"
    return {"config": config, "ref": directory / "ref"}


def test_kill_between_the_best_and_step_checkpoints(tmp_path: Path, short_reference: dict) -> None:
    check_exact_kill(tmp_path, short_reference, KILL_BETWEEN_BEST_AND_STEP)


def test_kill_between_the_renames_of_best(tmp_path: Path, short_reference: dict) -> None:
    check_exact_kill(tmp_path, short_reference, KILL_BETWEEN_RENAMES)


def check_exact_kill(tmp_path: Path, reference: dict, prelude: str) -> None:
    run = tmp_path / "killed"
    process = start_training(reference["config"], run, prelude.replace("KILL_STEP", "5"))
    process.join(timeout=300)
    assert process.exitcode == -signal.SIGKILL, "the injected kill did not happen"
    resumed = start_training(reference["config"], run)
    resumed.join(timeout=300)
    assert resumed.exitcode == 0
    for name in ("final", "best"):
        assert (run / name).is_dir(), f"{name}/ is missing after the resume"
        assert same_files(reference["ref"] / name, run / name, ("model.safetensors",)) == [], name
    shutil.rmtree(run)


#: The child of the interrupt test: an interrupted run exits with status 3 (TrainingInterrupted).
INTERRUPTED_CHILD = (
    """
import sys
from llm_train.trainer import TrainingInterrupted
try:
"""
    + "".join(f"    {line}\n" for line in CHILD.strip().splitlines())
    + """
except TrainingInterrupted as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""
)

#: Runs in the child before training: it sends itself SIGNAL from inside PHASE, the AT-th time
#: that phase runs in this process (the signal handler runs right there, between two bytecodes).
INTERRUPT_INSIDE = """
import os
import llm_train.checkpoint as _checkpoint
import llm_train.trainer as _trainer

_calls = [0]

def _fire(*_):
    _calls[0] += 1
    if _calls[0] == AT:
        os.kill(os.getpid(), SIGNAL)

_init = _trainer.Trainer.__init__

def _init_and_arm(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    block = self.model.trf_blocks[-1]
    if PHASE == "forward":
        block.register_forward_hook(lambda m, i, o: _fire() if m.training else None)
    elif PHASE == "backward":
        next(block.parameters()).register_hook(_fire)
    elif PHASE == "optimizer step":
        self.optimizer.register_step_pre_hook(_fire)
    elif PHASE == "evaluation":
        block.register_forward_hook(lambda m, i, o: None if m.training else _fire())

_trainer.Trainer.__init__ = _init_and_arm

if PHASE == "checkpoint write":
    _write = _checkpoint.write_model_files

    def _write_then_fire(*args, **kwargs):
        result = _write(*args, **kwargs)  # the temporary directory holds the model, not yet the rest
        _fire()
        return result

    _checkpoint.write_model_files = _write_then_fire
"""

CLI = [sys.executable, "-m", "llm_core.cli"]
PHASES = ("forward", "backward", "optimizer step", "evaluation", "checkpoint write", "any moment")
#: How many times a phase runs per step at most (evaluation: 2 batches x 2 splits, every 5 steps).
_CALLS = {"forward": 3, "backward": 3, "optimizer step": 3, "evaluation": 8, "checkpoint write": 4}


def test_sigint_and_sigterm_at_random_moments_then_resume_is_bitwise_identical(
    tmp_path: Path, write_train_config: Any, nightly: bool, figures: dict
) -> None:
    """Ctrl-C and SIGTERM inside every phase of a step: each stops at a step boundary with a checkpoint.

    Each round starts (or resumes) the run and interrupts it once: from inside a phase
    (a hook in the child sends the signal, at a random one of the phase's next calls) or
    at a random moment sent from here. Every interrupted run must exit through
    ``TrainingInterrupted`` with a checkpoint whose data position matches its step; the
    final ``--resume`` must end bitwise identical (weights and optimizer) to a run never
    interrupted, with each step in ``metrics.jsonl`` once.
    """
    per_signal = 20 if nightly else 2
    rounds = 2 * per_signal
    max_steps = 6 * rounds + 10
    config = write_train_config(tmp_path / "train.toml", max_steps)
    reference = subprocess.Popen(  # the uninterrupted run, through the CLI, beside the interrupts
        [
            sys.executable,
            "-m",
            "llm_core.cli",
            "pretrain",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "ref"),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1", "SCRATCHLM_PLUGINS": ""},
        stderr=subprocess.PIPE,
        text=True,
    )
    rng = random.Random(20261130)
    phases = {sig: rng.sample(PHASES, len(PHASES)) for sig in (signal.SIGINT, signal.SIGTERM)}
    run = tmp_path / "interrupted"
    done: list[str] = []
    started = time.perf_counter()
    for round_number in range(rounds):
        sig = (signal.SIGINT, signal.SIGTERM)[round_number % 2]
        phase = phases[sig][(round_number // 2) % len(PHASES)]  # each signal cycles through every phase
        before = latest_step(run)
        if phase == "any moment":
            process = start_training(config, run, child=INTERRUPTED_CHILD)
            progressed = lambda p=process, b=before: latest_step(run) > b or not p.is_alive()  # noqa: E731
            wait_until(progressed, timeout=300, poll=0.005)  # the handlers are installed by now
            time.sleep(rng.uniform(0.0, 0.15))
            if process.is_alive():
                os.kill(process.pid, sig)
        else:
            at = rng.randint(1, _CALLS[phase])
            prelude = INTERRUPT_INSIDE.replace("PHASE", repr(phase)).replace("AT", str(at))
            process = start_training(config, run, prelude.replace("SIGNAL", str(int(sig))), INTERRUPTED_CHILD)
        process.join(timeout=300)
        assert process.exitcode == 3, f"round {round_number} ({sig.name}, {phase}): exit {process.exitcode}"
        assert leftovers(run) == []  # the step's checkpoint was completed, nothing half-written
        latest = find_latest_checkpoint(run)
        assert latest is not None
        _, _, state = load_training_checkpoint(latest)
        assert state["step"] == latest_step(run) > before
        assert state["data"]["step"] == state["step"]  # the loader is at the trainer's step
        assert state["tokens_seen"] == state["step"] * 4 * 32
        done.append(f"{sig.name}/{phase}")
    resumed = scratchlm("pretrain", "--config", config, "--out", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    figures["interrupt_resume"].update(
        sigint=sum(d.startswith("SIGINT") for d in done), sigterm=sum(d.startswith("SIGTERM") for d in done),
        phases=len({d.split("/")[1] for d in done}), max_steps=max_steps,
        seconds=round(time.perf_counter() - started, 1),
    )  # fmt: skip
    ref = tmp_path / "ref"
    assert same_files(ref / "final", run / "final", ("model.safetensors", "optimizer.safetensors")) == []
    assert train_steps(run) == list(range(1, max_steps + 1)) == train_steps(ref)
