"""`scratchlm pretrain --init MODEL`: continued pretraining from existing weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llm_core.cli import main
from llm_core.errors import ConfigError
from llm_data import get_tokenizer
from llm_model import load_pretrained
from llm_train.config import TrainConfig
from llm_train.demo import run_demo
from llm_train.pretrain import build_trainer


def _loss_on(model_dir: Path, text: str) -> float:
    """Mean next-token loss of the checkpoint in ``model_dir`` over ``text``'s full windows."""
    model = load_pretrained(model_dir)
    tokenizer = get_tokenizer(model.checkpoint_config["tokenizer"])
    ids = torch.tensor(tokenizer.encode(text))
    n = 64
    windows = ids[: (len(ids) - 1) // n * n + 1]
    inputs = windows[:-1].view(-1, n)  # (windows, n)
    targets = windows[1:].view(-1, n)
    with torch.no_grad():
        logits = model(inputs)  # (windows, n, vocab)
        return float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()))


def _description(model_dir: Path) -> dict[str, object]:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    model = load_pretrained(model_dir)
    return {
        "config": {k: v for k, v in config.items() if k not in {"checksums", "sha256"}},
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def test_continuing_the_demo_model_on_the_verdict_lowers_its_loss(
    scratchlm_test_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = run_demo(tmp_path / "demo", max_steps=5, echo=lambda _: None)
    base = demo.out_dir / "run" / "final"
    verdict = scratchlm_test_data / "the-verdict.txt"
    text = verdict.read_text(encoding="utf-8")
    before = _loss_on(base, text)
    out = tmp_path / "continued"
    args = ["pretrain", "--init", str(base), "--data", str(verdict), "--out", str(out)]
    args += ["--max-steps", "12", "--batch-size", "4", "--context-length", "64", "--lr", "2e-3"]
    args += ["--set", "progress=false", "--set", "eval_every=0", "--json"]
    capsys.readouterr()  # the demo's own lines
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 12
    after = _loss_on(out / "final", text)
    assert after < before - 0.1, (before, after)
    # the same model: config (tokenizer included) and parameter count unchanged
    assert _description(out / "final") == _description(base)
    saved = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    assert saved["init"] == str(base) and saved["preset"] is None
    assert saved["tokenizer"] == json.loads((base / "config.json").read_text())["tokenizer"]


def test_init_resumes_like_any_run(scratchlm_test_data: Path, tmp_path: Path) -> None:
    verdict = scratchlm_test_data / "the-verdict.txt"
    start = tmp_path / "start"
    common = ["--data", str(verdict), "--batch-size", "2", "--context-length", "16"]
    common += ["--set", "progress=false", "--set", 'model={"n_layers": 1, "emb_dim": 32, "n_heads": 2}']
    assert main(["pretrain", *common, "--out", str(start), "--max-steps", "2"]) == 0
    base = start / "final"
    cont = ["pretrain", "--init", str(base), "--data", str(verdict), "--batch-size", "2"]
    cont += ["--context-length", "16", "--set", "progress=false", "--checkpoint-every", "2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*cont, "--out", str(straight), "--max-steps", "4"]) == 0
    assert main([*cont, "--out", str(resumed), "--max-steps", "2"]) == 0
    assert main([*cont, "--out", str(resumed), "--max-steps", "4", "--resume"]) == 0
    a = load_pretrained(straight / "final").state_dict()
    b = load_pretrained(resumed / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_refuses_model_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "text.txt").write_text("hello world " * 200, encoding="utf-8")
    start = tmp_path / "start"
    tiny = TrainConfig(
        data=str(tmp_path / "text.txt"), model={"n_layers": 1, "emb_dim": 32, "n_heads": 2}, max_steps=1
    )
    build_trainer(tiny, start).fit()
    with pytest.raises(ConfigError, match="model overrides"):
        build_trainer(
            TrainConfig(data=tiny.data, init=str(start / "final"), model={"n_layers": 2}), tmp_path / "x"
        )
    capsys.readouterr()
    assert (
        main(["pretrain", "--init", str(start / "final"), "--preset", "small", "--out", str(tmp_path / "y")])
        == 2
    )
    assert "leave out --arch, --preset and --tokenizer" in capsys.readouterr().err
