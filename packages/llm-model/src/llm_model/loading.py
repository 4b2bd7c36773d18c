"""Loading without a second copy: memory checked first, model built on ``meta``, weights assigned.

The path every loader takes (``load_pretrained``, ``import_hf``):

1. :func:`check_memory` — the parameter memory of the config is computed on the
   ``meta`` device (exact, and free: nothing is allocated) and compared with the
   memory available; too big is one :class:`~llm_core.errors.ConfigError` line
   giving both numbers, unless ``force``.
2. :func:`build_on_meta` — the model is built with shapes only.
3. The weights are memory-mapped (:mod:`llm_model.safetensors_io`) and checked
   against the model's names, shapes and dtypes (all mismatches at once:
   :func:`check_tensors`).
4. :func:`fill` — ``load_state_dict(assign=True)``: the model's parameters become
   the mapped tensors themselves (no copy unless a dtype conversion asks for one),
   tied parameters are re-tied and buffers recomputed.

Peak memory is therefore about one copy of the weights, in their own dtype.
:func:`load_new_model` takes the four steps for a file's tensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from llm_core.errors import CheckpointError, ConfigError

__all__ = [
    "DTYPES",
    "available_memory",
    "build_on_meta",
    "check_memory",
    "check_tensors",
    "current_options",
    "expected_like",
    "fill",
    "format_bytes",
    "load_new_model",
    "load_options",
    "parameter_bytes",
    "resolve_dtype",
    "stored_dtype",
    "tied_parameter_aliases",
]

#: ``--dtype`` choices: ``auto`` keeps the checkpoint's own dtype.
DTYPES: dict[str, torch.dtype | None] = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16}
_option_stack: list[tuple[str | torch.dtype | None, bool]] = []


@contextlib.contextmanager
def load_options(*, dtype: str | torch.dtype | None = None, force: bool = False) -> Iterator[None]:
    """Inside the block, loaders called without ``dtype=``/``force=`` use these (``--dtype``, ``--force``).

    For commands whose loading happens deep inside a plugin (``evaluate NAME …``):
    ``with load_options(dtype="bf16", force=True): run_evaluator(...)``.
    """
    _option_stack.append((dtype, force))
    try:
        yield
    finally:
        _option_stack.pop()


def current_options(
    dtype: str | torch.dtype | None = None, force: bool | None = None
) -> tuple[torch.dtype | None, bool]:
    """``(dtype, force)``: the arguments when given, else the innermost :func:`load_options`'s."""
    outer_dtype, outer_force = _option_stack[-1] if _option_stack else (None, False)
    return resolve_dtype(outer_dtype if dtype is None else dtype), outer_force if force is None else force


def resolve_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """The torch dtype of a ``--dtype`` choice (``None`` for ``auto``: the checkpoint's)."""
    if name is None or isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise ConfigError(f"--dtype: expected one of {', '.join(DTYPES)}, found {name!r}")
    return DTYPES[name]


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human figure: ``1.5 GB``, ``12.0 MB``."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def stored_dtype(tensors: Mapping[str, torch.Tensor]) -> torch.dtype:
    """The dtype most floating tensors of ``tensors`` have (``float32`` when none is floating)."""
    counts: dict[torch.dtype, int] = {}
    for tensor in tensors.values():
        if tensor.is_floating_point():
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + 1
    return max(counts, key=lambda d: counts[d]) if counts else torch.float32


