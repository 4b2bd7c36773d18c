"""What one client may ask of ``scratchlm serve``, and how the server holds it to that.

* :class:`ServerLimits`: the largest request body, the most tokens one request
  may generate, how long a client has to send its request, how long an idle
  kept-alive connection stays open.
* :class:`BodyLimit`: ASGI middleware that reads the whole request body before
  the app sees it; a body over the limit gets 413 and one still arriving after
  ``request_timeout`` gets 408, both with a message in the route's error format.
* :func:`timed_h11_protocol`: uvicorn's h11 protocol with a deadline for the
  request line and headers (uvicorn has none): a connection that has not sent a
  complete request head ``request_timeout`` seconds after it opened (or after
  its previous response) is closed.
* :func:`check_host`: the server has no authentication, so it binds only
  loopback addresses unless the caller says otherwise (``--allow-remote``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from llm_core.errors import ConfigError

__all__ = ["BodyLimit", "ServerLimits", "check_host", "is_loopback", "timed_h11_protocol"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ServerLimits:
    """Per-request limits of the server (all checked in :meth:`__post_init__`).

    ``max_body_bytes``: largest request body (413 above it). ``max_tokens``: most
    tokens one request may generate (a larger ``max_tokens``/``num_predict`` is a 422;
    Ollama's ``num_predict: -1`` means this many). ``request_timeout``: seconds a
    client has to send its request line and headers, and again its body (408 for
    a late body; the connection is closed for late headers). ``keep_alive``:
    seconds an idle kept-alive connection stays open. ``shutdown_grace``: seconds
    the generations in progress may go on after Ctrl-C or SIGTERM before they are
    ended with a final chunk (``done_reason: "shutdown"``); 0 ends them at once.
    """

    max_body_bytes: int = 1 << 20
    max_tokens: int = 4096
    request_timeout: float = 30.0
    keep_alive: float = 5.0
    shutdown_grace: float = 3.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("request_timeout", "keep_alive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"{name}: expected a positive number of seconds, got {value!r}")
        grace = self.shutdown_grace
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace < math.inf:
            raise ConfigError(f"shutdown_grace: expected a number of seconds >= 0, got {grace!r}")


def _error_body(path: str, status: int, message: str) -> bytes:
    """The route's error format: ``{"error": {"message": ...}}`` under /v1, ``{"error": "..."}`` elsewhere."""
    if path.startswith("/v1/"):
        kind = "request_timeout" if status == 408 else "invalid_request_error"
        return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}).encode()
    return json.dumps({"error": message}).encode()


class BodyLimit:
    """ASGI middleware: reads the whole body (at most ``max_body_bytes``, within ``request_timeout``)."""

    def __init__(self, app: Any, limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits

    async def _reject(self, scope: Message, send: Send, status: int, message: str) -> None:
        body = _error_body(str(scope.get("path", "")), status, message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is never read
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _too_large(self, size: str) -> str:
        return (
            f"request body is {size} bytes, more than this server's limit of {self.limits.max_body_bytes} "
            "bytes; send a shorter prompt (the limit is `scratchlm serve --max-body-bytes`)"
        )

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, send, 413, self._too_large(declared.decode()))
            return
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.request_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                await self._reject(
                    scope,
                    send,
                    408,
                    f"the request body did not arrive within {self.limits.request_timeout:g} s; "
                    "send the whole request at once",
                )
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._reject(scope, send, 413, self._too_large(f"more than {limit}"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()  # after the body: the disconnect a streaming response listens for

        await self.app(scope, replay, send)


_PROTOCOLS: dict[float, Any] = {}


def timed_h11_protocol(request_timeout: float) -> Any:
    """uvicorn's ``H11Protocol`` that closes a connection whose request head is late (see the module doc)."""
    if request_timeout in _PROTOCOLS:
        return _PROTOCOLS[request_timeout]
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        """Closes the connection when no request head arrives within ``request_timeout`` seconds."""

        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def _arm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(request_timeout, self._head_timeout, self.cycle)

        def _head_timeout(self, cycle_when_armed: Any) -> None:
            # A new request head since the timer was armed makes a new cycle: nothing to do then.
            waiting = self.cycle is cycle_when_armed and (self.cycle is None or self.cycle.response_complete)
            if waiting and not self.transport.is_closing():
                self.transport.close()

    _PROTOCOLS[request_timeout] = TimedH11Protocol
    return TimedH11Protocol


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback ``host`` unless ``allow_remote``: the server has no authentication."""
    if not allow_remote and not is_loopback(host):
        raise ConfigError(
            f"host {host!r} is not a loopback address: anyone who can reach it could use the model "
            "(the server has no authentication); bind 127.0.0.1, or pass --allow-remote "
            "(allow_remote=True) to serve other machines"
        )
