"""The GPT model of chapter 4 and the functions that build and describe models."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llm_attention import KVCache
from llm_core.config_io import config_from_dict
from llm_core.errors import ConfigError
from llm_model.blocks import Block, LayerNorm, TransformerBlock
from llm_model.config import GPTConfig
from llm_model.head_loss import linear_cross_entropy, masked_cross_entropy
from llm_model.init import init_weights

__all__ = [
    "GPTModel",
    "accepts_targets",
    "architecture_config",
    "build_model",
    "count_parameters",
    "model_info",
]

FP32_BYTES = 4
MB = 1024**2


class CausalLMMixin:
    """What every scratchlm decoder shares: its KV cache, the context-length check, the block loop, the head.

    Needs ``self.config`` (an instance of ``config_class``: ``n_layers``, ``kv_heads``,
    ``head_dim``, ``context_length``, ``tie_weights``), ``self.tok_emb``,
    ``self.trf_blocks`` (:class:`~llm_model.Block`\\ s), ``self.final_norm`` and ``self.out_head``.
    """

    config: Any
    config_class: Any
    tok_emb: nn.Embedding
    trf_blocks: nn.ModuleList
    final_norm: nn.Module
    out_head: nn.Linear
    #: ``forward(idx, targets=...)`` returns the mean next-token loss (see :func:`accepts_targets`).
    accepts_targets = True
    #: ``forward(idx, padding_mask=...)`` gives a left-padded row the logits it gets alone
    #: (checked by the conformance suite for every architecture that declares it).
    accepts_padding_mask = True

    def _checked_config(self, config: Any) -> Any:
        """``config`` if it is a ``config_class``, else a :class:`ConfigError` naming both."""
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__}: expected a {self.config_class.__name__}, got {type(config).__name__}"
            )
        return config

    def _initialise(self, scheme: str | None, **options: Any) -> None:
        """:func:`~llm_model.init_weights` with ``scheme`` (``None``: keep the layers' own); tie the head."""
        if scheme is not None:
            init_weights(self, scheme, **options)  # type: ignore[arg-type]
        if self.config.tie_weights:
            self.out_head.weight = self.tok_emb.weight

    def _embed(self, idx: torch.Tensor, past: int, positions: torch.Tensor | None) -> torch.Tensor:
        """Token ids ``(b, t)`` -> the first block's input ``(b, t, emb_dim)`` (see :meth:`forward`)."""
        raise NotImplementedError

    def forward(
        self,
        idx: torch.Tensor,
        *,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(b, t, vocab_size)`` of token ids ``(b, t)``, or the mean loss given ``targets``.

        ``positions`` (the new tokens' positions counting real tokens only) are
        computed when there is a ``padding_mask``; else ``None``, the cache
        offset onwards. ``_embed`` turns the ids into vectors, every block of
        ``trf_blocks`` is called with ``cache=``, ``padding_mask=`` and
        ``positions=``, then ``final_norm`` and the head.
        """
        b, t = idx.shape  # (b, t)
        past = self._past_length(t, cache)
        positions = None  # (b, t) with a padding mask: left padding does not shift positions
        if padding_mask is not None:
            positions = self._positions(b, t, past, padding_mask, idx.device)
        x = self._embed(idx, past, positions)  # (b, t, emb_dim)
        for i, block in enumerate(self.trf_blocks):
            layer_cache = None if cache is None else cache.layer(i)
            x = block(x, cache=layer_cache, padding_mask=padding_mask, positions=positions)
        x = self.final_norm(x)
        return self._head(x, targets)  # (b, t, vocab_size), or the loss given targets

    @staticmethod
    def _positions(
        b: int, t: int, past: int, padding_mask: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor:
        """The new tokens' positions: ``past …`` ``(t,)``, or ``(b, t)`` counting real tokens only."""
        if padding_mask is None:
            return torch.arange(past, past + t, device=device)  # (t,)
        if padding_mask.shape != (b, past + t):
            raise ConfigError(
                f"padding_mask: expected shape {(b, past + t)} (batch, cached + new tokens), "
                f"got {tuple(padding_mask.shape)}"
            )
        # Count real tokens only, so left padding does not shift positions.
        positions = padding_mask.long().cumsum(dim=-1) - 1  # (b, past + t)
        return positions.clamp(min=0)[:, past:]  # (b, t)

    def _head(self, x: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        """Logits ``(b, t, vocab)`` of the final hidden states, or their loss against ``targets``."""
        if targets is None:
            return self.out_head(x)  # (b, t, vocab_size)
        # The chunked head reads the Linear's weight itself, so a replaced head (a LoRA
        # adapter, ...) goes through its own forward. Under autocast with gradients the
        # chunked head would accumulate the weight's gradient in fp32 outside autocast;
        # the plain path keeps autocast's matmul dtype.
        plain_linear = type(self.out_head) is nn.Linear
        if not plain_linear or (torch.is_autocast_enabled(x.device.type) and x.requires_grad):
            return masked_cross_entropy(self.out_head(x), targets)  # scalar
        return linear_cross_entropy(x, self.out_head.weight, targets, self.out_head.bias)  # scalar

    def new_cache(
        self,
        batch_size: int,
        max_len: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences of up to ``max_len`` (default: context) tokens."""
        weight = self.tok_emb.weight
        return KVCache(
            self.config.n_layers,
            batch_size,
            self.config.kv_heads,
            max_len or self.config.context_length,
            self.config.head_dim,
            dtype=dtype or weight.dtype,
            device=device or weight.device,
        )

    def _past_length(self, t: int, cache: KVCache | None) -> int:
        """Tokens already in ``cache``; raises when ``t`` more would exceed the context."""
        past = 0 if cache is None else cache_length(cache)
        if past + t > self.config.context_length:
            raise ConfigError(
                f"sequence of {past + t} tokens (cached {past} + new {t}) exceeds "
                f"context_length={self.config.context_length}; crop the input to the last "
                f"{self.config.context_length} tokens"
            )
        return past


class GPTModel(CausalLMMixin, nn.Module):
    """GPT-2: token + position embeddings, ``n_layers`` transformer blocks, final norm, output head.

    ``forward(idx, *, targets=None, cache=None, padding_mask=None)`` maps token ids
    ``(b, t)`` to logits ``(b, t, vocab_size)``; given ``targets`` ``(b, t)`` (``-100``
    ignored) it returns the mean cross-entropy instead, computed chunk by chunk
    without holding every logit (:func:`~llm_model.head_loss.linear_cross_entropy`).
    With a ``cache`` (see :meth:`new_cache`), positions continue after the cached
    ones and every block appends its keys and values. ``padding_mask``
    ``(b, t_past + t)`` is true for real tokens and false for (left) padding: padded
    keys are never attended to and positions count real tokens only, so a
    left-padded row gets the logits it would get alone.
    """

    config_class = GPTConfig
    architecture = "gpt2"
    #: The class of the ``n_layers`` blocks, built as ``block_class(config)``: a subclass with its
    #: own :class:`~llm_model.Block` is a new architecture (``examples/plugins/scratchlm-parallel``).
    block_class: type[Block] = TransformerBlock

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = self._checked_config(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        self.trf_blocks = nn.ModuleList([self.block_class(config) for _ in range(config.n_layers)])
        self.final_norm = LayerNorm(config.emb_dim)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        # "pytorch": the new layers already have torch's defaults (the book's model); drawing
        # them again would change what a seed gives.
        self._initialise("gpt2" if config.init == "gpt2" else None)

    def _embed(self, idx: torch.Tensor, past: int, positions: torch.Tensor | None) -> torch.Tensor:
        if positions is None:
            positions = torch.arange(past, past + idx.shape[1], device=idx.device)  # (t,)
        return self.drop_emb(self.tok_emb(idx) + self.pos_emb(positions))  # (b, t, emb_dim)


def accepts_targets(model: nn.Module) -> bool:
    """Whether ``model(idx, targets=targets)`` returns the loss (scratchlm's decoders do).

    Looks through ``DistributedDataParallel`` and ``torch.compile`` wrappers. An
    architecture plugin opts in with a class attribute ``accepts_targets = True``.
    """
    inner: Any = model
    while True:
        unwrapped = getattr(inner, "_orig_mod", None)  # torch.compile
        if not isinstance(unwrapped, nn.Module):
            unwrapped = getattr(inner, "module", None)  # DistributedDataParallel
        if not isinstance(unwrapped, nn.Module):
            return bool(getattr(inner, "accepts_targets", False))
        inner = unwrapped


def cache_length(cache: Any) -> int:
    """How many positions a KV cache already holds."""
    return int(cache.length)


def architecture_config(arch: str = "gpt2", preset: str | None = None, **overrides: Any) -> tuple[Any, Any]:
    """``(model class, its validated config)`` for :func:`build_model`'s arguments, building nothing.

    What the memory checks estimate from (:func:`llm_model.loading.parameter_bytes`).
    """
    from llm_core import get_registry

    entry = get_registry("architectures")[arch]
    model_class = entry.obj
    presets = entry.meta.get("presets") or {}
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in presets:
            available = ", ".join(presets) or "none"
            raise ConfigError(f"unknown preset '{preset}' for architecture '{arch}'; available: {available}")
        values.update(presets[preset])
    values.update(overrides)
    source = f"{arch} preset '{preset}'" if preset else f"{arch} config"
    return model_class, config_from_dict(model_class.config_class, values, source=source)


def build_model(arch: str = "gpt2", preset: str | None = None, **overrides: Any) -> nn.Module:
    """Build a registered architecture from one of its presets and/or keyword overrides.

    ``build_model("gpt2", "gpt2-124m", drop_rate=0.0)``; an unknown architecture
    raises :class:`~llm_core.errors.PluginError` listing the registered ones, an
    unknown preset a :class:`~llm_core.errors.ConfigError` listing the presets.
    """
    model_class, config = architecture_config(arch, preset, **overrides)
    model = model_class(config)
    if getattr(model, "architecture", None) != arch:
        model.architecture = arch
    return model


def model_config(model: nn.Module) -> Any:
    """``model.config`` (the architecture's config dataclass), typed for callers."""
    return model.config


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters, each shared (tied) tensor counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _output_head_parameters(model: nn.Module) -> int:
    """Parameters of a separate (untied) output head: ``out_head`` not shared with an embedding."""
    head = getattr(model, "out_head", None)
    if head is None:
        return 0
    shared = {id(p) for name, p in model.named_parameters() if not name.startswith("out_head.")}
    return sum(p.numel() for p in head.parameters() if id(p) not in shared)


def model_info(model: nn.Module) -> dict[str, Any]:
    """Parameter counts and fp32 size, as ``scratchlm model-info`` prints them.

    ``parameters``: every parameter (tied ones once). ``parameters_without_head``:
    without a separate output head, i.e. the count with the head tied to the
    token embedding (the book's 124,412,160 for GPT-2 124M). ``size_mb_fp32``:
    ``parameters * 4`` bytes in MB of 1024**2 bytes.
    """
    total = count_parameters(model)
    return {
        "architecture": getattr(model, "architecture", type(model).__name__),
        "parameters": total,
        "parameters_without_head": total - _output_head_parameters(model),
        "trainable_parameters": count_parameters(model, trainable_only=True),
        "size_mb_fp32": round(total * FP32_BYTES / MB, 2),
    }
