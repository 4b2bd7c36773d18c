"""LLM-as-a-judge (book chapter 7): a larger model scores each response from 0 to 100.

For every record ``{instruction, input, output, model_response}`` the judge
gets the book's prompt (:func:`judge_prompt`); the score is the first integer
0-100 in its reply (:func:`parse_score`). A reply without one is asked again,
up to ``max_tries`` tries; a connection error, timeout or server error is
retried with exponential backoff within the same budget.

Every record's outcome (score or failure, with every raw reply and error) is
appended to a JSONL file as soon as it is known, so a crash loses nothing:
re-running with the same file skips the records already scored there and
retries only the failed and missing ones.

Backends: a local Ollama server through the official ``ollama`` client
(default ``http://localhost:11434``, model ``llama3``) and any
OpenAI-compatible endpoint through the ``openai`` client; both come with
``pip install 'llm-eval[judge]'``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from llm_core.errors import ConfigError, DataError, MissingDependencyError
from llm_eval.reports import evaluator

__all__ = [
    "BACKENDS",
    "DEFAULT_OLLAMA_HOST",
    "JudgeBackend",
    "JudgeServerError",
    "JudgeTransientError",
    "OllamaJudge",
    "OpenAIJudge",
    "evaluate_judge",
    "histogram",
    "judge_prompt",
    "load_records",
    "make_backend",
    "parse_score",
    "read_scores",
    "run_judge",
]

DEFAULT_OLLAMA_HOST = "http://localhost:11434"
DEFAULT_MODEL = "llama3"
#: The book's sampling options for a reproducible judge.
JUDGE_OPTIONS = {"seed": 123, "temperature": 0, "num_ctx": 2048}


class JudgeServerError(ConfigError):
    """No judge server answers at the address, or it lacks the judge model (fix: --host/--model)."""


class JudgeTransientError(Exception):
    """A failure worth retrying: connection refused or reset, timeout, server error (5xx) or 429."""


class JudgeBackend(Protocol):
    """What :func:`run_judge` needs from a judge server client."""

    url: str
    model: str

    def check(self) -> None:
        """Raise :class:`JudgeServerError` when no server answers or it lacks the model."""

    def ask(self, prompt: str) -> str:
        """The judge's raw reply to one user message; :class:`JudgeTransientError` to retry."""


def judge_prompt(entry: dict[str, Any], response_key: str = "model_response") -> str:
    """The book's judge prompt for one record (chapter 7, "Evaluating the finetuned LLM")."""
    from llm_data import format_input

    return (
        f"Given the input `{format_input(entry)}` "
        f"and correct output `{entry['output']}`, "
        f"score the model response `{entry[response_key]}`"
        f" on a scale from 0 to 100, where 100 is the best score. "
        f"Respond with the integer number only."
    )


_INTEGER = re.compile(r"(?<![\d.\-])(\d+)(?!\d|\.\d)")


def parse_score(reply: str) -> int | None:
    """The first integer in 0..100 in ``reply`` (not part of a decimal or negative number), else ``None``."""
    for match in _INTEGER.finditer(reply or ""):
        value = int(match.group(1))
        if 0 <= value <= 100:
            return value
    return None


