"""LoRA, low-rank adaptation (the book's appendix E): adapters on chosen linear layers.

``LinearWithLoRA(linear)`` computes ``linear(x) + scaling * dropout(x) @ A @ B`` with
``A (in, rank)`` initialised like a linear layer and ``B (rank, out)`` initialised to zero,
so a freshly injected model computes exactly what the base model did. ``scaling`` is
``alpha / rank`` (the LoRA paper's and PEFT's convention; the book multiplies by ``alpha``
alone, which equals ours with ``alpha = book_alpha * rank``).

Layers are chosen by name: glob patterns over module names (``"trf_blocks.*"``,
``"*.att.W_query"``) or regular expressions prefixed with ``re:`` (``"re:.*W_(query|value)"``).
A pattern set that matches no linear layer is a :class:`~llm_core.errors.ConfigError`
listing the layer names. Adapters save alone (``adapters.safetensors``, with the settings
in the file's metadata) and load onto a base model. Metadata read back with an unknown,
misspelled or missing key is a :class:`~llm_core.errors.CheckpointError` naming the key.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.config_io import check_keys
from llm_core.errors import CheckpointError, ConfigError

__all__ = [
    "ADAPTERS_FILE",
    "LinearWithLoRA",
    "LoRAConfig",
    "LoRALayer",
    "apply_lora",
    "linear_layer_names",
    "load_lora_adapters",
    "lora_layers",
    "lora_state_dict",
    "merge_lora",
    "read_adapter_metadata",
    "remove_lora",
    "save_lora_adapters",
    "save_merged_checkpoint",
    "unmerge_lora",
]

ADAPTERS_FILE = "adapters.safetensors"
_METADATA_KEY = "scratchlm_lora"
#: Keys every adapter file's metadata has.
ADAPTER_KEYS = ("lora", "modules_to_save")
#: Keys the finetune commands add to it (``extra`` of :func:`save_lora_adapters`).
ADAPTER_EXTRA_KEYS = (
    "task",
    "template",
    "trainable",
    "base",
    "max_length",
    "pad_token_id",
    "labels",
    "num_classes",
    "mask_prompt",
    "beta",
)


@dataclass
class LoRAConfig:
    """Where and how big the adapters are.

    Attributes:
        rank: inner dimension ``r`` of ``A (in, r)`` and ``B (r, out)``.
        alpha: the update is scaled by ``alpha / rank``.
        dropout: dropout on the adapter's input (0 = none).
        targets: glob patterns (or ``re:`` regexes) over module names; matching
            ``nn.Linear`` layers get an adapter.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["trf_blocks.*"])

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"lora rank={self.rank!r}: expected an integer >= 1, for example 8")
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError(f"lora alpha={self.alpha!r}: expected a number > 0, for example 16")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"lora dropout={self.dropout!r}: expected a number in [0, 1)")
        if isinstance(self.targets, str):
            self.targets = [self.targets]
        self.targets = list(self.targets)
        if not self.targets:
            raise ConfigError("lora targets: expected at least one pattern, for example 'trf_blocks.*'")
        for pattern in self.targets:
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise ConfigError(
                        f"lora target {pattern!r}: invalid regular expression ({exc})"
                    ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in checkpoint configs and adapter files)."""
        return asdict(self)

    @classmethod
    def from_saved(cls, data: Any, *, source: str) -> LoRAConfig:
        """The settings a file recorded (:meth:`to_dict`); a bad key or value is a CheckpointError."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected the LoRA settings as an object, found {data!r}")
        check_keys(
            data, required=("rank", "alpha", "dropout", "targets"), source=source, error=CheckpointError
        )
        try:
            return cls(**data)
        except ConfigError as exc:
            raise CheckpointError(f"{source}: {exc}") from None


