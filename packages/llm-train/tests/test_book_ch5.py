"""The book's chapter-5 data pipeline through the Trainer: windows, epochs, evaluation and RNG order.

The reference is the book's own loop (``train_model_simple`` / ``evaluate_model`` /
``calc_loss_loader``) over torch's ``DataLoader(shuffle=True, drop_last=True)``, written
out here as the book writes it. The Trainer with ``sampling="windows"``,
``eval_data="loader"`` and ``eval_schedule="book"`` must give the same evaluations and
bitwise the same weights: the same windows in the same order, and torch's global
generator consumed in the same order (initialisation, then dropout interleaved with the
DataLoaders' draws).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_setup import synthetic_tokens, tiny_config
from torch.utils.data import DataLoader, Dataset

from llm_core.errors import ConfigError
from llm_data.loaders import StridedWindowLoader
from llm_model import build_model
from llm_train import TrainConfig, Trainer, load_train_config
from llm_train.pretrain import load_training_tokens

REPO = Path(__file__).resolve().parents[3]
MODEL = {"vocab_size": 96, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2}
MODEL |= {"drop_rate": 0.1, "qkv_bias": False, "init": "pytorch"}
BATCH, CONTEXT, EPOCHS, EVAL_FREQ, EVAL_ITER = 2, 16, 2, 5, 5


class BookWindows(Dataset):
    """The book's GPTDatasetV1 over token ids: every ``stride``-th window, targets shifted by one."""

    def __init__(self, token_ids: list[int], max_length: int, stride: int) -> None:
        self.input_ids, self.target_ids = [], []
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(torch.tensor(token_ids[i : i + max_length]))
            self.target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[idx], self.target_ids[idx]


def book_run(train: list[int], val: list[int]) -> tuple[list[tuple[int, float, float]], torch.nn.Module]:
    """Chapter 5's listing 5.3 with its loaders; the loss is the model's own (as the Trainer's)."""
    torch.manual_seed(123)
    model = build_model("gpt2", **MODEL)
    train_loader = DataLoader(
        BookWindows(train, CONTEXT, CONTEXT), batch_size=BATCH, shuffle=True, drop_last=True, num_workers=0
    )
    val_loader = DataLoader(
        BookWindows(val, CONTEXT, CONTEXT), batch_size=BATCH, shuffle=False, drop_last=False, num_workers=0
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)

    def calc_loss_loader(data_loader: DataLoader, num_batches: int) -> float:
        num_batches, total = min(num_batches, len(data_loader)), 0.0
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i < num_batches:
                total += model(input_batch, targets=target_batch).item()
            else:
                break
        return total / num_batches

    evaluations, global_step = [], -1
    for _ in range(EPOCHS):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = model(input_batch, targets=target_batch)
            loss.backward()
            optimizer.step()
            global_step += 1
            if global_step % EVAL_FREQ == 0:
                model.eval()
                with torch.no_grad():
                    scores = (
                        calc_loss_loader(train_loader, EVAL_ITER),
                        calc_loss_loader(val_loader, EVAL_ITER),
                    )
                model.train()
                evaluations.append((global_step + 1, *scores))  # after global_step + 1 updates
    return evaluations, model


