"""The scratchlm hook specifications.

Every hook is a collector: it receives a ``register`` callable and calls it
once per object it provides::

    register(name: str, obj: object, **meta) -> None

``name`` is the public, case-sensitive name users type (``--arch gpt2``);
``meta`` holds optional free-form metadata (for example ``description=``),
shown by ``scratchlm plugins``. A name registered by two plugins is an error
that names both. Hooks are called lazily, the first time their registry is
needed, once per plugin, so one failing plugin never hides the others.
"""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

__all__ = ["Register", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("scratchlm")
hookimpl = pluggy.HookimplMarker("scratchlm")


class Register(Protocol):
    """The callable every ``register_*`` hook receives."""

    def __call__(self, name: str, obj: Any, **meta: Any) -> None: ...


@hookspec
def register_architectures(register: Register) -> None:
    """Register model architectures.

    ``obj`` must be a model class (a ``torch.nn.Module`` subclass) with a
    ``config_class`` attribute: a dataclass whose instances validate
    themselves on creation, and a constructor ``obj(config)``. The model's
    ``forward(idx)`` maps token ids ``(batch, seq)`` to logits
    ``(batch, seq, vocab_size)``. Optional ``presets=`` meta: a mapping of
    preset name to config keyword arguments.

    A new transformer block is the usual way in: subclass
    ``llm_model.Block`` (``forward(x, *, cache=None, padding_mask=None,
    positions=None)``, parts named ``att``, ``ff``, ``norm1``/``norm2``) and
    set it as ``block_class`` of a ``GPTModel`` subclass; initialise with
    ``llm_model.init_weights(model, scheme)``. A model that takes
    ``padding_mask`` declares ``accepts_padding_mask = True``, and the
    conformance suite then checks that left-padded rows match unpadded ones
    (``docs/plugins.md``, "Write your own block").
    """


@hookspec
def register_attention(register: Register) -> None:
    """Register attention backends.

    ``obj`` must be a callable ``obj(q, k, v, *, causal, mask, dropout_p,
    window, training)`` taking tensors ``(batch, n_heads, seq_q, head_dim)``
    for ``q`` and ``(batch, n_kv_heads, seq_k, head_dim)`` for ``k``/``v``
    and returning ``(batch, n_heads, seq_q, head_dim)``.
    """


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizers.

    ``obj`` must be a factory ``obj(param_groups, **hyperparameters)``
    returning a ``torch.optim.Optimizer``; ``param_groups`` is a list of
    dicts as accepted by ``torch.optim.Optimizer``.
    """


@hookspec
def register_schedulers(register: Register) -> None:
    """Register learning-rate schedules.

    ``obj`` must be a callable ``obj(step, *, max_steps, **options) ->
    float`` returning the multiplier applied to the base learning rate at
    optimizer step ``step`` (0-based).
    """


@hookspec
def register_evaluators(register: Register) -> None:
    """Register evaluators run by ``scratchlm evaluate NAME``.

    ``obj`` must be a callable returning a JSON-serialisable ``dict`` report,
    with a ``schema`` attribute: the set of top-level keys every report has.
    """


@hookspec
def register_tokenizers(register: Register) -> None:
    """Register tokenizers.

    ``obj`` must be a zero-argument factory (or a class) whose instances have
    ``encode(text: str) -> list[int]``, ``decode(ids: list[int]) -> str`` and
    an integer ``n_vocab``. Optional meta: ``file_format="<name>"`` (the factory,
    called with a path, loads saved ``.json`` files whose ``"format"`` is that name)
    or ``file_name="<file name>"`` (it loads files of that name, e.g. ``tokenizer.json``).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets.

    ``obj`` must be a callable ``obj(root: pathlib.Path | None = None,
    **options)`` returning the dataset's splits as a ``dict`` of split name
    to a sequence of records; ``root`` is a local directory holding the raw
    files (no network is needed when it is given).
    """


@hookspec
def register_callbacks(register: Register) -> None:
    """Register training callbacks.

    ``obj`` must be a class whose instances the trainer calls through
    optional methods ``on_train_start(trainer)``, ``on_step_end(trainer,
    metrics)``, ``on_eval_end(trainer, metrics)`` and
    ``on_train_end(trainer)``.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``scratchlm`` command line.

    ``cli`` is the root ``typer.Typer`` application. The one way to add a
    command: define it as a plain function (the built-ins keep theirs in their
    package's ``commands.py``) and register it with
    ``cli.command(NAME)(function)``; a group of commands is a ``typer.Typer``
    added with ``cli.add_typer(group, name=NAME)``. Use the shared options of
    :mod:`llm_core.cli_options` so the command speaks the vocabulary that
    :func:`llm_core.cli_vocabulary.vocabulary_problems` checks.
    Import heavy modules (torch) inside the command functions, not at
    module level, so ``scratchlm --help`` stays fast. Raise
    ``llm_core.errors.ScratchLMError`` subclasses for expected failures.
    """
