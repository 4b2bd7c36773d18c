"""Lion matches its published update rule and is usable through the optimizers registry."""

from __future__ import annotations

import torch
from scratchlm_lion import Lion

from llm_core import get_registry


def test_one_step_matches_the_paper_update() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    p.grad = torch.tensor([0.5, -0.1, 0.0])
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    opt.step()
    # m = 0: update = sign(0.1 * g); p = p * (1 - 0.1 * 0.5) - 0.1 * update
    expected = torch.tensor([1.0, -2.0, 3.0]) * 0.95 - 0.1 * torch.tensor([1.0, -1.0, 0.0])
    assert torch.allclose(p.detach(), expected)
    assert torch.allclose(opt.state[p]["exp_avg"], 0.01 * torch.tensor([0.5, -0.1, 0.0]))


def test_registered_as_lion_and_built_like_the_trainer_builds_it() -> None:
    from llm_train import build_optimizer

    entry = get_registry("optimizers")["lion"]
    assert entry.plugin == "lion"
    model = torch.nn.Linear(4, 2)
    opt = build_optimizer("lion", model, lr=1e-3, weight_decay=0.1)
    assert isinstance(opt, Lion)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]  # matrices decay, biases do not


def test_pretrain_with_lion(tmp_path) -> None:
    from llm_core.cli import main
    from llm_data import BPETokenizer

    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    BPETokenizer().save(tmp_path / "bytes.json")
    args = [
        "pretrain",
        "--data",
        str(text),
        "--tokenizer",
        str(tmp_path / "bytes.json"),
        "--optimizer",
        "lion",
    ]
    args += ["--lr", "1e-3", "--max-steps", "3", "--batch-size", "2", "--context-length", "16"]
    args += ["--out", str(tmp_path / "run"), "--set", "progress=false", "--set", 'model={"n_layers":1}']
    assert main(args) == 0
    config = (tmp_path / "run" / "train_config.json").read_text()
    assert '"optimizer": "lion"' in config and (tmp_path / "run" / "final" / "model.safetensors").is_file()
