"""The ``scratchlm`` commands of llm-eval: ``evaluate``, ``judge`` and ``serve``.

torch and the servers' packages are imported inside each command so
``scratchlm --help`` stays fast.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

from llm_core.cli_options import AsJson, Device, MaxNewTokens, ModelArg, Quantize, deprecated, echo_json
from llm_core.errors import ConfigError
from llm_model.commands import Dtype, Force, NoVerify

__all__ = [
    "EvaluateCommand",
    "evaluate_command",
    "evaluator_options",
    "judge_command",
    "parse_evaluator_args",
    "run_evaluator",
    "serve_command",
]


def parse_evaluator_args(args: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """``["ckpt", "--text", "a.txt", "--stride=16", "--hub"]`` -> ``(["ckpt"], {"text": "a.txt", ...})``.

    Values are read as JSON when they parse (numbers, lists, true/false), else as strings;
    an option without a value is ``True``.
    """
    positional: list[Any] = []
    options: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and len(arg) > 2:
            key, has_value, raw = arg[2:].partition("=")
            if not has_value:
                if i + 1 < len(args) and not args[i + 1].startswith("--"):
                    raw = args[i + 1]
                    i += 1
                else:
                    raw = "true"
            options[key.replace("-", "_")] = _value(raw)
        else:
            positional.append(_value(arg))
        i += 1
    return positional, options


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def run_evaluator(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Look ``name`` up in the evaluators registry, call it, and check the report against its schema."""
    from llm_core import get_registry
    from llm_eval.reports import check_report

    function = get_registry("evaluators")[name].obj
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        signature = None
    if signature is not None:
        params = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        known = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        unknown = sorted(set(kwargs) - set(known))
        if unknown and not takes_any:
            options = ", ".join("--" + n.replace("_", "-") for n in known)
            raise ConfigError(
                f"evaluator '{name}': unknown option(s) "
                f"{', '.join('--' + u.replace('_', '-') for u in unknown)}; "
                f"it takes: {options}"
            )
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"evaluator '{name}': {exc}") from None
    report = function(*args, **kwargs)
    return check_report(name, report, getattr(function, "schema", ()))


def _summary(report: dict[str, Any]) -> str:
    keys = [k for k, v in report.items() if isinstance(v, (int, float, str)) or v is None]
    return "\n".join(f"{k}: {report[k]}" for k in keys)


#: ``ctx.meta`` key: the evaluator named before ``--help`` (``evaluate NAME --help``).
_HELP_FOR = "llm_eval.evaluate.help_for"
#: Evaluator parameters the command fills itself: MODEL, --device, and an in-memory model.
_FILLED_BY_EVALUATE = {"checkpoint": "MODEL", "device": "--device", "model": None}


class EvaluateCommand(TyperCommand):
    """``evaluate``'s command: ``scratchlm evaluate NAME --help`` also lists evaluator NAME's own options."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if set(args) & set(self.get_help_option_names(ctx)):
            ctx.meta[_HELP_FOR] = _first_positional(args, self)
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[MODEL]", "[EVALUATOR OPTIONS]"]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        name = ctx.meta.get(_HELP_FOR)
        if name is not None:
            title, rows = evaluator_options(name)
            formatter.write("\n")
            with formatter.section(title):
                formatter.write_dl(rows)


def _first_positional(args: list[str], command: Any) -> str | None:
    """The first argument that is neither an option nor the value of one of ``command``'s options."""
    takes_value = {
        opt for p in command.params if p.param_type_name == "option" and not p.is_flag for opt in p.opts
    }
    i = 0
    while i < len(args):
        if args[i] in takes_value:
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            return args[i]
    return None


def evaluator_options(name: str) -> tuple[str, list[tuple[str, str]]]:
    """``(title, [(option, description), ...])``: evaluator ``name``'s own options, from its signature."""
    from llm_core import get_registry
    from llm_core.errors import PluginError

    try:
        function = get_registry("evaluators")[name].obj
    except PluginError as exc:
        return f"Evaluator {name!r}", [("", str(exc))]
    summary = (inspect.getdoc(function) or "").split("\n", 1)[0].replace("``", "")
    rows = []
    for param in inspect.signature(function).parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        shown = _FILLED_BY_EVALUATE.get(param.name, "--" + param.name.replace("_", "-"))
        if shown is None:
            continue
        default = "" if param.default in (inspect.Parameter.empty, None) else f"[default: {param.default!r}]"
        kind = "" if param.annotation is inspect.Parameter.empty else str(param.annotation)
        if shown in ("MODEL", "--device"):
            kind = "a checkpoint directory" if shown == "MODEL" else "where the model runs"
        rows.append((shown, " ".join(x for x in (kind, default) if x)))
    title = f"Options of evaluator {name!r}" + (f" ({summary.rstrip('.')})" if summary else "")
    return title, rows


