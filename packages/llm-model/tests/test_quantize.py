"""``quantize_model``: int8 and bf16 weights for every architecture, the tied head, errors, quality."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llm_core import hookimpl
from llm_core.cli import main
from llm_core.errors import ConfigError
from llm_model import QUANTIZE_MODES, build_model, generate, quantize_model, save_pretrained
from llm_model.quantize import quantize_option

TINY = {"vocab_size": 97, "context_length": 32, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0}
#: What each built-in architecture needs on top of TINY.
ARCH_OVERRIDES: dict[str, dict[str, object]] = {
    "mistral": {"n_kv_heads": 2},
    "phi": {"partial_rotary_factor": 0.5},
}


def _tiny(arch: str, **overrides: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(arch, **{**TINY, **overrides}).eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama", "mistral", "phi"])
@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_every_architecture_is_quantized_and_generates(arch: str, mode: str) -> None:
    model = _tiny(arch, **ARCH_OVERRIDES.get(arch, {}))
    idx = torch.randint(0, TINY["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(idx)
    assert quantize_model(model, mode) is model
    assert model.quantization == mode
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    if mode == "int8":
        assert linears == []  # every linear layer, the head included, is int8
        assert model.out_head.weight().dtype == torch.qint8
    else:
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        logits = model(idx).float()
    assert (logits - reference).abs().max() < 0.1 * reference.abs().max()
    assert generate(model, idx, 5).shape == (2, 17)


def test_int8_quantizes_the_tied_head_and_keeps_the_embedding() -> None:
    model = _tiny("gpt2", tie_weights=True)
    embedding = model.tok_emb.weight.detach().clone()
    idx = torch.arange(10)[None]
    quantize_model(model, "int8")
    assert type(model.out_head) is not nn.Linear
    assert model.tok_emb.weight.dtype == torch.float32
    assert torch.equal(model.tok_emb.weight, embedding)  # lookups read the float32 rows
    head = model.out_head.weight().dequantize()
    assert torch.allclose(head, embedding, atol=embedding.abs().max().item() / 127)
    with torch.no_grad():
        loss = model(idx, targets=idx)  # the loss goes through the int8 head too
    assert math.isfinite(loss.item())


def test_none_leaves_the_model_as_it_is() -> None:
    model = _tiny("gpt2")
    state = copy.deepcopy(model.state_dict())
    quantize_model(model, "none")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_int8_after_bf16_loading_runs_in_float32() -> None:
    model = _tiny("gpt2").to(torch.bfloat16)  # as --dtype bf16 loads it
    quantize_model(model, "int8")
    assert model.tok_emb.weight.dtype == torch.float32
    assert generate(model, torch.arange(4), 3).shape == (7,)


def test_unknown_mode_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"--quantize: expected one of none, int8, bf16, found 'int4'"):
        quantize_model(_tiny("gpt2"), "int4")
    assert QUANTIZE_MODES == ("none", "int8", "bf16")


def test_a_command_option_reaches_loaders_deep_inside_plugins() -> None:
    with quantize_option("bf16"):
        with quantize_option("int8"):
            assert quantize_model(_tiny("gpt2")).quantization == "int8"
        assert quantize_model(_tiny("gpt2")).quantization == "bf16"
    assert not hasattr(quantize_model(_tiny("gpt2")), "quantization")  # none: as loaded
    refused = pytest.raises(ConfigError, match=r"--quantize: expected one of none, int8, bf16, found 'fp8'")
    with refused, quantize_option("fp8"):
        pass


def test_int8_on_a_device_without_kernels_is_refused() -> None:
    with torch.device("meta"):
        model = build_model("gpt2", **TINY)
    with pytest.raises(
        ConfigError, match=r"int8 linear kernels run on the CPU only, but the model is on meta;"
    ):
        quantize_model(model, "int8")


def test_quantizing_twice_another_way_is_refused() -> None:
    model = quantize_model(_tiny("gpt2"), "bf16")
    assert quantize_model(model, "bf16") is model
    with pytest.raises(ConfigError, match=r"already quantized \(bf16\)"):
        quantize_model(model, "int8")
    assert quantize_model(model, "none").quantization == "bf16"  # none leaves it as it is


# Quality: a small model trained here on Python's own documentation (bytes), measured on the
# held-out tenth of it: every one of its ~46,000 positions, fp32 against each mode.
QUALITY = {
    "vocab_size": 256,
    "context_length": 32,
    "emb_dim": 48,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
}
#: (perplexity within this fraction of fp32's, top-1 agreement with fp32 at least this) per mode.
BARS = {"int8": (0.02, 0.98), "bf16": (0.01, 0.98)}


def _windows(data: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``data`` cut into ``(n, width)`` inputs and their next-token targets."""
    n = (len(data) - 1) // width
    return data[: n * width].view(n, width), data[1 : n * width + 1].view(n, width)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Matrices this small gain nothing from threads, and lose much on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(one_thread: None) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tied-head GPT-2 trained for 250 steps (a few seconds), and the held-out inputs and targets."""
    text = "\n".join(topics[key] for key in sorted(topics)).encode()
    data = torch.tensor(list(text), dtype=torch.long)
    split = len(data) * 9 // 10
    train, held = data[:split], data[split:]
    torch.manual_seed(0)
    model = build_model("gpt2", **QUALITY, tie_weights=True)
    steps, batch, width = 250, 16, QUALITY["context_length"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(train) - width - 1, (batch,), generator=generator).tolist()
        x = torch.stack([train[i : i + width] for i in starts])
        y = torch.stack([train[i + 1 : i + width + 1] for i in starts])
        loss = model(x, targets=y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    inputs, targets = _windows(held, width)
    return model.eval(), inputs, targets


def _logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(rows).float() for rows in inputs.split(64)])  # (n, width, vocab)


def _perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return math.exp(F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item())


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_quality_against_fp32_on_held_out_text(
    trained: tuple[nn.Module, torch.Tensor, torch.Tensor], mode: str
) -> None:
    model, inputs, targets = trained
    reference = _logits(model, inputs)
    fp32 = _perplexity(reference, targets)
    assert fp32 < 20  # trained (about 11): bytes of English text, not the 256 of a uniform guess
    logits = _logits(quantize_model(copy.deepcopy(model), mode), inputs)
    max_delta, min_agreement = BARS[mode]
    delta = _perplexity(logits, targets) / fp32 - 1
    assert abs(delta) <= max_delta, f"{mode}: perplexity {delta:+.3%} from fp32's"
    agreement = (logits.argmax(-1) == reference.argmax(-1)).float().mean().item()
    assert targets.numel() >= 1000
    assert agreement >= min_agreement, f"{mode}: top-1 agreement {agreement:.2%} with fp32"


class CharTokenizerPlugin:
    """Registers the conftest's char tokenizer as 'char' (llm-data is not a dependency of llm-model)."""

    def __init__(self, tokenizer_class: type) -> None:
        self.tokenizer_class = tokenizer_class

    @hookimpl
    def register_tokenizers(self, register: Any) -> None:
        register("char", self.tokenizer_class)


def test_generate_takes_quantize(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tokenizer: Any, register_plugin: Any
) -> None:
    register_plugin(CharTokenizerPlugin(type(tokenizer)), "char-tokenizer")
    checkpoint = save_pretrained(_tiny("gpt2"), tmp_path / "ckpt", tokenizer="char")
    argv = ["generate", str(checkpoint), "Hello", "--max-new-tokens", "6", "--json"]
    for mode in QUANTIZE_MODES:
        assert main([*argv, "--quantize", mode]) == 0
        assert json.loads(capsys.readouterr().out)["prompt"] == "Hello"
    assert main([*argv, "--quantize", "int4"]) == 2
    err = capsys.readouterr().err
    assert "--quantize: expected one of none, int8, bf16, found 'int4'" in err and err.count("\n") == 1
