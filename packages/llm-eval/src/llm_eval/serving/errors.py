"""The errors of the serving routes: a bad request, or a busy server, answered in each API's own shape."""

from __future__ import annotations

__all__ = ["RequestError", "ServerBusy"]


class RequestError(Exception):
    """A bad request: ``status`` (400, 404, 422, ...) and a message for the client.

    ``param`` names the offending field (OpenAI's ``error.param``); ``kind`` is
    OpenAI's ``error.type`` (from the status unless given); ``headers`` go with
    the answer.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind
        self.headers = headers


class ServerBusy(RequestError):
    """The engine cannot take the request now: 503 with ``Retry-After: retry_after`` seconds.

    An engine raises it from ``stream`` (before the first event), so the client
    gets a 503 instead of a stream that never starts.
    """

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(503, message, kind="server_error", headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
