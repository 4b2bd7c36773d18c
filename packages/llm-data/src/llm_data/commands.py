"""The ``scratchlm tokenize``, ``scratchlm prepare`` and ``scratchlm download`` commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from llm_core.errors import DataError

__all__ = ["download_command", "parse_ids", "prepare_command", "tokenize_command"]


def parse_ids(text: str) -> list[int]:
    """Token ids from ``"15496 11"``, ``"15496,11"`` or ``"[15496, 11]"``."""
    parts = [p for p in re.split(r"[\s,\[\]]+", text) if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise DataError(
            f"--decode expects integer token ids like '15496 11' or '[15496, 11]', got {text!r}"
        ) from None


def download_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Data sets to fetch: the-verdict, sms-spam, instructions [default: all]."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder to put them in [default: the cache].")
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object {name: path}."),
) -> None:
    """Download the book's data files once, verified by sha256 (the-verdict.txt, SMSSpamCollection,
    instruction-data.json), and print the folder to pass as --data-dir.

    Files already there with the right sha256 are kept. Offline, set $SCRATCHLM_DATA_MIRROR to a
    folder of local copies and they are copied from it (and checked the same way).
    """
    from llm_data.fetchers import fetch_all

    paths = fetch_all(names, directory=out)
    if as_json:
        typer.echo(json.dumps({name: str(path) for name, path in paths.items()}))
        return
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
    typer.echo(f"data folder: {next(iter(paths.values())).parent}")


def tokenize_command(
    text: str = typer.Argument(..., help="Text to encode (or token ids with --decode)."),
    tokenizer: str = typer.Option("gpt2", "--tokenizer", "-t", help="Tokenizer name or BPE .json file."),
    decode: bool = typer.Option(False, "--decode", help="TEXT holds token ids: print their text."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """Print the token ids of TEXT (or, with --decode, the text of ids)."""
    from llm_data.tokenizers import get_tokenizer

    tok = get_tokenizer(tokenizer)
    if decode:
        ids = parse_ids(text)
        decoded = tok.decode(ids)
        typer.echo(json.dumps({"tokenizer": tokenizer, "ids": ids, "text": decoded}) if as_json else decoded)
        return
    ids = tok.encode(text)
    if as_json:
        typer.echo(json.dumps({"tokenizer": tokenizer, "text": text, "ids": ids, "n_tokens": len(ids)}))
    else:
        typer.echo(" ".join(map(str, ids)))


def prepare_command(
    inputs: Annotated[list[Path], typer.Argument(help="Text files, or directories of *.txt files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (must be new or empty).")],
    tokenizer: str = typer.Option("gpt2", "--tokenizer", "-t", help="Tokenizer name or BPE .json file."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Last fraction of each file for 'val'."),
    workers: int = typer.Option(1, "--workers", "-j", help="Tokenizer processes."),
    errors: str = typer.Option("strict", "--errors", help="Invalid UTF-8: strict (stop) or replace."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing prepared corpus."),
    as_json: bool = typer.Option(False, "--json", help="Print the index as JSON."),
) -> None:
    """Tokenize text into uint16/uint32 shards + index.json for pretraining."""
    from llm_data.prepare import prepare_corpus

    index = prepare_corpus(
        inputs,
        out,
        tokenizer=tokenizer,
        val_fraction=val_fraction,
        workers=workers,
        errors=errors,
        overwrite=overwrite,
        progress=not as_json,
    )
    if as_json:
        typer.echo(json.dumps(index, indent=2))
        return
    splits = ", ".join(f"{name} {info['tokens']} tokens" for name, info in index["splits"].items())
    typer.echo(f"{out}: {len(index['sources'])} file(s) -> {splits} ({index['tokenizer']}, {index['dtype']})")
