"""The Trainer: learning, metrics, checkpoints, exact resume and every failure path."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_setup import tiny_config, weights

from llm_core.errors import CheckpointError, ConfigError, DataError
from llm_model import build_model
from llm_train import Trainer, TrainingError, TrainingInterrupted, read_metrics
from llm_train.checkpoint import list_checkpoints, load_training_checkpoint
from llm_train.tasks import LanguageModeling


def make_trainer(tokens: np.ndarray, run_dir: Path, **overrides) -> Trainer:
    config = tiny_config(**overrides)
    torch.manual_seed(config.seed)
    model = build_model(config.arch, preset=config.preset, **config.model)
    split = int(len(tokens) * 0.9)
    return Trainer(model, config, train_tokens=tokens[:split], val_tokens=tokens[split:], run_dir=run_dir)


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_training_lowers_loss_and_writes_metrics(tokens, tmp_path: Path) -> None:
    result = make_trainer(tokens, tmp_path / "run", max_steps=40, eval_every=10).fit()
    assert result.val_loss < result.initial_val_loss - 1.0
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 10, 20, 30, 40]
    train = [r for r in records if r["kind"] == "train"]
    assert {"step", "tokens_seen", "epoch", "train_loss", "lr", "grad_norm", "tokens_per_s"} <= set(train[0])
    assert train[-1]["tokens_seen"] == 40 * 4 * 16
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["max_steps"] == 40


def test_same_seed_same_weights(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "a").fit()
    make_trainer(tokens, tmp_path / "b").fit()
    assert_same_weights(tmp_path / "a" / "final", tmp_path / "b" / "final")


def test_keeps_last_k_and_best(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "run", max_steps=16, keep_last=2).fit()
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [12, 16]
    assert (tmp_path / "run" / "best" / "trainer_state.json").is_file()
    assert not list((tmp_path / "run").glob(".*tmp*"))


class CrashAt:
    """A callback that raises at a given step, like a crash mid-run."""

    def __init__(self, step: int, exc: BaseException) -> None:
        self.step, self.exc = step, exc

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        if trainer.step == self.step:
            raise self.exc


@pytest.mark.parametrize("drop_rate", [0.0, 0.2])
def test_resume_after_crash_is_bitwise_identical(tokens, tmp_path: Path, drop_rate: float) -> None:
    model_cfg = {**tiny_config().model, "drop_rate": drop_rate}
    make_trainer(tokens, tmp_path / "full", model=model_cfg).fit()
    crashed = make_trainer(tokens, tmp_path / "crash", model=model_cfg)
    crashed.callbacks.append(CrashAt(6, RuntimeError("power cut")))
    with pytest.raises(RuntimeError):
        crashed.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "crash")] == [4]
    make_trainer(tokens, tmp_path / "crash", model=model_cfg).fit(resume=True)
    assert_same_weights(tmp_path / "full" / "final", tmp_path / "crash" / "final")
    steps = [r["step"] for r in read_metrics(tmp_path / "crash" / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == sorted(set(steps))  # no duplicated lines after resume


class SignalAt:
    """A callback that sends this process a real signal at a given step, like Ctrl-C."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        if trainer.step == self.step:
            os.kill(os.getpid(), self.signum)


def test_ctrl_c_saves_a_checkpoint_and_resume_matches(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "full").fit()
    run = make_trainer(tokens, tmp_path / "int")
    run.callbacks.append(SignalAt(6, signal.SIGINT))
    with pytest.raises(TrainingInterrupted, match=r"interrupted \(SIGINT\) at step 6"):
        run.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "int")][-1] == 6
    make_trainer(tokens, tmp_path / "int").fit(resume=True)
    assert_same_weights(tmp_path / "full" / "final", tmp_path / "int" / "final")


def test_nan_loss_stops_and_keeps_last_checkpoint(tokens, tmp_path: Path, monkeypatch) -> None:
    trainer = make_trainer(tokens, tmp_path / "run")
    original = LanguageModeling.loss

    def poisoned(self, model, batch):
        loss = original(self, model, batch)
        return loss * float("nan") if trainer.step >= 5 else loss

    monkeypatch.setattr(LanguageModeling, "loss", poisoned)
    with pytest.raises(
        TrainingError, match=r"loss became nan at step 6; the last good checkpoint is .*step-0000004"
    ):
        trainer.fit()
    load_training_checkpoint(tmp_path / "run" / "step-0000004")  # intact and verifiable