class LoRALayer(nn.Module):
    """The low-rank update ``scaling * dropout(x) @ A @ B``: ``(..., in) -> (..., out)``."""

    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(in_dim, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # like nn.Linear's weight
        self.B = nn.Parameter(torch.zeros(rank, out_dim))  # zero: the update starts at 0
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta_weight(self) -> torch.Tensor:
        """The update as a linear layer's weight: ``(out, in)``."""
        return (self.A @ self.B).T * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaling * (self.dropout(x) @ self.A @ self.B)  # (..., out)


class LinearWithLoRA(nn.Module):
    """A frozen-able ``nn.Linear`` plus a :class:`LoRALayer`; can merge the update into the weight."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha, dropout)
        self.lora.to(device=linear.weight.device, dtype=linear.weight.dtype)
        self.merged = False

    @property
    def weight(self) -> torch.Tensor:
        """The base weight (merged or not), for code that reads ``layer.weight``."""
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor | None:
        """The base bias."""
        return self.linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)  # (..., out)
        if self.merged:
            return out
        return out + self.lora(x)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the low-rank update into ``linear.weight`` (forward then skips the adapter)."""
        if not self.merged:
            self.linear.weight += self.lora.delta_weight().to(self.linear.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again (inverse of :meth:`merge`)."""
        if self.merged:
            self.linear.weight -= self.lora.delta_weight().to(self.linear.weight.dtype)
            self.merged = False


def linear_layer_names(model: nn.Module) -> list[str]:
    """Names of every ``nn.Linear`` in ``model`` (the candidates for adapters)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("re:"):
            if re.fullmatch(pattern[3:], name):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def apply_lora(model: nn.Module, config: LoRAConfig | None = None, *, freeze: bool = True) -> list[str]:
    """Wrap every ``nn.Linear`` whose name matches ``config.targets``; return the wrapped names.

    With ``freeze`` every parameter except the adapters' gets ``requires_grad=False``.
    Layers already wrapped are skipped. No match raises :class:`ConfigError` listing
    the linear layers.
    """
    config = config or LoRAConfig()
    candidates = linear_layer_names(model)
    chosen = [
        name
        for name in candidates
        if _matches(name, config.targets) and not name.endswith(".linear")  # not inside a LinearWithLoRA
    ]
    if not chosen:
        raise ConfigError(
            f"LoRA targets {config.targets} match no linear layer; expected glob patterns "
            f"(or 're:' regexes) over these names: {', '.join(candidates) or 'none'}"
        )
    if freeze:
        for param in model.parameters():
            param.requires_grad_(False)
    for name in chosen:
        linear = model.get_submodule(name)
        assert isinstance(linear, nn.Linear), f"{name} is not an nn.Linear"
        _set_submodule(model, name, LinearWithLoRA(linear, config.rank, config.alpha, config.dropout))
    return chosen


def lora_layers(model: nn.Module) -> dict[str, LinearWithLoRA]:
    """``{name: layer}`` of every :class:`LinearWithLoRA` in ``model``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LinearWithLoRA)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every adapter into its base weight (in place); outputs stay the same."""
    for layer in lora_layers(model).values():
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora` (in place)."""
    for layer in lora_layers(model).values():
        layer.unmerge()
    return model


def remove_lora(model: nn.Module) -> nn.Module:
    """Merge the adapters and put the plain ``nn.Linear`` layers back: a base-architecture model."""
    for name, layer in lora_layers(model).items():
        layer.merge()
        _set_submodule(model, name, layer.linear)
    return model


#: Where a LoRA run's merged plain checkpoint goes, next to ``final/``.
MERGED_DIR = "merged"


def save_merged_checkpoint(final_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Merge a LoRA run's ``final/`` checkpoint into plain weights at ``out_dir``; return its path.

    The result is an ordinary checkpoint of the base architecture (``"lora": null``
    in its finetune config), so everything that reads checkpoints — ``serve``,
    ``generate``, ``evaluate`` — loads it, with the same outputs as the LoRA model.
    """
    from llm_finetune.checkpoints import FINETUNE_KEY, load_finetuned
    from llm_model import save_pretrained

    model = load_finetuned(final_dir)
    info = {**getattr(model, "finetune", {}), "lora": None, "merged_from": str(final_dir)}
    tokenizer = getattr(model, "checkpoint_config", {}).get("tokenizer")
    return save_pretrained(
        remove_lora(model), out_dir, tokenizer=tokenizer, extra_config={FINETUNE_KEY: info}
    )


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' tensors only: ``{"<layer>.lora.A": ..., "<layer>.lora.B": ...}``."""
    return {
        name: tensor for name, tensor in model.state_dict().items() if name.endswith((".lora.A", ".lora.B"))
    }


def save_lora_adapters(
    model: nn.Module,
    path: str | os.PathLike[str],
    config: LoRAConfig,
    *,
    modules_to_save: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the adapters (and the full weights of ``modules_to_save``, e.g. a new head) as safetensors.

    ``config`` and ``extra`` go into the file's metadata, so :func:`load_lora_adapters`
    can rebuild the same layers on a base model.
    """
    from safetensors.torch import save

    from llm_core.config_io import write_bytes_atomic

    tensors = dict(lora_state_dict(model))
    if not tensors:
        raise ConfigError("the model has no LoRA layers to save; call apply_lora first")
    state = model.state_dict()
    for module in modules_to_save:
        prefix = f"{module}."
        tensors.update({k: v for k, v in state.items() if k.startswith(prefix)})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    unknown = sorted(set(extra or {}) - set(ADAPTER_EXTRA_KEYS) - set(ADAPTER_KEYS))
    if unknown:
        raise ConfigError(
            f"extra: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(ADAPTER_EXTRA_KEYS)}"
        )
    meta = {"lora": config.to_dict(), "modules_to_save": list(modules_to_save), **(extra or {})}
    path = Path(path)
    write_bytes_atomic(path, save(tensors, metadata={_METADATA_KEY: json.dumps(meta), "format": "pt"}))
    return path


def read_adapter_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an adapter file (``lora`` settings, ``modules_to_save``, extras)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: expected a LoRA adapter file (adapters.safetensors), found none")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_METADATA_KEY)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(
            f"{path}: expected a safetensors adapter file, cannot read it ({exc})"
        ) from None
    if raw is None:
        raise CheckpointError(
            f"{path}: expected LoRA metadata ('{_METADATA_KEY}'), found none; "
            "was it written by save_lora_adapters?"
        )
    source = f"{path}: metadata '{_METADATA_KEY}'"
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{source}: expected JSON, cannot parse it ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: expected a JSON object, found {type(meta).__name__}")
    check_keys(meta, required=ADAPTER_KEYS, optional=ADAPTER_EXTRA_KEYS, source=source, error=CheckpointError)
    modules = meta["modules_to_save"]
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise CheckpointError(
            f"{source}: expected 'modules_to_save' to be a list of names, found {modules!r}"
        )
    return meta


def load_lora_adapters(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Inject the adapters described in ``path`` into the base ``model`` and load their weights.

    Adapters of a classifier (metadata ``num_classes``) first turn the base into a
    classifier with that many classes. Every tensor's name and shape is checked;
    problems are reported together.
    """
    from safetensors.torch import load_file

    from llm_model.checkpoint import check_tensors

    meta = read_adapter_metadata(path)
    config = LoRAConfig.from_saved(meta["lora"], source=f"{path}: metadata '{_METADATA_KEY}': lora")
    num_classes = meta.get("num_classes")
    if num_classes and getattr(model, "num_classes", None) != num_classes:
        from llm_finetune.classifier import to_classifier

        to_classifier(model, int(num_classes))
        model.finetune = {"task": "classification", **meta}  # type: ignore[assignment]
    if not lora_layers(model):
        apply_lora(model, config)
    found = load_file(str(path), device="cpu")
    state = model.state_dict()
    expected = {k: state[k] for k in found if k in state}
    expected.update(lora_state_dict(model))
    check_tensors(expected, found, where=str(path))
    model.load_state_dict(found, strict=False)
    return model
