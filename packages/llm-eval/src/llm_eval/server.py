"""Serve a checkpoint over HTTP: Ollama and OpenAI APIs, a chat page (``pip install 'llm-eval[serve]'``).

The app is built by :mod:`llm_eval.serving` (one router per API, and the
engine that generates: :class:`llm_eval.serving.Engine`); this module runs it:
:func:`start_server` in a background thread, :func:`serve` until Ctrl-C or
SIGTERM, which stop accepting connections, let the generations in progress go
on for ``ServerLimits.shutdown_grace`` seconds, then end each with its final
chunk (Ollama: ``"done": true, "done_reason": "shutdown"``; OpenAI: a
``finish_reason`` then ``data: [DONE]``) and exit with status 0. See
``docs/guide/serve.md`` for the routes, errors and limits.

The server has no authentication: :func:`start_server` and :func:`serve` bind
only loopback addresses unless ``allow_remote=True`` (``--allow-remote``).
"""

import asyncio
import errno
import math
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llm_core.errors import ConfigError, MissingDependencyError
from llm_eval.limits import ServerLimits, check_host, timed_h11_protocol
from llm_eval.serving import Engine, GenerationOptions, ModelRunner, RequestError, chat_prompt
from llm_eval.serving import create_app as _create_app

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "READY_LINE",
    "GenerationOptions",
    "ModelRunner",
    "RequestError",
    "RunningServer",
    "ServerLimits",
    "chat_prompt",
    "create_app",
    "load_runner",
    "serve",
    "start_server",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434


def _require_serve() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "serving needs fastapi and uvicorn: pip install 'llm-eval[serve]'"
        ) from None


def create_app(
    runner: ModelRunner, limits: ServerLimits | None = None, *, engine: Engine | None = None
) -> Any:
    """The FastAPI app serving ``runner``'s model (:func:`llm_eval.serving.create_app`; serve extra)."""
    _require_serve()
    return _create_app(runner, limits, engine=engine)


# ---- running it ----------------------------------------------------------------------------------


def _check_port(host: str, port: int) -> None:
    """Fail with one clear line when ``host:port`` cannot be bound (in use, or not a local address)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port: expected an integer in 0..65535, got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is already in use (another server, e.g. `ollama serve`?); "
                    "stop it or pass --port"
                ) from None
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass --host/--port"
            ) from None


class RunningServer:
    """A uvicorn server running in a background thread; ``stop()`` shuts it down gracefully."""

    def __init__(self, server: Any, thread: threading.Thread, host: str, port: int) -> None:
        self.server = server
        self.thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to finish the open requests and exit; wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _uvicorn_config(app: Any, host: str, port: int, log_level: str) -> Any:
    """uvicorn's config: h11 with a request-head deadline, timeouts from ``app.state.limits``."""
    import uvicorn

    limits = getattr(app.state, "limits", None) or ServerLimits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="off",
        # the generations end after shutdown_grace; uvicorn cancels what is left (with tracebacks) later
        timeout_graceful_shutdown=math.ceil(limits.shutdown_grace) + 5,
        timeout_keep_alive=max(1, math.ceil(limits.keep_alive)),
        http=timed_h11_protocol(limits.request_timeout),
    )


def _graceful_server(config: Any) -> Any:
    """uvicorn's server that ends the generations ``shutdown_grace`` s into a shutdown; exits 0 on a signal.

    uvicorn re-raises the signal that stopped it once it has shut down (Ctrl-C then
    exits 130, SIGTERM kills the process); a server that shut down cleanly should not.
    A second Ctrl-C ends the generations at once.
    """
    import uvicorn

    state = getattr(config.app, "state", None)
    engine: Any = getattr(state, "engine", None)
    limits: ServerLimits = getattr(state, "limits", None) or ServerLimits()

    class GracefulServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit and sig == signal.SIGINT and engine is not None:
                engine.close()  # the second Ctrl-C: do not wait for the grace period
            self.should_exit = True

        async def shutdown(self, sockets: Any = None) -> None:
            ending = None
            if engine is not None:
                ending = asyncio.get_running_loop().call_later(limits.shutdown_grace, engine.close)
            try:
                await super().shutdown(sockets)
            finally:
                if ending is not None:
                    ending.cancel()

    return GracefulServer(config)