def test_resume_with_different_config_says_what_differs(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "run", max_steps=4).fit()
    with pytest.raises(ConfigError, match=r"lr: 0.003 -> 0.01"):
        make_trainer(tokens, tmp_path / "run", max_steps=8, lr=1e-2).fit(resume=True)


def test_refuses_to_overwrite_a_run(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "run", max_steps=4).fit()
    with pytest.raises(ConfigError, match="already holds checkpoints; pass --resume"):
        make_trainer(tokens, tmp_path / "run", max_steps=4).fit()


def test_overwrite_starts_a_run_again_without_the_old_checkpoints(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "run", max_steps=8).fit()
    make_trainer(tokens, tmp_path / "run", max_steps=4).fit(overwrite=True)
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [4]  # step-8 would win a resume
    assert json.loads((tmp_path / "run" / "best" / "trainer_state.json").read_text())["step"] == 4
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [2, 4]


def test_a_symlinked_best_is_replaced_and_what_it_points_to_is_untouched(tokens, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep")
    run = tmp_path / "run"
    make_trainer(tokens, run, max_steps=4).fit()
    shutil.rmtree(run / "best")
    (run / "best").symlink_to(elsewhere, target_is_directory=True)
    make_trainer(tokens, run, max_steps=12).fit(resume=True)  # the run goes on
    assert not (run / "best").is_symlink()
    assert json.loads((run / "best" / "trainer_state.json").read_text())["step"] == 12
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.txt"]
    assert [p.name for p in run.glob(".*")] == [".scratchlm-run.json"]  # no renamed-aside link left


def test_resume_on_another_number_of_processes_is_refused(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "run", max_steps=4).fit()
    state_path = tmp_path / "run" / "step-0000004" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    assert state["world_size"] == 1
    resumed = make_trainer(tokens, tmp_path / "run", max_steps=8)
    resumed.dist.world_size = 2  # as under torchrun --nproc-per-node 2 (the real one: test_distributed)
    with pytest.raises(ConfigError, match=r"written by 1 process\(es\) .* this run has 2"):
        resumed.fit(resume=True)


def test_resume_without_checkpoint(tokens, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        make_trainer(tokens, tmp_path / "empty").fit(resume=True)


def test_data_smaller_than_one_window(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"has 9 tokens, fewer than one window needs \(17"):
        make_trainer(np.arange(10), tmp_path / "run")


def test_unwritable_output_fails_before_training(tokens, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match="run: cannot create the directory"):
        make_trainer(tokens, tmp_path / "file" / "run").fit()


def test_disk_full_during_checkpoint_keeps_previous(tokens, tmp_path: Path, monkeypatch) -> None:
    import llm_train.checkpoint as checkpoint

    trainer = make_trainer(tokens, tmp_path / "run")
    real_save = checkpoint.save_file

    def full_disk(tensors, path):
        if trainer.step >= 8:
            raise OSError(28, "No space left on device")
        return real_save(tensors, path)

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(
        CheckpointError, match="No space left on device; the previous checkpoints are untouched"
    ):
        trainer.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4]
    load_training_checkpoint(tmp_path / "run" / "step-0000004")
    assert not list((tmp_path / "run").glob(".*tmp*"))


def test_corrupt_checkpoint_is_detected(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "run", max_steps=4).fit()
    target = tmp_path / "run" / "step-0000004" / "optimizer.safetensors"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors: checksum mismatch"):
        load_training_checkpoint(target.parent)


def test_plot_from_metrics(tokens, tmp_path: Path) -> None:
    from llm_train import plot_runs

    make_trainer(tokens, tmp_path / "a", max_steps=8).fit()
    make_trainer(tokens, tmp_path / "b", max_steps=8, lr=1e-3).fit()
    out = plot_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "loss.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dataset_loader_reshuffles_per_epoch_and_resumes() -> None:
    from llm_train import DatasetLoader

    def collate(rows):
        return (torch.tensor(rows),)

    loader = DatasetLoader(list(range(10)), batch_size=3, seed=1, collate=collate)
    first_epoch = [next(loader)[0].tolist() for _ in range(3)]
    seen = [i for batch in first_epoch for i in batch]
    assert len(seen) == len(set(seen)) == 9  # no repeats within an epoch
    state = loader.state_dict()
    expected = [next(loader)[0].tolist() for _ in range(4)]
    assert loader.epoch == 2  # 3 batches of 3 per epoch of 10
    restored = DatasetLoader(list(range(10)), batch_size=3, seed=1, collate=collate)
    restored.load_state_dict(state)
    assert [next(restored)[0].tolist() for _ in range(4)] == expected
    with pytest.raises(DataError, match="fewer than one batch"):
        DatasetLoader([1, 2], batch_size=3, seed=0, collate=collate)


def test_a_misspelled_data_loader_key_is_named() -> None:
    from llm_train import DatasetLoader

    loader = DatasetLoader(list(range(10)), batch_size=3, seed=1, collate=lambda rows: (torch.tensor(rows),))
    with pytest.raises(CheckpointError, match=r"unknown key 'postion' \(did you mean 'position'\?\)"):
        loader.load_state_dict({"epoch": 0, "postion": 3})


def rewrite_state(path: Path, change, *, reseal: bool) -> None:
    """Edit a checkpoint's trainer_state.json; ``reseal`` recomputes its own sha256 (a deliberate edit)."""
    from llm_train.checkpoint import _state_digest

    state = json.loads(path.read_text())
    change(state)
    if reseal:
        state["sha256"] = _state_digest(state)
    path.write_text(json.dumps(state))


@pytest.mark.parametrize("reseal", [False, True], ids=["flipped", "resealed"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.__setitem__("fmrmat_version", s.pop("format_version")),
            r"unknown key 'fmrmat_version' \(did you mean 'format_version'\?\); missing key 'format_version'",
        ),
        (lambda s: s.__setitem__("note", 1), r"unknown key 'note'"),
        (lambda s: s.pop("world_size"), r"missing key 'world_size'"),
        (lambda s: s["rng"].__setitem__("pyton", s["rng"].pop("python")), r"'rng': unknown key 'pyton'"),
        (lambda s: s.__setitem__("format_version", 9), r"format_version 9 is not one this version reads"),
    ],
    ids=["misspelled", "unknown", "missing", "nested", "future-format"],
)
def test_every_trainer_state_key_is_checked(tokens, tmp_path: Path, change, message, reseal: bool) -> None:
    make_trainer(tokens, tmp_path / "run", max_steps=4).fit()
    checkpoint = tmp_path / "run" / "step-0000004"
    rewrite_state(checkpoint / "trainer_state.json", change, reseal=reseal)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_training_checkpoint(checkpoint)
    assert "trainer_state.json" in str(caught.value)


def test_a_misspelled_key_in_the_recorded_config_stops_the_resume(tokens, tmp_path: Path) -> None:
    make_trainer(tokens, tmp_path / "run", max_steps=4).fit()
    checkpoint = tmp_path / "run" / "step-0000004"
    change = lambda s: s["config"].__setitem__("lr_", s["config"].pop("lr"))  # noqa: E731
    rewrite_state(checkpoint / "trainer_state.json", change, reseal=True)
    with pytest.raises(CheckpointError, match=r"trainer_state.json: 'config': unknown key 'lr_'"):
        make_trainer(tokens, tmp_path / "run", max_steps=8).fit(resume=True)


def test_train_config_json_keys_are_checked(tmp_path: Path) -> None:
    from llm_train.config import read_train_config

    (tmp_path / "train_config.json").write_text(json.dumps({**tiny_config().to_dict(), "bach_size": 3}))
    with pytest.raises(ConfigError, match=r"train_config.json: unknown key 'bach_size' \(did you mean"):
        read_train_config(tmp_path)
    (tmp_path / "train_config.json").write_text(json.dumps({"lr": "fast"}))
    with pytest.raises(ConfigError, match=r"train_config.json: 'lr': expected a number"):
        read_train_config(tmp_path)