def expected_like(
    model: nn.Module, dtype: torch.dtype, skip: Mapping[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """``model``'s state dict as ``meta`` tensors, floating ones in ``dtype``, without ``skip``'s names."""
    return {
        name: torch.empty(t.shape, dtype=dtype if t.is_floating_point() else t.dtype, device="meta")
        for name, t in model.state_dict().items()
        if name not in (skip or {})
    }


def build_on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` called on the ``meta`` device: every parameter and buffer has a shape, no memory."""
    with torch.device("meta"):
        return factory()


def _tensor_bytes(model: nn.Module, dtype: torch.dtype | None) -> int:
    """Bytes of every distinct parameter and buffer, floating ones counted in ``dtype`` when given."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        size = dtype.itemsize if dtype is not None and tensor.is_floating_point() else tensor.element_size()
        total += tensor.numel() * size
    return total


def _layers_bytes(
    model_class: Callable[[Any], nn.Module], config: Any, n: int, dtype: torch.dtype | None
) -> int:
    """Bytes of ``model_class(config)`` with ``n_layers=n``."""
    shallow = dataclasses.replace(config, n_layers=n)
    return _tensor_bytes(build_on_meta(lambda: model_class(shallow)), dtype)


def parameter_bytes(
    model_class: Callable[[Any], nn.Module], config: Any, dtype: torch.dtype | None = None
) -> int:
    """Bytes the parameters and buffers of ``model_class(config)`` take, in ``dtype`` (default: as built).

    Computed on the ``meta`` device. A dataclass config with ``n_layers`` is built
    with 1 and 2 layers and extrapolated (layers are identical), so a config with
    100,000 layers is estimated in milliseconds.
    """
    layers = getattr(config, "n_layers", None)
    if (
        dataclasses.is_dataclass(config)
        and not isinstance(config, type)
        and isinstance(layers, int)
        and layers > 2
    ):
        one, two = (_layers_bytes(model_class, config, n, dtype) for n in (1, 2))
        return one + (layers - 1) * (two - one)
    return _tensor_bytes(build_on_meta(lambda: model_class(config)), dtype)


def available_memory(device: str | torch.device = "cpu") -> tuple[int, str] | None:
    """``(bytes, where they were read)`` free on ``device``; ``None`` when it cannot be told.

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux); CUDA: ``torch.cuda.mem_get_info``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free memory of {device}"
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(
    needed: int,
    *,
    what: str,
    device: str | torch.device = "cpu",
    force: bool = False,
    advice: str = "use a smaller model or --dtype bf16",
) -> None:
    """Refuse (one :class:`ConfigError` line) when ``needed`` bytes exceed the memory ``device`` has.

    ``what`` names the thing that needs it (``"config.json: the model's parameters (bf16)"``),
    ``advice`` what to change. ``force`` skips the check; an unknown amount of free memory passes.
    """
    if force:
        return
    available = available_memory(device)
    if available is None or needed <= available[0]:
        return
    limit, source = available
    raise ConfigError(
        f"{what} need {format_bytes(needed)}, more than the {format_bytes(limit)} available "
        f"({source}); {advice}, or pass --force to try anyway"
    )


def check_tensors(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], *, where: str
) -> None:
    """Raise one :class:`CheckpointError` listing every missing, unexpected, mis-shaped or mistyped tensor."""
    problems = []
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    if missing:
        problems.append(f"missing {len(missing)}: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected)}")
    for name, want in expected.items():
        got = found.get(name)
        if got is None:
            continue
        if tuple(got.shape) != tuple(want.shape):
            problems.append(f"{name}: expected shape {tuple(want.shape)}, found {tuple(got.shape)}")
        if got.dtype != want.dtype:
            problems.append(f"{name}: expected dtype {want.dtype}, found {got.dtype}")
    if problems:
        count = len(problems) + max(len(missing) - 1, 0) + max(len(unexpected) - 1, 0)
        raise CheckpointError(
            f"{where}: the weights do not match the config ({count} problem(s)): "
            + "; ".join(problems)
            + ". Check that config.json and the weights belong together."
        )


def load_new_model(
    model_class: Any,
    config: Any,
    tensors: Mapping[str, torch.Tensor],
    *,
    what: str,
    where: str,
    names: Mapping[str, str] | None = None,
    dtype: torch.dtype | None = None,
    force: bool = False,
) -> nn.Module:
    """``model_class(config)`` holding ``tensors``, after the checks every loader makes (eval mode).

    :func:`check_memory` for the parameters in ``dtype`` (default: the tensors'
    own), ``what`` naming them (``"config.json: the model's parameters"``); the
    model built on ``meta``; :func:`check_tensors` of its state dict (tied
    aliases left out) against ``tensors``, every problem reported at once under
    ``where``; then :func:`fill`. ``names`` maps the model's tensor names to the
    names in ``tensors`` (default: the same names).
    """
    stored = stored_dtype(tensors)
    label = str(dtype or stored).removeprefix("torch.")
    check_memory(parameter_bytes(model_class, config, dtype or stored), what=f"{what} ({label})", force=force)
    model = build_on_meta(lambda: model_class(config))
    ours = expected_like(model, stored, skip=tied_parameter_aliases(model))
    rename = names if names is not None else {name: name for name in ours}
    if set(rename) != set(ours):  # pragma: no cover - a name-map bug
        raise CheckpointError(f"{where}: internal name-map error: {sorted(set(rename) ^ set(ours))}")
    check_tensors({rename[n]: t for n, t in ours.items()}, tensors, where=where)
    state = {n: tensors[rename[n]] for n in ours}
    return fill(model, state, dtype=dtype, where=where, factory=lambda: model_class(config)).eval()


def _set_tensor(model: nn.Module, name: str, value: torch.Tensor) -> None:
    owner, _, attr = name.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    setattr(module, attr, value)


def tied_parameter_aliases(model: nn.Module) -> dict[str, str]:
    """``{alias: kept name}`` of parameters shared under several names (by identity: works on ``meta``)."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            aliases[name] = first[id(param)]
        else:
            first[id(param)] = name
    return aliases


def _needs_real_build(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> bool:
    """Whether a buffer left on ``meta`` is neither in ``tensors`` nor recomputable by ``reset_buffers()``."""
    for prefix, module in model.named_modules():
        for name, buffer in module._buffers.items():
            full = f"{prefix}.{name}" if prefix else name
            meta = buffer is not None and buffer.is_meta
            if meta and full not in tensors and not hasattr(module, "reset_buffers"):
                return True
    return False


def fill(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
    where: str = "weights",
    factory: Callable[[], nn.Module] | None = None,
) -> nn.Module:
    """Make ``state``'s tensors the parameters of ``model`` (built on ``meta``), without copying them.

    ``state`` must hold every parameter and persistent buffer under the model's
    names (tied aliases may be left out; checked by the caller). Floating tensors
    are converted to ``dtype`` when given. Tied parameters are re-tied; buffers
    left on ``meta`` (not saved, e.g. RoPE frequencies) are recomputed by their
    module's ``reset_buffers()``; a module without one makes the model be built
    again for real with ``factory`` (memory for one more copy, briefly).
    """
    tensors = {
        name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t) for name, t in state.items()
    }
    if _needs_real_build(model, tensors):
        if factory is None:
            raise CheckpointError(
                f"{where}: the model has unsaved buffers it cannot recompute (no reset_buffers())"
            )
        model = factory()
    aliases = tied_parameter_aliases(model)
    result = model.load_state_dict(tensors, strict=False, assign=True)
    missing = [name for name in result.missing_keys if name not in aliases]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{where}: internal loading error: missing {missing}, unexpected {result.unexpected_keys}"
        )
    for alias, kept in aliases.items():
        _set_tensor(model, alias, model.get_parameter(kept))
    for module in model.modules():
        if any(b is not None and b.is_meta for b in module._buffers.values()):
            reset = getattr(module, "reset_buffers", None)
            if reset is None:
                raise CheckpointError(
                    f"{where}: {type(module).__name__} has unsaved buffers and no reset_buffers(); "
                    "it cannot be built on the meta device"
                )
            reset()
    return model
