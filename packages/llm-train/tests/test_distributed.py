"""DDP on CPU with gloo: 2 processes match a single process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_train import read_metrics
from llm_train.checkpoint import load_training_checkpoint

SCRIPT = """
import sys
import numpy as np
import torch
from tiny_setup import synthetic_tokens, tiny_config
from llm_model import build_model
from llm_train import Trainer, init_distributed

run_dir, batch = sys.argv[1], int(sys.argv[2])
tokens = synthetic_tokens()
config = tiny_config(max_steps=6, batch_size=batch, log_every=1, checkpoint_every=3, grad_accum=2)
dist = init_distributed()
torch.manual_seed(config.seed)
model = build_model(config.arch, preset=config.preset, **config.model)
Trainer(model, config, train_tokens=tokens[:1800], val_tokens=tokens[1800:], run_dir=run_dir, dist=dist).fit()
"""


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path: Path) -> None:
    script = tmp_path / "train_script.py"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    script.write_text(SCRIPT)
    single = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "single"), "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = subprocess.run(
        [*launcher, str(script), str(tmp_path / "ddp"), "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = [
        r["train_loss"] for r in read_metrics(tmp_path / "single" / "metrics.jsonl") if r["kind"] == "train"
    ]
    two = [r["train_loss"] for r in read_metrics(tmp_path / "ddp" / "metrics.jsonl") if r["kind"] == "train"]
    assert len(one) == len(two) == 6
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) <= 1e-5
    _, _, state = load_training_checkpoint(tmp_path / "ddp" / "step-0000006")  # loads in one process
    assert state["step"] == 6