def evaluate_command(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="Registered evaluator: perplexity, accuracy, mmlu, judge, … "
            "(`scratchlm evaluate NAME --help` lists its options)."
        ),
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Write the JSON report here (atomically).")
    ] = None,
    as_json: AsJson = False,
    device: Annotated[
        Optional[str],
        typer.Option("--device", help="Where to run the model: cpu, cuda, cuda:1, mps [default: cpu]."),
    ] = None,
    no_verify: NoVerify = False,
    dtype: Dtype = "auto",
    quantize: Quantize = "none",
    force: Force = False,
) -> None:
    """Run a registered evaluator on MODEL; other options go to it: evaluate perplexity MODEL --text FILE.

    The evaluator's own options are its keyword parameters, dashed
    (``--stride 64`` -> ``stride=64``; values read as JSON when they parse).
    """
    from llm_eval.reports import json_safe, write_report
    from llm_model.checkpoint import checksum_verification
    from llm_model.loading import load_options
    from llm_model.quantize import quantize_option

    args, kwargs = parse_evaluator_args(list(ctx.args))
    if "checkpoint" in kwargs:  # 0.2 spelled the model --checkpoint DIR
        deprecated("--checkpoint", "the positional MODEL (scratchlm evaluate NAME MODEL …)")
    if device is not None:
        _check_takes_device(name)
        kwargs["device"] = device
    with (
        checksum_verification(not no_verify),
        load_options(dtype=dtype, force=force),
        quantize_option(quantize),
    ):
        report = run_evaluator(name, *args, **kwargs)
    if out is not None:
        write_report(out, report)
    if as_json:
        echo_json(json_safe(report))
    else:
        typer.echo(_summary(report))


def _check_takes_device(name: str) -> None:
    from llm_core import get_registry

    params = inspect.signature(get_registry("evaluators")[name].obj).parameters
    if "device" not in params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        raise ConfigError(f"evaluator '{name}' runs no model, so it takes no --device")


def judge_command(
    records: Annotated[
        Path, typer.Argument(help="JSON list (or JSONL) of {instruction, input, output, model_response}.")
    ],
    checkpoint: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="[MODEL]",
            help="Generate the records' missing model_response with this checkpoint directory.",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="ollama or openai (any compatible server).")
    ] = "ollama",
    host: Annotated[
        Optional[str], typer.Option("--host", help="Judge server URL (default http://localhost:11434).")
    ] = None,
    judge_model: Annotated[
        str, typer.Option("--judge-model", help="The judge model's name on the server.")
    ] = "llama3",
    old_model: Annotated[
        Optional[str], typer.Option("--model", hidden=True, help="Deprecated: --judge-model.")
    ] = None,
    old_checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", hidden=True, help="Deprecated: the positional MODEL.")
    ] = None,
    scores: Annotated[
        Optional[Path],
        typer.Option("--scores", help="JSONL of raw replies (resumable); default RECORDS.judge.jsonl."),
    ] = None,
    max_tries: Annotated[int, typer.Option("--max-tries", help="Tries per record.")] = 3,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight at once.")] = 4,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for one reply.")] = 120.0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the JSON report here.")] = None,
    review: Annotated[
        Optional[Path], typer.Option("--review", help="Write an HTML review page here.")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars on stderr.")
    ] = True,
    no_verify: NoVerify = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace --out/--review/--scores files judge did not write."),
    ] = False,
    device: Device = "cpu",
    as_json: AsJson = False,
) -> None:
    """Score model responses 0-100 with a judge model on an Ollama or OpenAI-compatible server.

    The judge server and model are checked before any response is generated;
    generated responses are kept in the scores file, so a re-run reuses them.
    An existing --out, --review or --scores file is replaced (or resumed) only if
    judge wrote it, unless --overwrite.
    """
    from llm_core.output_dirs import check_output_file
    from llm_eval.reports import write_report
    from llm_eval.review import REVIEW_SIGNATURE
    from llm_model.checkpoint import checksum_verification

    if old_model is not None:
        deprecated("--model", "--judge-model")
        judge_model = old_model
    if old_checkpoint is not None:
        if checkpoint is not None:
            raise ConfigError("give the model once: as MODEL (--checkpoint is its old spelling)")
        deprecated("--checkpoint", "the positional MODEL")
        checkpoint = old_checkpoint
    default_scores = records.with_suffix(".judge.jsonl")  # what the judge evaluator uses
    for option, path, signature in (
        ("--out", out, '"evaluator": "judge"'),
        ("--review", review, REVIEW_SIGNATURE),
        ("--scores", scores or default_scores, '"key": '),
    ):
        if path is not None:  # before any expensive work
            check_output_file(path, command="judge", signature=signature, overwrite=overwrite, option=option)
    with checksum_verification(not no_verify):
        report = run_evaluator(
            "judge",
            records,
            scores=scores,
            backend=backend,
            host=host,
            model=judge_model,
            checkpoint=checkpoint,
            max_tries=max_tries,
            concurrency=concurrency,
            timeout=timeout,
            review=review,
            progress=progress,
            device=device,
        )
    if out is not None:
        write_report(out, report)
    if as_json:
        echo_json(report)
        return
    mean = report["mean_score"]
    typer.echo(
        f"scored {report['scored']}/{report['records']} "
        f"(failed {report['failed']}, resumed {report['resumed']}); "
        f"mean score {'n/a' if mean is None else f'{mean:.2f}'}; replies in {report['scores_file']}"
    )