def book_config(**overrides: object) -> TrainConfig:
    settings: dict = dict(
        data="unused",
        preset=None,
        model=MODEL,
        batch_size=BATCH,
        epochs=EPOCHS,
        lr=4e-4,
        weight_decay=0.1,
        betas=[0.9, 0.999],
        decay_all=True,
        optimizer_options={"fused": False},
        grad_clip=0,
        sampling="windows",
        eval_data="loader",
        eval_schedule="book",
        eval_every=EVAL_FREQ,
        eval_batches=EVAL_ITER,
        checkpoint_every=0,
        progress=False,
        seed=123,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def trainer_run(run_dir: Path, train: list[int], val: list[int], **overrides: object) -> Trainer:
    config = book_config(**overrides)
    torch.manual_seed(config.seed)
    model = build_model("gpt2", **MODEL)
    return Trainer(model, config, run_dir=run_dir, train_tokens=np.array(train), val_tokens=np.array(val))


def evaluations(run_dir: Path) -> list[tuple[int, float, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in records if r["kind"] == "eval"]


@pytest.fixture
def split_tokens() -> tuple[list[int], list[int]]:
    tokens = np.random.default_rng(0).integers(0, 96, size=400).tolist()
    return tokens[:360], tokens[360:]  # 22 training windows (11 batches an epoch), 2 validation windows


def test_trainer_equals_the_books_loop(tmp_path: Path, split_tokens: tuple[list[int], list[int]]) -> None:
    train, val = split_tokens
    expected, book_model = book_run(train, val)
    trainer = trainer_run(tmp_path / "run", train, val)
    trainer.fit()
    got = evaluations(tmp_path / "run")
    assert trainer.step == EPOCHS * 11
    assert got[: len(expected)] == expected  # steps 1, 6, 11, ... and their losses, exactly
    assert [s for s, _, _ in got[len(expected) :]] == [trainer.step]  # plus the last step
    for name, value in book_model.state_dict().items():
        assert torch.equal(value, trainer.model.state_dict()[name]), name


def test_resume_mid_epoch_and_at_an_epoch_boundary_is_exact(
    tmp_path: Path, split_tokens: tuple[list[int], list[int]]
) -> None:
    train, val = split_tokens
    full = trainer_run(tmp_path / "full", train, val)
    full.fit()
    run_dir = tmp_path / "resumed"
    for stop in (7, 11, 15):  # mid-epoch, the end of epoch 1, mid-epoch 2
        trainer_run(run_dir, train, val, max_steps=stop, epochs=None).fit(resume=stop != 7)
    resumed = trainer_run(run_dir, train, val)
    resumed.fit(resume=True)
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    expected = evaluations(tmp_path / "full")
    steps = {step for step, _, _ in expected}  # the shortened runs also evaluated their last steps
    assert [e for e in evaluations(run_dir) if e[0] in steps] == expected


def test_strided_loader_state_round_trip() -> None:
    tokens = synthetic_tokens()[:300]
    torch.manual_seed(5)
    loader = StridedWindowLoader(tokens, batch_size=3, context_length=8, stride=6)
    for _ in range(20):  # into the 3rd pass (16 batches a pass)
        next(loader)
    state, rng = loader.state_dict(), torch.get_rng_state()
    expected = [next(loader) for _ in range(20)]
    torch.set_rng_state(rng)
    restored = StridedWindowLoader(tokens, batch_size=3, context_length=8, stride=6)
    restored.load_state_dict(json.loads(json.dumps(state)))
    for (x, y), (rx, ry) in zip(expected, (next(restored) for _ in range(20)), strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_unshuffled_windows_keep_the_last_batch() -> None:
    tokens = np.arange(100)
    loader = StridedWindowLoader(tokens, batch_size=4, context_length=10, shuffle=False, drop_last=False)
    batches = [next(loader) for _ in range(loader.batches_per_pass())]
    starts = [int(row[0]) for inputs, _ in batches for row in inputs]
    assert starts == list(range(0, 90, 10)) and len(batches[-1][0]) == 1  # 9 windows: 4 + 4 + 1
    assert torch.equal(batches[0][1][0], torch.arange(1, 11))  # targets shifted by one


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"stride": 4}, "sampling='windows'"),
        ({"shuffle": False}, "sampling='windows'"),
        ({"eval_data": "loader"}, "sampling='windows'"),
        ({"sampling": "windows", "stride": 0}, "stride=0"),
        ({"grad_clip": -1.0}, "grad_clip=-1.0"),
    ],
)
def test_settings_that_would_be_ignored_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_config(**settings)


def test_grad_clip_zero_turns_clipping_off(tmp_path: Path, tokens: np.ndarray) -> None:
    runs = {}
    for clip in (0.0, None):
        config = tiny_config(grad_clip=clip, max_steps=3, eval_every=0, checkpoint_every=0)
        torch.manual_seed(config.seed)
        model = build_model(config.arch, preset=config.preset, **config.model)
        Trainer(model, config, run_dir=tmp_path / str(clip), train_tokens=tokens).fit()
        runs[clip] = model.state_dict()
    assert all(torch.equal(runs[0.0][k], runs[None][k]) for k in runs[None])


def test_data_in_a_config_file_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "run.toml"
    path.write_text('data = "../corpus.txt"\n', encoding="utf-8")
    assert Path(load_train_config(path).data) == tmp_path / "corpus.txt"
    assert load_train_config(path, data="here.txt").data == "here.txt"  # --data: the working directory


def test_the_book_config_loads_the_books_settings() -> None:
    config = load_train_config(REPO / "examples" / "configs" / "book-ch5.toml")
    assert Path(config.data).name == "the-verdict.txt"
    assert (config.split, config.sampling, config.eval_data, config.eval_schedule) == (
        "characters",
        "windows",
        "loader",
        "book",
    )
    assert (config.batch_size, config.epochs, config.betas, config.grad_clip) == (2, 10, [0.9, 0.999], 0)
    assert config.model["init"] == "pytorch" and config.model["context_length"] == 256


def test_character_split_gives_the_books_token_counts() -> None:
    value = os.environ.get("SCRATCHLM_TEST_DATA")
    verdict = Path(value) / "the-verdict.txt" if value else None
    if verdict is None or not verdict.is_file():
        pytest.skip(f"book data not found (SCRATCHLM_TEST_DATA={value!r}); scratchlm download --out DIR")
    train, val = load_training_tokens(verdict, tokenizer="gpt2", val_fraction=0.1, split="characters")
    assert (len(train), len(val)) == (4612, 534)  # the book's; by tokens: 4630 / 515
    loader = StridedWindowLoader(train, batch_size=2, context_length=256)
    assert loader.batches_per_pass() == 9  # 18 windows: 90 steps in 10 epochs