def _bound_port(server: Any, port: int) -> int:
    """The port ``server`` listens on (the OS's choice when ``port`` is 0)."""
    if port == 0 and server.servers:
        return int(server.servers[0].sockets[0].getsockname()[1])
    return port


def start_server(
    app: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool = False,
    log_level: str = "warning",
    timeout: float = 30.0,
) -> RunningServer:
    """Start ``app`` with uvicorn in a daemon thread and wait until it accepts connections.

    A non-loopback ``host`` needs ``allow_remote=True`` (the server has no authentication).
    """
    _require_serve()
    check_host(host, allow_remote)
    _check_port(host, port)
    server = _graceful_server(_uvicorn_config(app, host, port, log_level))
    thread = threading.Thread(target=server.run, name=f"scratchlm-serve-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"the server on {host}:{port} did not start; is the port free? pass --port")
        time.sleep(0.02)
    return RunningServer(server, thread, host, _bound_port(server, port))


def load_runner(
    checkpoint: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    name: str | None = None,
    device: str = "cpu",
    quantize: str = "none",
) -> ModelRunner:
    """A :class:`ModelRunner` for a checkpoint directory (served name: ``name`` or the directory's name).

    ``quantize`` (``none``, ``int8``, ``bf16``) is applied after loading
    (:func:`llm_model.quantize.quantize_model`).
    """
    from llm_eval.checkpoints import load_model_and_tokenizer
    from llm_model.quantize import quantize_model

    model, tok = load_model_and_tokenizer(checkpoint, tokenizer, device=device)
    model = quantize_model(model, quantize)
    served = name or Path(checkpoint).resolve().name.lower().replace(" ", "-") or "scratchlm"
    return ModelRunner(model, tok, served, checkpoint=str(checkpoint))


#: The line :func:`serve` prints to stderr once it accepts connections (``{url}`` filled in).
READY_LINE = "scratchlm serve: listening on {url}"


def serve(
    checkpoint: str | os.PathLike[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    tokenizer: Any = None,
    name: str | None = None,
    device: str = "cpu",
    quantize: str = "none",
    log_level: str = "info",
    allow_remote: bool = False,
    limits: ServerLimits | None = None,
    max_batch_size: int = 8,
    max_queue: int = 32,
    stall_timeout: float = 30.0,
) -> None:
    """Serve a checkpoint until interrupted (Ctrl-C or SIGTERM end the open requests cleanly, then return).

    Once it accepts connections it prints :data:`READY_LINE` with the real URL to
    stderr (``port=0`` lets the OS choose a free port). A non-loopback ``host``
    needs ``allow_remote=True``. ``quantize``: see :func:`load_runner`. Requests are
    decoded together by a :class:`llm_eval.batching.ContinuousBatcher` (up to
    ``max_batch_size`` at once, ``max_queue`` more waiting, beyond that 503; a
    client that reads nothing for ``stall_timeout`` seconds is dropped).
    """
    from llm_eval.batching import BatchDecoder, ContinuousBatcher
    from llm_eval.serving import SerialEngine

    _require_serve()
    check_host(host, allow_remote)
    _check_port(host, port)
    runner = load_runner(checkpoint, tokenizer=tokenizer, name=name, device=device, quantize=quantize)
    engine: Engine
    if BatchDecoder.supports(runner.model):
        engine = ContinuousBatcher(
            runner.model,
            runner.tokenizer,
            eos_ids=runner.eos_ids,
            max_batch_size=max_batch_size,
            max_queue=max_queue,
            stall_timeout=stall_timeout,
        ).start()
    else:
        print(
            f"scratchlm serve: {type(runner.model).__name__} has no KV cache or padding masks: "
            "one request at a time",
            file=sys.stderr,
        )
        engine = SerialEngine(runner)
    app = create_app(runner, limits, engine=engine)
    server = _graceful_server(_uvicorn_config(app, host, port, log_level))
    startup = server.startup

    async def announcing_startup(sockets: Any = None) -> None:
        await startup(sockets)
        if server.started:
            url = RunningServer(server, threading.current_thread(), host, _bound_port(server, port)).url
            print(READY_LINE.format(url=url), file=sys.stderr, flush=True)

    server.startup = announcing_startup
    try:
        server.run()
    finally:
        engine.close()