def serve_command(
    checkpoint: ModelArg,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port (11434, Ollama's, by default; 0: any free one).")
    ] = 11434,
    tokenizer: Annotated[
        Optional[str],
        typer.Option("--tokenizer", help="Tokenizer name (default: the checkpoint's, else gpt2)."),
    ] = None,
    name: Annotated[
        Optional[str], typer.Option("--name", help="Model name clients use (default: the directory's name).")
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a --host other machines can reach (the server has no authentication).",
        ),
    ] = False,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body; larger ones get 413.")
    ] = 1 << 20,
    max_new_tokens: MaxNewTokens = 4096,
    max_tokens: Annotated[
        Optional[int], typer.Option("--max-tokens", hidden=True, help="Deprecated: --max-new-tokens.")
    ] = None,
    request_timeout: Annotated[
        float,
        typer.Option("--request-timeout", help="Seconds a client has to send its headers, and its body."),
    ] = 30.0,
    shutdown_grace: Annotated[
        float,
        typer.Option(
            "--shutdown-grace",
            help="Seconds the answers in progress may go on after Ctrl-C/SIGTERM before they are ended.",
        ),
    ] = 3.0,
    max_batch_size: Annotated[
        int,
        typer.Option(
            "--max-batch-size", help="Requests decoded together (continuous batching; 1: one at a time)."
        ),
    ] = 8,
    max_queue: Annotated[
        int,
        typer.Option(
            "--max-queue", help="Requests that may wait for a free batch slot; beyond, 503 with Retry-After."
        ),
    ] = 32,
    stall_timeout: Annotated[
        float,
        typer.Option(
            "--stall-timeout", help="Seconds a client may stop reading its stream before it is dropped."
        ),
    ] = 30.0,
    device: Device = "cpu",
    dtype: Dtype = "auto",
    quantize: Quantize = "none",
    no_verify: NoVerify = False,
    force: Force = False,
) -> None:
    """Serve MODEL with the Ollama (/api/*) and OpenAI (/v1/*) APIs and a chat page at /.

    Prints "scratchlm serve: listening on URL" once it accepts connections. Ctrl-C or SIGTERM
    stop it: no new connections, the answers in progress end (with their final chunk) within
    --shutdown-grace seconds, exit status 0.
    """
    from llm_eval.limits import ServerLimits
    from llm_eval.server import serve
    from llm_model.checkpoint import checksum_verification
    from llm_model.loading import load_options

    if max_tokens is not None:
        deprecated("--max-tokens", "--max-new-tokens")
        max_new_tokens = max_tokens
    limits = ServerLimits(
        max_body_bytes=max_body_bytes,
        max_tokens=max_new_tokens,
        request_timeout=request_timeout,
        shutdown_grace=shutdown_grace,
    )
    with checksum_verification(not no_verify), load_options(dtype=dtype, force=force):
        serve(
            checkpoint,
            host,
            port,
            tokenizer=tokenizer,
            name=name,
            device=device,
            quantize=quantize,
            allow_remote=allow_remote,
            limits=limits,
            max_batch_size=max_batch_size,
            max_queue=max_queue,
            stall_timeout=stall_timeout,
        )
