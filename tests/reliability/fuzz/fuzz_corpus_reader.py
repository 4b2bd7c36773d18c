"""Fuzz target: the readers of user data files (text corpora, prepared shards, datasets, BPE files).

The first byte of an input picks the reader, the rest is the file's content:

0. a text file read in chunks (strict and ``replace``): the chunks join to exactly the text
   Python decodes from the bytes, or the strict read raises :class:`DataError`;
1. ``index.json`` of a prepared corpus (beside real shards): a :class:`DataError`, or the
   tokens the index describes;
2. an SMS spam TSV file; 3. an instruction JSON file; 4. a BPE tokenizer file.

Anything but a typed scratchlm error is a crash. Run with atheris (nightly)::

    python tests/reliability/fuzz/fuzz_corpus_reader.py -max_total_time=60 CORPUS_DIR

``tests/reliability/test_fuzz.py`` also calls :func:`TestOneInput` directly on the seeds and
a few hundred mutations of them, without atheris.
"""

from __future__ import annotations

import atexit
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

INSTRUMENTED = ["llm_core", "llm_data"]
_work: Path | None = None


def setup(workdir: Path | None = None) -> Path:
    """Create the working files once: a small prepared corpus and its text (returns the directory)."""
    global _work
    if _work is not None:
        return _work
    from llm_data import BPETokenizer, prepare_corpus

    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="scratchlm-fuzz-"))
        atexit.register(shutil.rmtree, workdir, True)
    workdir.mkdir(parents=True, exist_ok=True)
    text = "The quick brown fox jumps over the lazy dog. " * 40 + "Ünïcödé ✓ 1234\n"
    (workdir / "text.txt").write_text(text, encoding="utf-8")
    BPETokenizer.train(text, 280).save(workdir / "bpe.json")
    prepare_corpus(
        [workdir / "text.txt"], workdir / "prepared", tokenizer=str(workdir / "bpe.json"), shard_tokens=64
    )
    _work = workdir
    return workdir


def seeds() -> list[bytes]:
    """Valid and near-valid inputs for each reader."""
    work = setup()
    index = (work / "prepared" / "index.json").read_bytes()
    return [
        b"\x00" + "Hello, wörld!\n\ufeffBOM inside ✓".encode(),
        b"\x00\xef\xbb\xbfwith a byte-order mark\r\nand \xe2\x9c\x93",
        b"\x00bad \xff utf-8 \xc3",
        b"\x01" + index,
        b"\x01" + json.dumps({**json.loads(index), "dtype": "uint32"}).encode(),
        b"\x02ham\tGo until jurong point\nspam\tFREE entry\r\nham\t\x1e\xe2\x80\xa8\n",
        b"\x03"
        + json.dumps(
            [{"instruction": "Add", "input": "1+1", "output": "2"}, {"instruction": "x", "output": ""}]
        ).encode(),
        b"\x04" + (work / "bpe.json").read_bytes(),
    ]


def _text(work: Path, payload: bytes) -> None:
    from llm_core.errors import DataError
    from llm_data.text_files import iter_text_chunks

    path = work / "input.txt"
    path.write_bytes(payload[2:])
    chunk_chars = 1 + (payload[0] if payload else 0) % 32
    read_bytes = 1 + (payload[1] if len(payload) > 1 else 0) % 64
    body = payload[2:].removeprefix(b"\xef\xbb\xbf")
    for errors in ("strict", "replace"):
        try:
            text = "".join(
                iter_text_chunks(path, errors=errors, chunk_chars=chunk_chars, read_bytes=read_bytes)
            )
        except DataError:
            if not body:
                continue  # an empty file is an error in both modes
            assert errors == "strict", "errors='replace' must never fail on bytes"
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                continue  # the error was right
            raise AssertionError("valid UTF-8 was refused") from None
        assert text == body.decode("utf-8", errors=errors), "chunked decoding differs from decoding at once"


def _index(work: Path, payload: bytes) -> None:
    from llm_core.errors import DataError
    from llm_data import load_prepared

    directory = work / "fuzzed-prepared"
    if not directory.exists():
        shutil.copytree(work / "prepared", directory)
    (directory / "index.json").write_bytes(payload)
    for split in ("train", "val"):
        try:
            tokens = load_prepared(directory, split)
        except DataError:
            continue
        index = json.loads(payload)
        assert len(tokens) == sum(s["tokens"] for s in index["splits"][split]["shards"])


def _file(work: Path, name: str, payload: bytes) -> Path:
    path = work / name
    path.write_bytes(payload)
    return path


def TestOneInput(data: bytes) -> None:
    """Feed one input to the reader its first byte selects; raise on anything but a typed error."""
    from llm_core.errors import DataError
    from llm_data import BPETokenizer
    from llm_data.instructions import load_instruction_file
    from llm_data.sms_spam import parse_sms_spam

    if not data:
        return
    work = setup()
    kind, payload = data[0] % 5, data[1:]
    if kind == 0:
        _text(work, payload)
    elif kind == 1:
        _index(work, payload)
    elif kind == 2:
        try:
            records = parse_sms_spam(_file(work, "SMSSpamCollection", payload))
        except DataError:
            return
        assert all(r["label"] in (0, 1) and isinstance(r["text"], str) for r in records)
    elif kind == 3:
        try:
            records = load_instruction_file(_file(work, "instructions.json", payload))
        except DataError:
            return
        assert all(set(r) == {"instruction", "input", "output"} for r in records)
    else:
        try:
            tokenizer = BPETokenizer.load(_file(work, "tokenizer.json", payload))
            ids: Any = tokenizer.encode("fuzz ✓ <|endoftext|>")
        except DataError:
            return
        assert tokenizer.decode(ids) == "fuzz ✓ <|endoftext|>"


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        import llm_data.instructions
        import llm_data.prepare
        import llm_data.shards
        import llm_data.sms_spam
        import llm_data.text_files  # noqa: F401
    setup()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
