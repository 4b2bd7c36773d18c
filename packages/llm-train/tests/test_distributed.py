"""DDP and FSDP on CPU with gloo: 2 processes match a single process with the same global batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from llm_train import read_metrics
from llm_train.checkpoint import load_training_checkpoint

SCRIPT = """
import sys
import torch
from tiny_setup import synthetic_tokens, tiny_config
from llm_model import build_model
from llm_train import Trainer, init_distributed

run_dir, batch, parallel, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "resume"
tokens = synthetic_tokens()
config = tiny_config(
    max_steps=6, batch_size=batch, log_every=1, checkpoint_every=3, grad_accum=2, parallel=parallel
)
dist = init_distributed(config.parallel)
torch.manual_seed(config.seed)
model = build_model(config.arch, preset=config.preset, **config.model)
trainer = Trainer(
    model, config, train_tokens=tokens[:1800], val_tokens=tokens[1800:], run_dir=run_dir, dist=dist
)
trainer.fit(resume=resume)
"""


def run(script: Path, run_dir: Path, *, processes: int, parallel: str, resume: bool = False) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    batch = str(4 // processes)
    flag = "resume" if resume else "fresh"
    done = subprocess.run(
        [*launcher, str(script), str(run_dir), batch, parallel, flag],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def train_losses(run_dir: Path) -> list[float]:
    return [r["train_loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("single")
    script = root / "train_script.py"
    script.write_text(SCRIPT)
    run(script, root / "run", processes=1, parallel="ddp")
    return script, root / "run"


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_gloo_processes_match_one(single_run: tuple[Path, Path], parallel: str, tmp_path: Path) -> None:
    script, single = single_run
    run(script, tmp_path / parallel, processes=2, parallel=parallel)
    one, two = train_losses(single), train_losses(tmp_path / parallel)
    assert len(one) == len(two) == 6
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) <= 1e-5
    # the checkpoint holds full tensors and loads in one process, FSDP or not
    model, optimizer_state, state = load_training_checkpoint(tmp_path / parallel / "step-0000006")
    assert state["step"] == 6
    reference = load_file(str(single / "final" / "model.safetensors"))
    for name, tensor in load_file(str(tmp_path / parallel / "final" / "model.safetensors")).items():
        assert tensor.shape == reference[name].shape
        assert (tensor - reference[name]).abs().max() <= 1e-5, name
    assert len(optimizer_state["state"]) == sum(1 for p in model.parameters() if p.requires_grad)


@pytest.mark.slow
def test_fsdp_resume_is_bitwise_identical(single_run: tuple[Path, Path], tmp_path: Path) -> None:
    script, _ = single_run
    whole = tmp_path / "whole"
    run(script, whole, processes=2, parallel="fsdp")
    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    for later in ["step-0000006", "final", "best"]:
        shutil.rmtree(resumed / later, ignore_errors=True)  # as if killed after step 3's checkpoint
    run(script, resumed, processes=2, parallel="fsdp", resume=True)
    expected = load_file(str(whole / "final" / "model.safetensors"))
    got = load_file(str(resumed / "final" / "model.safetensors"))
    assert expected.keys() == got.keys()
    assert all((expected[k] == got[k]).all() for k in expected)
    assert train_losses(resumed) == train_losses(whole)


@pytest.mark.slow
def test_torchrun_prints_once_and_a_resume_on_another_world_size_is_refused(tmp_path: Path) -> None:
    """`scratchlm pretrain` under torchrun: rank 0 alone prints; 1 process may not resume a 2-process run."""
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 300)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCRATCHLM_PLUGINS": ""}
    args = ["pretrain", "--data", str(text), "--out", str(out), "--batch-size", "2", "--context-length", "16"]
    args += ["--set", "progress=false", "--set", "eval_every=0", "--checkpoint-every", "2"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*torchrun, "-m", "llm_core.cli", *args, "--max-steps", "2"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: 2 steps") == 1, done.stdout
    assert done.stdout.count("final weights:") == 1
    alone = subprocess.run(
        [sys.executable, "-m", "llm_core.cli", *args, "--max-steps", "4", "--resume"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert alone.returncode == 2
    assert alone.stderr.strip().splitlines() == [
        f"error: cannot resume {out}: its checkpoints were written by 2 process(es) "
        "(global batch 4 = 2 x batch_size 2), this run has 1, which would change the batches; "
        "resume with torchrun --nproc-per-node 2, "
        "or start a new --out"
    ]
