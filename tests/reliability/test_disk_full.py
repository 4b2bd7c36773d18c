"""A full disk, for real: a small tmpfs under the training run and under `scratchlm prepare`'s output.

Mounting needs root (or CAP_SYS_ADMIN); elsewhere these tests skip with that
reason, and the ENOSPC-injection tests of the packages still run:
``packages/llm-train/tests/test_trainer.py::test_disk_full_during_checkpoint_keeps_previous`` and
``packages/llm-data/tests/test_prepare.py::test_disk_full_is_a_data_error_and_keeps_the_old_corpus``.
"""

from __future__ import annotations

import gc
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llm_core.cli import main as scratchlm
from llm_core.errors import CheckpointError
from llm_data import load_prepared
from llm_train.checkpoint import list_checkpoints, load_training_checkpoint
from llm_train.config import load_train_config
from llm_train.pretrain import pretrain


class Tmpfs:
    """A mounted tmpfs of a given size; ``resize`` remounts it larger or smaller."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, size: int) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here ({result.stderr.strip()}); ENOSPC injection tests still run"
            )

    def resize(self, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def unmount(self) -> None:
        gc.collect()  # memory maps of prepared shards keep the mount busy
        if subprocess.run(["umount", str(self.path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(self.path)], check=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; ENOSPC injection tests still run")
    fs = Tmpfs(tmp_path / "tmpfs")
    try:
        yield fs
    finally:
        if fs.path.is_mount():
            fs.unmount()


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_checkpoint_on_a_full_disk_keeps_the_previous_ones_and_resumes(
    tmp_path: Path, tmpfs: Tmpfs, write_train_config: Any
) -> None:
    config = load_train_config(write_train_config(tmp_path / "train.toml", 8))
    torch.set_num_threads(1)
    pretrain(config, tmp_path / "ref")
    checkpoint = size_of(tmp_path / "ref" / "final")
    # room for about 2.5 checkpoints: step-1 and best fit, the write of step-2 runs out of space
    tmpfs.mount(int(2.5 * checkpoint) + 64 * 1024)
    run = tmpfs.path / "run"
    with pytest.raises(Exception, match="No space left on device") as failure:
        pretrain(config, run)
    hidden = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert hidden == [".scratchlm-run.json"]  # the run's marker; no temporary directory left
    complete = [path for _, path in list_checkpoints(run)] + [run / "best"]
    assert len(complete) >= 2
    names = sorted(p.name for p in run.iterdir() if p.is_dir())
    assert names == sorted(p.name for p in complete)  # nothing that looks like a checkpoint but is not one
    for path in complete:
        load_training_checkpoint(path)  # every file still matches the sha256 recorded when it was written
    tmpfs.resize(64 * 1024 * 1024)  # free space: the run resumes and ends where the reference ended
    pretrain(config, run, resume=True)
    expected, got = (
        load_file(str(tmp_path / "ref/final/model.safetensors")),
        load_file(str(run / "final/model.safetensors")),
    )
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert isinstance(failure.value, CheckpointError), type(failure.value)
    assert "previous checkpoints are untouched" in str(failure.value)


def test_prepare_on_a_full_disk_is_one_line_and_keeps_the_old_output(
    tmp_path: Path, tmpfs: Tmpfs, corpus: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    small = tmp_path / "small.txt"
    small.write_text(corpus["text"].read_text(encoding="utf-8")[:3000], encoding="utf-8")
    tmpfs.mount(96 * 1024)  # the small corpus fits, the 40 kB one (plus its spill file) does not
    out = tmpfs.path / "prepared"
    assert scratchlm(["prepare", str(small), "--out", str(out), "-t", str(corpus["tokenizer"])]) == 0
    before = np.asarray(load_prepared(out, "train"))
    capsys.readouterr()
    code = scratchlm(
        ["prepare", str(corpus["text"]), "--out", str(out), "-t", str(corpus["tokenizer"]), "--overwrite"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: ") and "No space left on device" in err
    assert sorted(p.name for p in tmpfs.path.iterdir()) == ["prepared"]  # no temporary directory left
    assert np.array_equal(np.asarray(load_prepared(out, "train")), before)  # verified by sha256, unchanged
