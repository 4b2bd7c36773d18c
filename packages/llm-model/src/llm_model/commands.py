"""The ``scratchlm`` commands of llm-model: ``model-info``, ``generate``, ``import-hf``, ``export-hf``.

torch is imported inside each command so ``scratchlm --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from llm_core.cli_options import (
    AsJson,
    Dtype,
    Force,
    ModelArg,
    NoVerify,
    OldOut,
    Quantize,
    echo_json,
    resolve_out,
)
from llm_core.output_dirs import check_output_dir, claim_output_dir, write_output_marker

__all__ = [
    "MAX_NEW_TOKENS",
    "Dtype",
    "Force",
    "NoVerify",
    "export_hf_command",
    "generate_command",
    "import_book_command",
    "import_hf_command",
    "model_info_command",
]

DEFAULT_TOKENIZER = "gpt2"
#: Most tokens ``generate`` makes in one run (a larger --max-new-tokens is refused, not run for days).
MAX_NEW_TOKENS = 1_000_000


def model_info_command(
    arch: Annotated[str, typer.Option("--arch", help="Registered architecture name.")] = "gpt2",
    preset: Annotated[
        Optional[str],
        typer.Option("--preset", help="Preset name, e.g. gpt2-124m (default: config defaults)."),
    ] = None,
    overrides: Annotated[
        Optional[list[str]],
        typer.Option(
            "--set", help="Override a hyperparameter, KEY=VALUE (repeatable), e.g. --set qkv_bias=true."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Show parameter counts and fp32 size of an architecture preset (built without allocating weights)."""
    import torch

    from llm_core.config_io import config_to_dict, parse_override
    from llm_model.gpt import build_model, model_info

    values = dict(parse_override(text) for text in overrides or [])
    with torch.device("meta"):  # shapes only: even gpt2-1558m costs no memory
        model = build_model(arch, preset, **values)
    info = {"preset": preset, **model_info(model), "config": config_to_dict(model.config)}
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"architecture: {info['architecture']}" + (f" (preset {preset})" if preset else ""))
    typer.echo(f"parameters: {info['parameters']:,}")
    typer.echo(f"parameters without the output head (head tied): {info['parameters_without_head']:,}")
    typer.echo(f"size (fp32): {info['size_mb_fp32']:.2f} MB")


def _tokenizer(name: str) -> Any:
    from llm_core import load_tokenizer

    return load_tokenizer(name)