def histogram(scores: Iterable[int], width: int = 10) -> dict[str, int]:
    """Counts per bucket ``"0-9"``, ``"10-19"`` … ``"90-100"`` (the last bucket includes 100)."""
    edges = list(range(0, 100, width))
    buckets = {f"{lo}-{lo + width - 1 if lo + width < 100 else 100}": 0 for lo in edges}
    names = list(buckets)
    for score in scores:
        buckets[names[min(score // width, len(names) - 1)]] += 1
    return buckets


def _missing(extra: str, package: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"the judge's {package} backend needs the `{package}` package: pip install 'llm-eval[{extra}]'"
    )


class OllamaJudge:
    """A judge behind an Ollama server (``/api/chat``), through the official ``ollama`` client."""

    def __init__(
        self,
        host: str | None = None,
        model: str = DEFAULT_MODEL,
        *,
        timeout: float = 120.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        try:
            import ollama
        except ImportError:
            raise _missing("judge", "ollama") from None
        self.url = (host or DEFAULT_OLLAMA_HOST).rstrip("/")
        self.model = model
        self.options = dict(JUDGE_OPTIONS if options is None else options)
        self._ollama = ollama
        self._client = ollama.Client(host=self.url, timeout=timeout)
        self.timeout = timeout

    def _call(self, function: Callable[[], Any]) -> Any:
        import httpx

        try:
            return function()
        except ConnectionError as exc:
            raise JudgeTransientError(f"connection failed: {exc}") from None
        except httpx.TimeoutException:
            raise JudgeTransientError(f"no answer within {self.timeout:g}s (timeout)") from None
        except httpx.TransportError as exc:
            raise JudgeTransientError(f"transport error: {exc}") from None
        except self._ollama.ResponseError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 429):
                raise JudgeTransientError(f"server error {exc.status_code}: {exc.error}") from None
            raise

    def check(self) -> None:
        """Ask ``/api/tags``; fail with one line when nothing answers or the model is absent."""
        try:
            listed = self._call(self._client.list)
        except JudgeTransientError as exc:
            raise JudgeServerError(
                f"no judge server at {self.url}: start `ollama serve` or pass --host ({exc})"
            ) from None
        names = [m.model for m in listed.models if m.model]
        if names and self.model not in names and f"{self.model}:latest" not in names:
            raise JudgeServerError(
                f"judge model '{self.model}' is not on the server at {self.url}; "
                f"run `ollama pull {self.model}` or pass --model (available: {', '.join(names)})"
            )

    def ask(self, prompt: str) -> str:
        """One ``/api/chat`` request without streaming; the reply's text."""
        response = self._call(
            lambda: self._client.chat(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                options=self.options,
                stream=False,
            )
        )
        return response.message.content or ""


class OpenAIJudge:
    """A judge behind any OpenAI-compatible endpoint (``/v1/chat/completions``), via the ``openai`` client."""

    def __init__(
        self,
        host: str | None = None,
        model: str = DEFAULT_MODEL,
        *,
        timeout: float = 120.0,
        api_key: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise _missing("judge", "openai") from None
        base = (host or os.environ.get("OPENAI_BASE_URL") or "http://localhost:11434/v1").rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        self.url = base
        self.model = model
        self.timeout = timeout
        self.options = {"temperature": 0, "seed": 123} if options is None else dict(options)
        self._openai = openai
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self._client = openai.OpenAI(base_url=base, api_key=key, timeout=timeout, max_retries=0)

    def _call(self, function: Callable[[], Any]) -> Any:
        openai = self._openai
        try:
            return function()
        except openai.APITimeoutError:
            raise JudgeTransientError(f"no answer within {self.timeout:g}s (timeout)") from None
        except openai.APIConnectionError as exc:
            raise JudgeTransientError(f"connection failed: {exc}") from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 429):
                raise JudgeTransientError(f"server error {exc.status_code}: {exc.message}") from None
            raise

    def check(self) -> None:
        """Ask ``/v1/models``; fail with one line when nothing answers or the model is absent."""
        try:
            listed = self._call(self._client.models.list)
        except JudgeTransientError as exc:
            raise JudgeServerError(
                f"no judge server at {self.url}: start an OpenAI-compatible server "
                f"(e.g. `ollama serve`) or pass --host ({exc})"
            ) from None
        names = [m.id for m in listed.data]
        if names and self.model not in names:
            raise JudgeServerError(
                f"judge model '{self.model}' is not served at {self.url}; pass --model "
                f"(available: {', '.join(names)})"
            )

    def ask(self, prompt: str) -> str:
        """One chat completion without streaming; the reply's text."""
        response = self._call(
            lambda: self._client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], **self.options
            )
        )
        return response.choices[0].message.content or ""


BACKENDS: dict[str, type] = {"ollama": OllamaJudge, "openai": OpenAIJudge}


def make_backend(
    backend: str = "ollama",
    host: str | None = None,
    model: str = DEFAULT_MODEL,
    *,
    timeout: float = 120.0,
    api_key: str | None = None,
) -> JudgeBackend:
    """A judge client by backend name (``ollama`` or ``openai``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"judge backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"timeout: expected a number of seconds > 0, got {timeout!r}")
    if backend == "openai":
        return OpenAIJudge(host, model, timeout=timeout, api_key=api_key)
    return OllamaJudge(host, model, timeout=timeout)


def load_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records from a JSON list (the book's ``instruction-data-with-response.json``) or a JSONL file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the records ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    records: list[Any]
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{number}: invalid JSON ({exc.msg}); expected one record per line"
                ) from None
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); expected a list of records"
            ) from None
        if not isinstance(records, list):
            raise DataError(f"{path}: expected a JSON list of records, found {type(records).__name__}")
    for number, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("instruction"), str):
            raise DataError(f"{path}: record #{number}: expected an object with a string 'instruction'")
        if not isinstance(record.get("output"), str):
            raise DataError(f"{path}: record #{number}: expected a string 'output' (the reference answer)")
    return records


def _key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def read_scores(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The outcomes already in a scores JSONL file, by record key (a later line wins).

    A truncated or unreadable line (a crash mid-write) is ignored: that record is judged again.
    """
    path = Path(path)
    outcomes: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return outcomes
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            outcomes[item["key"]] = item
    return outcomes


class _ScoresFile:
    """Append-only JSONL writer shared by the worker threads (one line per record, fsynced)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._handle = path.open("a", encoding="utf-8")
        if self._handle.tell() and not path.read_bytes().endswith(b"\n"):
            self._handle.write("\n")  # end a line a crash left unfinished

    def append(self, item: dict[str, Any]) -> None:
        line = json.dumps(item, ensure_ascii=False) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _judge_one(
    backend: JudgeBackend, prompt: str, max_tries: int, backoff: float, sleep: Callable[[float], None]
) -> dict[str, Any]:
    replies: list[str] = []
    errors: list[str] = []
    delay = backoff
    tries = 0
    for attempt in range(max_tries):
        tries = attempt + 1
        try:
            reply = backend.ask(prompt)
        except JudgeTransientError as exc:
            errors.append(str(exc))
            if attempt + 1 < max_tries:
                sleep(delay)
                delay *= 2
            continue
        except Exception as exc:  # a non-retryable error of this record only
            errors.append(f"{type(exc).__name__}: {exc}")
            break
        replies.append(reply)
        score = parse_score(reply)
        if score is not None:
            return {"score": score, "ok": True, "replies": replies, "errors": errors, "tries": attempt + 1}
        errors.append(f"reply has no integer 0-100: {reply[:200]!r}")
    return {
        "score": None,
        "ok": False,
        "replies": replies,
        "errors": errors,
        "tries": tries,
    }


def run_judge(
    records: Sequence[dict[str, Any]],
    backend: JudgeBackend,
    scores_path: str | os.PathLike[str],
    *,
    max_tries: int = 3,
    concurrency: int = 4,
    backoff: float = 1.0,
    response_key: str = "model_response",
    check_server: bool = True,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Judge every record (skipping those already scored in ``scores_path``) and summarise.

    Returns ``records``, ``scored``, ``failed``, ``resumed`` (already scored
    before this run), ``mean_score``, ``histogram``, ``failures`` (index and
    last error of each failed record) and ``scores`` (per record, ``None`` when failed).
    """
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise ConfigError(f"max_tries: expected an integer >= 1, got {max_tries!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency: expected an integer >= 1, got {concurrency!r}")
    for number, record in enumerate(records):
        if not isinstance(record.get(response_key), str):
            raise DataError(
                f"record #{number}: expected a string '{response_key}' (the response to judge); "
                "generate responses first (pass a checkpoint) or set --response-key"
            )
    prompts = [judge_prompt(r, response_key) for r in records]
    keys = [_key(p) for p in prompts]
    scores_path = Path(scores_path)
    done = {k: v for k, v in read_scores(scores_path).items() if v.get("ok")}
    todo = sorted({i for i, k in enumerate(keys) if k not in done}, key=lambda i: i)
    first_of_key: dict[str, int] = {}
    for i in todo:
        first_of_key.setdefault(keys[i], i)
    resumed = len(records) - len(todo)
    if first_of_key and check_server:
        backend.check()
    outcomes: dict[str, dict[str, Any]] = dict(done)
    writer = _ScoresFile(scores_path)
    finished = [resumed]
    lock = threading.Lock()

    def work(index: int) -> None:
        record = records[index]
        try:
            result = _judge_one(backend, prompts[index], max_tries, backoff, sleep)
        except BaseException as exc:  # never let one record lose the others
            result = {"score": None, "ok": False, "replies": [], "errors": [repr(exc)], "tries": 0}
        item = {
            "key": keys[index],
            "index": index,
            "instruction": record.get("instruction", ""),
            "input": record.get("input", ""),
            "output": record.get("output", ""),
            "model_response": record.get(response_key, ""),
            "judge": {"url": backend.url, "model": backend.model},
            "time": time.time(),
            **result,
        }
        writer.append(item)
        with lock:
            outcomes[keys[index]] = item
            finished[0] += 1
            if progress is not None:
                progress(finished[0], len(records))

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(work, first_of_key.values()))
    finally:
        writer.close()
    per_record = [outcomes.get(k, {}).get("score") for k in keys]
    scored = [s for s in per_record if s is not None]
    failures = [
        {"index": i, "error": (outcomes.get(k, {}).get("errors") or ["not judged"])[-1]}
        for i, (k, s) in enumerate(zip(keys, per_record, strict=True))
        if s is None
    ]
    return {
        "records": len(records),
        "scored": len(scored),
        "failed": len(failures),
        "resumed": resumed,
        "mean_score": sum(scored) / len(scored) if scored else None,
        "histogram": histogram(scored),
        "failures": failures,
        "scores": per_record,
        "scores_file": str(scores_path),
        "judge": {"url": backend.url, "model": backend.model},
    }


