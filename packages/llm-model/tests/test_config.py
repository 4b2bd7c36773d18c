"""GPTConfig validation, presets, build_model and the book's parameter counts."""

from __future__ import annotations

import pytest
import torch

from llm_core.errors import ConfigError, PluginError
from llm_model import PRESETS, GPTConfig, GPTModel, build_model, count_parameters, get_preset, model_info


def test_defaults_are_the_books_124m_config() -> None:
    config = GPTConfig()
    assert (config.vocab_size, config.context_length, config.emb_dim) == (50257, 1024, 768)
    assert (config.n_heads, config.n_layers, config.drop_rate, config.qkv_bias) == (12, 12, 0.1, False)


def test_n_heads_must_divide_emb_dim_and_the_error_lists_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"n_heads=5 does not divide emb_dim=768; choose n_heads from 1, 2, 3"
    ):
        GPTConfig(n_heads=5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("vocab_size", 0, "vocab_size: expected a positive integer"),
        ("n_layers", -1, "n_layers: expected a positive integer"),
        ("context_length", 2.5, "context_length: expected a positive integer"),
        ("drop_rate", 1.0, r"drop_rate: expected a number in \[0, 1\)"),
        ("qkv_bias", "yes", "qkv_bias: expected true or false"),
        ("n_kv_heads", 5, "n_kv_heads=5 does not divide n_heads=12"),
        ("attention", "flash9", "attention: unknown backend 'flash9'; choose from naive, sdpa"),
    ],
)
def test_bad_values_raise_config_error(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GPTConfig(**{field: value})


def test_presets_and_unknown_preset() -> None:
    assert {"gpt2-124m", "gpt2-355m", "gpt2-774m", "gpt2-1558m", "tiny", "small"} <= set(PRESETS)
    tiny = get_preset("tiny")
    assert (tiny.n_layers, tiny.n_heads, tiny.emb_dim, tiny.context_length) == (2, 4, 64, 64)
    assert get_preset("gpt2-355m", drop_rate=0.0).drop_rate == 0.0
    with pytest.raises(
        ConfigError, match="unknown preset 'gpt2-7b'; available presets: gpt2-124m, gpt2-355m"
    ):
        get_preset("gpt2-7b")


def test_build_model_from_registry_with_overrides() -> None:
    model = build_model("gpt2", "tiny", vocab_size=100)
    assert isinstance(model, GPTModel)
    assert model.architecture == "gpt2"
    assert model.config.vocab_size == 100 and model.config.emb_dim == 64
    with pytest.raises(
        ConfigError, match="unknown preset 'huge' for architecture 'gpt2'; available: gpt2-124m"
    ):
        build_model("gpt2", "huge")
    with pytest.raises(ConfigError, match="unknown key"):
        build_model("gpt2", "tiny", emb_size=3)


def test_unknown_architecture_is_a_plugin_error_listing_the_known_ones() -> None:
    with pytest.raises(PluginError, match=r"unknown architecture 'llama9'; available: .*gpt2"):
        build_model("llama9")


@pytest.mark.parametrize(
    ("preset", "total", "without_head", "megabytes"),
    [
        ("gpt2-124m", 163_009_536, 124_412_160, 621.83),  # book, chapter 4
        ("gpt2-355m", 406_212_608, 354_749_440, 1549.58),  # chapter 4 exercise 4.2
        ("gpt2-774m", 838_220_800, 773_891_840, 3197.56),
        ("gpt2-1558m", 1_637_792_000, 1_557_380_800, 6247.68),
    ],
)
def test_book_parameter_counts(preset: str, total: int, without_head: int, megabytes: float) -> None:
    with torch.device("meta"):
        model = build_model("gpt2", preset)
    assert not model.config.qkv_bias and model.config.context_length == 1024
    info = model_info(model)
    assert (info["parameters"], info["parameters_without_head"]) == (total, without_head)
    assert info["size_mb_fp32"] == megabytes
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_tied_weights_are_counted_once() -> None:
    model = build_model("gpt2", "tiny", tie_weights=True)
    assert model.out_head.weight is model.tok_emb.weight
    info = model_info(model)
    assert info["parameters"] == info["parameters_without_head"]
    untied = build_model("gpt2", "tiny")
    assert model_info(untied)["parameters"] - info["parameters"] == 50257 * 64


def _dropout_draws_like_the_books_torch() -> bool:
    """Whether torch's CPU dropout draws the masks the book's logits were printed with.

    torch 2.5 draws other masks from the same seed (the weights' init is the same), so the
    training-mode logits below cannot match there; the model is not at fault.
    """
    with torch.random.fork_rng(devices=[]):  # leaves the global generator as it was
        torch.manual_seed(1)
        mask = torch.nn.functional.dropout(torch.ones(8), 0.5, training=True)
    return mask.tolist() == [2.0, 2.0, 2.0, 2.0, 0.0, 2.0, 2.0, 0.0]


@pytest.mark.skipif(
    not _dropout_draws_like_the_books_torch(),
    reason=f"torch {torch.__version__} draws other dropout masks from a seed than the book's torch did",
)
def test_pytorch_init_with_the_books_seed_gives_the_books_chapter_4_logits() -> None:
    """Chapter 4: seed 123, GPT_CONFIG_124M, model(batch) in training mode prints these logits."""
    batch = torch.tensor([[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]])  # "Every effort moves you", ...
    torch.manual_seed(123)
    model = build_model("gpt2", "gpt2-124m", init="pytorch")
    out = model(batch)  # (2, 4, 50257); dropout active, as in the book
    book_first = [[0.3613, 0.4222, -0.0711], [-0.1792, -0.5660, -0.9485], [0.7120, 0.0332, 0.1085]]
    book_last = [[0.3483, 0.4661, -0.2838], [0.0477, 0.5181, -0.3168], [0.1018, -0.4327, -0.2553]]
    torch.testing.assert_close(out[0, :3, :3], torch.tensor(book_first), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, :3, -3:], torch.tensor(book_last), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1, 3, :3], torch.tensor([-0.1565, 0.3926, 0.3288]), atol=1e-4, rtol=0)
    assert model.tok_emb.weight.std() > 0.9  # torch's N(0, 1) embeddings, not GPT-2's N(0, 0.02)


def test_gpt2_init_and_unknown_init_scheme() -> None:
    model = build_model("gpt2", "tiny")
    assert abs(model.tok_emb.weight.std().item() - 0.02) < 0.002
    with pytest.raises(ConfigError, match="init: expected one of gpt2, pytorch, got 'xavier'"):
        build_model("gpt2", "tiny", init="xavier")