def generate_command(
    checkpoint: ModelArg,
    prompt: Annotated[str, typer.Argument(help="The text to continue.")],
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help=f"Tokens to generate at most (0 to {MAX_NEW_TOKENS:,}).")
    ] = 50,
    temperature: Annotated[
        float, typer.Option("--temperature", help="0 = greedy; higher = more random.")
    ] = 0.0,
    top_k: Annotated[
        Optional[int], typer.Option("--top-k", help="Sample among the k most likely tokens.")
    ] = None,
    top_p: Annotated[
        Optional[float], typer.Option("--top-p", help="Nucleus sampling: smallest set with probability p.")
    ] = None,
    seed: Annotated[
        Optional[int], typer.Option("--seed", help="Random seed for reproducible sampling.")
    ] = None,
    stop: Annotated[
        Optional[list[str]], typer.Option("--stop", help="Stop when this text appears (repeatable).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Recompute the whole window every step.")
    ] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Print tokens as they are generated.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object (no streaming).")] = False,
    tokenizer: Annotated[
        Optional[str],
        typer.Option("--tokenizer", help="Registered tokenizer (default: the checkpoint's, else gpt2)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="Device to run on, e.g. cpu or cuda.")] = "cpu",
    no_verify: NoVerify = False,
    dtype: Dtype = "auto",
    quantize: Quantize = "none",
    force: Force = False,
) -> None:
    """Continue PROMPT with MODEL."""
    from llm_core.errors import ConfigError
    from llm_model.checkpoint import load_pretrained
    from llm_model.generation import default_eos_ids, generate_text, stream_tokens
    from llm_model.quantize import quantize_model

    if not 0 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ConfigError(
            f"--max-new-tokens {max_new_tokens}: expected 0 to {MAX_NEW_TOKENS:,} tokens in one run"
        )
    model = load_pretrained(checkpoint, map_location=device, verify=not no_verify, dtype=dtype, force=force)
    quantize_model(model, quantize)
    recorded = getattr(model, "checkpoint_config", {}).get("tokenizer")
    name = tokenizer or recorded or DEFAULT_TOKENIZER
    tok = _tokenizer(name)
    options: dict[str, Any] = {
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "seed": seed,
        "use_cache": not no_cache,
        "stop_strings": stop or None,
    }
    if stream and not as_json:
        typer.echo(prompt, nl=False)
        ids: list[int] = []
        shown = ""
        eos = default_eos_ids(tok)
        for token in stream_tokens(
            model, tok.encode(prompt), max_new_tokens, eos_id=eos, tokenizer=tok, **options
        ):
            if int(token[0]) in eos:
                break
            ids.append(int(token[0]))
            text = tok.decode(ids)
            for s in stop or []:
                if s in text:
                    text = text[: text.index(s)]
            if text.endswith("\ufffd"):
                continue  # an incomplete UTF-8 character: wait for the next token
            typer.echo(text[len(shown) :], nl=False)
            shown = text
        typer.echo()
        return
    completion = generate_text(model, tok, prompt, max_new_tokens, **options)
    if as_json:
        record = {
            "checkpoint": str(checkpoint),
            "tokenizer": name,
            "prompt": prompt,
            "completion": completion,
        }
        typer.echo(json.dumps(record, indent=2))
    else:
        typer.echo(prompt + str(completion))


def _report_import(src: object, out: Path, model: Any, tokenizer: str | None, as_json: bool) -> None:
    """The closing line (or JSON document) of ``import-hf`` and ``import-book``."""
    from llm_model.gpt import model_info

    parameters = model_info(model)["parameters"]
    if as_json:
        echo_json({"source": str(src), "out": str(out), "parameters": parameters, "tokenizer": tokenizer})
        return
    typer.echo(f"imported {parameters:,} parameters from {src} into {out}")


def import_hf_command(
    src: Annotated[
        str,
        typer.Argument(
            help="Local Hugging Face directory (gpt2, llama, mistral or phi), or a hub repo id ([hub] extra)."
        ),
    ],
    old_out: OldOut = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Checkpoint directory to write.")] = None,
    tokenizer: Annotated[
        Optional[str],
        typer.Option(
            "--tokenizer",
            help="Tokenizer to record [default: the directory's own tokenizer.json; gpt2 for GPT-2's BPE].",
        ),
    ] = None,
    dtype: Dtype = "auto",
    force: Force = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --out even if it is not an import-hf output.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Import weights in the Hugging Face layout (GPT-2, Llama, Mistral, Phi) as a scratchlm checkpoint.

    Single or sharded safetensors, or pytorch_model.bin; the weights keep their dtype
    (--dtype to change it) and the model keeps its own tokenizer.json, special tokens,
    EOS ids and chat template.
    """
    from llm_model.checkpoint import save_pretrained
    from llm_model.hf import import_hf, own_tokenizer, resolve_source
    from llm_model.loading import resolve_dtype

    out = resolve_out(out, old_out)
    check_output_dir(out, command="import-hf", overwrite=overwrite, option="--out")  # before any work
    directory = resolve_source(src)
    model = import_hf(directory, dtype=resolve_dtype(dtype), force=force)
    files: dict[str, Path] = {}
    if tokenizer is None:
        tokenizer, files = own_tokenizer(directory, model)
    save_pretrained(model, out, tokenizer=tokenizer, files=files)
    write_output_marker(out, "import-hf")  # save_pretrained renames the whole checkpoint into place
    _report_import(src, out, model, tokenizer, as_json)


def import_book_command(
    src: Annotated[
        Path, typer.Argument(help="A .pth saved from the book's GPTModel (torch.save of its state_dict).")
    ],
    old_out: OldOut = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Checkpoint directory to write.")] = None,
    preset: Annotated[
        str, typer.Option("--preset", help="The book's configuration the file was saved from.")
    ] = "gpt2-124m",
    qkv_bias: Annotated[
        bool, typer.Option("--qkv-bias", help="The model has query/key/value biases (OpenAI's weights).")
    ] = False,
    overrides: Annotated[
        Optional[list[str]],
        typer.Option(
            "--set", help="Another config value, KEY=VALUE (repeatable), e.g. --set context_length=256."
        ),
    ] = None,
    tokenizer: Annotated[str, typer.Option("--tokenizer", help="Tokenizer to record.")] = DEFAULT_TOKENIZER,
    force: Force = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --out even if it is not an import-book output.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Import a model trained with the book's own code (chapter 4's GPTModel) as a scratchlm checkpoint."""
    from llm_core.config_io import parse_override
    from llm_model.book_weights import import_book
    from llm_model.checkpoint import save_pretrained

    out = resolve_out(out, old_out)
    check_output_dir(out, command="import-book", overwrite=overwrite, option="--out")  # before any work
    values = dict(parse_override(text) for text in overrides or [])
    model = import_book(src, preset=preset, qkv_bias=qkv_bias, force=force, **values)
    save_pretrained(model, out, tokenizer=tokenizer)
    write_output_marker(out, "import-book")
    _report_import(src, out, model, tokenizer, as_json)


def export_hf_command(
    checkpoint: ModelArg,
    old_out: OldOut = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Directory for the Hugging Face files.")
    ] = None,
    no_verify: NoVerify = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Write into --out even if it is not empty and not an export's."),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Export a checkpoint in the Hugging Face layout of its family (loadable by transformers)."""
    from llm_model.checkpoint import load_pretrained
    from llm_model.hf import export_hf

    out = resolve_out(out, old_out)
    claim_output_dir(out, command="export-hf", overwrite=overwrite, option="--out")
    export_hf(load_pretrained(checkpoint, verify=not no_verify), out)
    if as_json:
        echo_json({"model": str(checkpoint), "out": str(out), "files": sorted(p.name for p in out.iterdir())})
        return
    typer.echo(f"exported {checkpoint} to {out} (Hugging Face layout)")