def generate_responses(
    records: Sequence[dict[str, Any]],
    checkpoint: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    max_new_tokens: int = 256,
    response_key: str = "model_response",
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Fill ``response_key`` of records lacking it with the checkpoint's greedy answer (book chapter 7)."""
    from llm_data import format_input
    from llm_eval.checkpoints import load_model_and_tokenizer
    from llm_model import generate_text

    model, tok = load_model_and_tokenizer(checkpoint, tokenizer, device=device)
    out = []
    for record in records:
        record = dict(record)
        if not isinstance(record.get(response_key), str):
            prompt = format_input(record) + "\n\n### Response:\n"
            text = generate_text(model, tok, prompt, max_new_tokens, stop_strings=["### Instruction:"])
            record[response_key] = str(text).strip()
        out.append(record)
    return out


@evaluator(
    "judge",
    keys=[
        "records",
        "scored",
        "failed",
        "resumed",
        "mean_score",
        "histogram",
        "failures",
        "scores",
        "scores_file",
        "judge",
    ],
)
def evaluate_judge(
    records: str | os.PathLike[str] | Sequence[dict[str, Any]],
    *,
    scores: str | os.PathLike[str] | None = None,
    backend: str = "ollama",
    host: str | None = None,
    model: str = DEFAULT_MODEL,
    checkpoint: str | os.PathLike[str] | None = None,
    tokenizer: Any = None,
    max_new_tokens: int = 256,
    response_key: str = "model_response",
    max_tries: int = 3,
    concurrency: int = 4,
    timeout: float = 120.0,
    backoff: float = 1.0,
    api_key: str | None = None,
    review: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Score responses with a judge model; ``records`` is a JSON/JSONL file or a list of records.

    Records lacking ``response_key`` get one generated by ``checkpoint`` first.
    Raw replies go to ``scores`` (default: ``<records>.judge.jsonl``, or
    ``judge-scores.jsonl``); ``review`` also writes an HTML page.
    """
    if isinstance(records, (str, os.PathLike)):
        default_scores = Path(records).with_suffix(".judge.jsonl")
        items = load_records(records)
    else:
        default_scores = Path("judge-scores.jsonl")
        items = [dict(r) for r in records]
    if checkpoint is not None:
        items = generate_responses(
            items, checkpoint, tokenizer=tokenizer, max_new_tokens=max_new_tokens, response_key=response_key
        )
    client = make_backend(backend, host, model, timeout=timeout, api_key=api_key)
    report = run_judge(
        items,
        client,
        scores or default_scores,
        max_tries=max_tries,
        concurrency=concurrency,
        backoff=backoff,
        response_key=response_key,
    )
    if review is not None:
        from llm_eval.review import write_review

        write_review(review, report["scores_file"])
        report["review"] = str(review)
    return {"evaluator": "judge", **report}
