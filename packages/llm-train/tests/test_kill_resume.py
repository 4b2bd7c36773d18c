"""SIGKILL a real training process at random moments; resuming must give bitwise identical weights."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from tiny_setup import weights

from llm_train.checkpoint import list_checkpoints

SCRIPT = """
import sys
import numpy as np
import torch
from tiny_setup import synthetic_tokens, tiny_config
from llm_model import build_model
from llm_train import Trainer
from llm_train.checkpoint import find_latest_checkpoint

run_dir = sys.argv[1]
tokens = synthetic_tokens()
model = {**tiny_config().model, "drop_rate": 0.1}
config = tiny_config(max_steps=40, checkpoint_every=3, eval_every=5, model=model)
torch.manual_seed(config.seed)
model = build_model(config.arch, preset=config.preset, **config.model)
trainer = Trainer(model, config, train_tokens=tokens[:1800], val_tokens=tokens[1800:], run_dir=run_dir)
trainer.fit(resume=find_latest_checkpoint(run_dir) is not None)
"""


def start(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(run_dir)], env=env, stderr=subprocess.PIPE)


def latest_step(run_dir: Path) -> int:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][0] if checkpoints else -1


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    reference = start(tmp_path / "reference")
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()
    rng = random.Random(1234)
    run_dir = tmp_path / "killed"
    kills = 0
    for _ in range(4):
        process = start(run_dir)
        before = latest_step(run_dir)
        deadline = time.monotonic() + 120
        while (
            len(list_checkpoints(run_dir)) <= before
            and process.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)  # each round makes progress: wait for a new checkpoint ...
        time.sleep(rng.uniform(0.0, 1.5))  # ... then kill at a random moment (mid-step or mid-write)
        if process.poll() is not None:
            break  # finished before the kill
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    final = start(run_dir)
    assert final.wait(timeout=300) == 0, final.stderr.read().decode()
    assert kills >= 2
    expected, got = weights(tmp_path / "reference" / "final"), weights(run_dir / "final")
    assert all(torch.equal(expected[k], got[k]) for k in expected)
