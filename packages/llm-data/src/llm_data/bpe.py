"""A byte-level BPE tokenizer, trained from scratch (the GPT-2 recipe, readable Python).

Training:

1. split the text into pre-tokens with GPT-2's regex (words with their leading space,
   numbers, punctuation runs, whitespace), count each distinct pre-token once;
2. start every pre-token as its UTF-8 bytes (ids 0..255);
3. repeatedly merge the most frequent adjacent pair of ids into a new id. Pair counts are
   kept up to date incrementally (only the words that contain the merged pair are
   revisited) and the best pair comes from a heap, so a few MB train in seconds.

Ties between equally frequent pairs go to the smallest ``(left, right)`` ids: training is
deterministic. Encoding follows tiktoken's rule (repeatedly merge the adjacent pair whose
concatenated bytes have the lowest id), so :meth:`BPETokenizer.to_tiktoken` gives an
encoding that produces exactly the same ids. A merge whose bytes already exist as a token
reuses that token, which keeps every token's bytes unique (as tiktoken requires).
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import regex

from llm_core.config_io import FileFormat, write_json_atomic
from llm_core.errors import ConfigError, DataError
from llm_data.gpt2 import GPT2_PATTERN
from llm_data.tokenizers import token_ids_list

__all__ = ["BPETokenizer"]

FORMAT = "scratchlm-bpe"
FORMAT_VERSION = 1
#: What a file of this format must say of itself.
FILE_FORMAT = FileFormat(
    FORMAT, FORMAT_VERSION, "a scratchlm BPE tokenizer file", "upgrade llm-data or re-train"
)
ENDOFTEXT = "<|endoftext|>"
_CACHE_LIMIT = 100_000


def _merge_word(word: list[int], a: int, b: int, new_id: int) -> list[int]:
    """``word`` with every non-overlapping ``a, b`` (left to right) replaced by ``new_id``."""
    out: list[int] = []
    i, n = 0, len(word)
    while i < n:
        if i < n - 1 and word[i] == a and word[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level BPE: ``encode``/``decode``, ``train``, ``save``/``load``, ``to_tiktoken``.

    ``BPETokenizer()`` with no merges is a plain byte tokenizer (256 byte ids + ``<|endoftext|>``).
    ``merges[i] = (left, right)`` creates token ``256 + i``; special tokens come after them.
    """

    def __init__(
        self,
        merges: Iterable[tuple[int, int]] = (),
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        pattern: str = GPT2_PATTERN,
        name: str = "bpe",
    ) -> None:
        self.name = name
        self.pattern = pattern
        try:
            self._regex = regex.compile(pattern)
        except (regex.error, TypeError, ValueError, OverflowError) as exc:
            raise DataError(f"BPE pattern {pattern!r} is not a valid regular expression ({exc})") from None
        self.merges: list[tuple[int, int]] = []
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for left, right in merges:
            new_id = 256 + len(self.merges)
            if not (0 <= left < new_id and 0 <= right < new_id):
                raise DataError(f"BPE merge #{len(self.merges)} ({left}, {right}) uses an id not yet defined")
            self.merges.append((int(left), int(right)))
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]
        self.ranks: dict[bytes, int] = {token: i for i, token in self.vocab.items()}
        if len(self.ranks) != len(self.vocab):
            raise DataError("BPE merges define the same bytes twice; every token's bytes must be unique")
        specials = list(dict.fromkeys(special_tokens))
        self.special_tokens: dict[str, int] = {s: len(self.vocab) + i for i, s in enumerate(specials)}
        self._inverse_special = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        self._special_regex = (
            regex.compile(
                "(" + "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
            )
            if specials
            else None
        )
        self._cache: dict[bytes, list[int]] = {}

    # -- properties -------------------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        """Number of ids: bytes + merges + special tokens."""
        return len(self.vocab) + len(self.special_tokens)

    @property
    def eot_token(self) -> int | None:
        """The id of ``<|endoftext|>``, or ``None`` when it is not a special token here."""
        return self.special_tokens.get(ENDOFTEXT)

    # -- training ---------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        vocab_size: int,
        *,
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        pattern: str = GPT2_PATTERN,
        min_frequency: int = 2,
    ) -> BPETokenizer:
        """Learn merges from ``text`` (a string or an iterable of strings) up to ``vocab_size`` ids.

        ``vocab_size`` counts the 256 byte ids and the special tokens. Training stops early
        when no pair occurs at least ``min_frequency`` times.
        """
        specials = list(dict.fromkeys(special_tokens))
        if vocab_size < 256 + len(specials):
            raise ConfigError(
                f"vocab_size={vocab_size} is too small: byte-level BPE needs 256 byte ids plus "
                f"{len(specials)} special token(s); choose vocab_size >= {256 + len(specials)}"
            )
        if min_frequency < 1:
            raise ConfigError(f"min_frequency={min_frequency} must be >= 1")
        pre = regex.compile(pattern)
        split = regex.compile("|".join(regex.escape(s) for s in specials)) if specials else None
        counts: Counter[str] = Counter()
        for piece in [text] if isinstance(text, str) else text:
            for part in split.split(piece) if split else [piece]:
                counts.update(m.group() for m in pre.finditer(part))
        words = [list(word.encode("utf-8")) for word in counts]
        freqs = list(counts.values())

        pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for wi, word in enumerate(words):
            for pair in itertools.pairwise(word):
                pair_counts[pair] += freqs[wi]
                where[pair].add(wi)
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        ranks: dict[bytes, int] = {b: i for i, b in vocab.items()}
        merges: list[tuple[int, int]] = []
        target = vocab_size - len(specials)
        while len(vocab) < target and heap:
            neg, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -neg:
                continue  # a stale heap entry: the count changed since it was pushed
            if -neg < min_frequency:
                break
            a, b = pair
            merged = vocab[a] + vocab[b]
            new_id = ranks.get(merged)
            if new_id is None:  # a new token; otherwise the same bytes already exist: reuse them
                new_id = len(vocab)
                vocab[new_id] = merged
                ranks[merged] = new_id
                merges.append(pair)
            changed: set[tuple[int, int]] = set()
            for wi in where.pop(pair, ()):
                word = words[wi]
                new_word = _merge_word(word, a, b, new_id)
                if len(new_word) == len(word):
                    continue  # stale index: this word no longer holds the pair
                freq = freqs[wi]
                for p in itertools.pairwise(word):
                    pair_counts[p] -= freq
                    changed.add(p)
                for p in itertools.pairwise(new_word):
                    pair_counts[p] += freq
                    changed.add(p)
                    where[p].add(wi)
                words[wi] = new_word
            for p in changed:
                count = pair_counts[p]
                if count <= 0:
                    del pair_counts[p]
                else:
                    heapq.heappush(heap, (-count, p))
        return cls(merges, special_tokens=specials, pattern=pattern)

    # -- encoding ---------------------------------------------------------------------
    def _encode_chunk(self, chunk: bytes) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        parts = [chunk[i : i + 1] for i in range(len(chunk))]
        ranks = self.ranks
        while len(parts) > 1:
            best_rank, best_i = -1, -1
            for i in range(len(parts) - 1):
                rank = ranks.get(parts[i] + parts[i + 1])
                if rank is not None and (best_i < 0 or rank < best_rank):
                    best_rank, best_i = rank, i
            if best_i < 0:
                break
            parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
        ids = [ranks[p] for p in parts]
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[chunk] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, special tokens treated as plain text."""
        ids: list[int] = []
        end = 0
        for match in self._regex.finditer(text):
            if match.start() != end:
                break
            ids.extend(self._encode_chunk(match.group().encode("utf-8")))
            end = match.end()
        if end != len(text):  # a pattern that skips characters would silently drop text
            raise DataError(
                f"BPE pattern {self.pattern!r} does not match the text at character {end} "
                f"({text[end : end + 10]!r}); a tokenizer's pattern must split every text completely "
                "(the default GPT-2 pattern does)"
            )
        return ids

    def encode(self, text: str, *, allowed_special: Any = "all", **_: Any) -> list[int]:
        """Token ids of ``text``; special tokens in ``allowed_special`` (default: all) map to their ids."""
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        if not allowed or self._special_regex is None:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for i, part in enumerate(self._special_regex.split(text)):
            if i % 2 == 1 and part in allowed:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes of token ids."""
        out = []
        for i in token_ids_list(ids):
            token = self.vocab.get(i)
            if token is None:
                token = self._inverse_special.get(i)
                if token is None:
                    raise DataError(
                        f"token id {i} is outside this BPE vocabulary 0..{self.n_vocab - 1}; "
                        "check the ids or the tokenizer file"
                    )
            out.append(token)
        return b"".join(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids (invalid UTF-8 from partial sequences becomes U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- files ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (what :meth:`save` writes)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pattern": self.pattern,
            "merges": [list(m) for m in self.merges],
            "special_tokens": list(self.special_tokens),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer as JSON (atomically)."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`; a missing or malformed file raises :class:`DataError`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: BPE tokenizer file not found; train one and save() it first") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise DataError(f"{path}: cannot read a BPE tokenizer JSON file ({exc})") from None
        FILE_FORMAT.check(data, str(path), DataError)
        try:
            merges = [(int(a), int(b)) for a, b in data["merges"]]
            specials = [str(s) for s in data["special_tokens"]]
            pattern = str(data["pattern"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed BPE tokenizer file ({type(exc).__name__}: {exc})") from None
        try:
            return cls(merges, special_tokens=specials, pattern=pattern, name=str(path))
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None

    def to_tiktoken(self, name: str = "scratchlm-bpe") -> Any:
        """A ``tiktoken.Encoding`` giving exactly the same ids (and much faster)."""
        import tiktoken

        return tiktoken.Encoding(
            name=name,
            pat_str=self.pattern,
            mergeable_ranks=dict(self.ranks),
            special_tokens=dict(self.special_tokens),
        )

    def __repr__(self) -> str:
        return f"BPETokenizer(n_vocab={self.n_vocab}, merges={len(self.merges)})"
