"""A checkpoint's own Hugging Face tokenizer: ``tokenizer.json`` read by the ``tokenizers`` library.

Beside ``tokenizer.json`` (the vocabulary, merges, normalizer, pre-tokenizer,
post-processor and decoder, all applied by ``tokenizers``; nothing is
re-implemented here), two optional files of the same directory are read:

* ``tokenizer_config.json``: the special tokens (``bos_token``, ``eos_token`` …),
  ``clean_up_tokenization_spaces`` and the ``chat_template`` (or a
  ``chat_template.jinja`` file, as transformers 5 saves it);
* ``generation_config.json``: ``eos_token_id``, one id or a list (Llama 3 ends a
  turn with ``<|eot_id|>`` and a text with ``<|end_of_text|>``): generation stops
  at any of them.

Encoding and decoding match ``transformers``' fast tokenizers:
``encode(text)`` is ``tokenizer(text).input_ids`` (the post-processor adds BOS
where the checkpoint's does), ``decode(ids)`` is ``tokenizer.decode(ids,
skip_special_tokens=True)``, and :meth:`HFTokenizer.apply_chat_template` renders
the template in Jinja2's immutable sandbox with the globals and filters
``transformers.apply_chat_template`` provides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from llm_core.errors import DataError, MissingDependencyError

__all__ = ["HF_TOKENIZER_FILES", "SPECIAL_TOKENS", "HFTokenizer"]

#: The files that make a checkpoint's tokenizer (``tokenizer.json`` is required, the others optional).
HF_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
)
#: The named special tokens a chat template sees (transformers' ``special_tokens_map``).
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: expected a JSON object, found unreadable content ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _token_text(value: Any) -> str | None:
    """A special token as written in tokenizer_config.json: a string or ``{"content": ...}``."""
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _clean_up_spaces(text: str) -> str:
    """transformers' ``clean_up_tokenization`` (only when the checkpoint asks for it)."""
    for before, after in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text


class HFTokenizer:
    """The tokenizer of a Hugging Face checkpoint directory (see the module docstring).

    Attributes:
        path: the ``tokenizer.json`` file.
        n_vocab: vocabulary size, added tokens included.
        eos_ids: every end-of-sequence id (``generation_config.json``, then ``eos_token``).
        eot_token: the first of them (``None`` without any), what single-id callers use.
        special_tokens: ``{"bos_token": "<s>", ...}`` as the chat template sees them.
        chat_template: the Jinja2 chat template, or ``None``.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover - a base dependency of llm-data
            raise MissingDependencyError(
                "reading a checkpoint's tokenizer.json needs the tokenizers library: pip install tokenizers"
            ) from None
        self.path = Path(path)
        directory = self.path.parent
        if not self.path.is_file():
            raise DataError(f"{self.path}: expected a Hugging Face tokenizer.json, found no such file")
        try:
            self.backend = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{self.path}: expected a Hugging Face tokenizer.json, found unparseable content ({reason})"
            ) from None
        config = _read_optional_json(directory / "tokenizer_config.json")
        generation = _read_optional_json(directory / "generation_config.json")
        self.name = str(self.path)
        self.n_vocab: int = self.backend.get_vocab_size(with_added_tokens=True)
        self.special_tokens: dict[str, str] = {
            key: text for key in SPECIAL_TOKENS if (text := _token_text(config.get(key))) is not None
        }
        self.clean_up_spaces = bool(config.get("clean_up_tokenization_spaces", False))
        self.chat_template = self._chat_template(config, directory)
        self.eos_ids: tuple[int, ...] = self._eos_ids(generation)
        self.eot_token: int | None = self.eos_ids[0] if self.eos_ids else None

    def _chat_template(self, config: Mapping[str, Any], directory: Path) -> str | None:
        jinja = directory / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        template = config.get("chat_template")
        if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)}
            template = named.get("default")
        if template is not None and not isinstance(template, str):
            raise DataError(
                f"{self.path.parent / 'tokenizer_config.json'}: expected chat_template to be a string"
            )
        return template

    def _eos_ids(self, generation: Mapping[str, Any]) -> tuple[int, ...]:
        found = generation.get("eos_token_id")
        ids = [found] if isinstance(found, int) else list(found) if isinstance(found, list) else []
        eos_text = self.special_tokens.get("eos_token")
        eos_id = self.backend.token_to_id(eos_text) if eos_text is not None else None
        if eos_id is not None:
            ids.append(eos_id)
        bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.n_vocab]
        if bad:
            raise DataError(
                f"{self.path.parent / 'generation_config.json'}: eos_token_id {bad[0]!r} is not a token id "
                f"of tokenizer.json (0..{self.n_vocab - 1})"
            )
        return tuple(dict.fromkeys(ids))

    def encode(self, text: str, *, add_special_tokens: bool = True, **_: Any) -> list[int]:
        """Token ids of ``text``, with the checkpoint's own BOS/EOS added by its post-processor."""
        return list(self.backend.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``, special tokens left out (as ``transformers``' ``skip_special_tokens=True``)."""
        from llm_data.tokenizers import token_ids_list

        ids = token_ids_list(ids, n_vocab=self.n_vocab, vocabulary=f"of {self.path}")
        text: str = self.backend.decode(ids, skip_special_tokens=True)
        return _clean_up_spaces(text) if self.clean_up_spaces else text

    def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True, **variables: Any
    ) -> str:
        """The conversation rendered by the checkpoint's chat template, as ``transformers`` renders it.

        ``messages``: ``[{"role": "user", "content": "..."}, ...]``. A template
        that raises (``raise_exception``, an undefined filter, a sandbox violation)
        is a :class:`DataError` with its message.
        """
        if self.chat_template is None:
            raise DataError(
                f"{self.path.parent}: this tokenizer has no chat_template (tokenizer_config.json)"
            )
        template = _compile(self.chat_template, str(self.path.parent))
        import jinja2

        try:
            return str(
                template.render(
                    messages=[dict(m) for m in messages],
                    add_generation_prompt=add_generation_prompt,
                    **{**self.special_tokens, **variables},
                )
            )
        except jinja2.TemplateError as exc:
            raise DataError(
                f"{self.path.parent}: the chat template refused the conversation: {exc}"
            ) from None
        except Exception as exc:  # anything else a template's expressions can raise
            raise DataError(
                f"{self.path.parent}: the chat template failed ({type(exc).__name__}: {exc})"
            ) from None

    def encode_chat(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True
    ) -> list[int]:
        """Token ids of the rendered conversation (``apply_chat_template(tokenize=True)``: no extra BOS)."""
        text = self.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
        return self.encode(text, add_special_tokens=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r}, n_vocab={self.n_vocab})"


def _compile(source: str, where: str) -> Any:
    """The template compiled in an immutable sandbox with transformers' globals and filters."""
    try:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - a base dependency of llm-data
        raise MissingDependencyError("chat templates need jinja2: pip install jinja2") from None

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Any = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise DataError(
            f"{where}: the chat template does not parse (line {exc.lineno}: {exc.message})"
        ) from None
