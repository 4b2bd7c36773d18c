"""The one error type of the serving routes: a bad request, answered in each API's own error shape."""

from __future__ import annotations

__all__ = ["RequestError"]


class RequestError(Exception):
    """A bad request: ``status`` (400, 404, 422, ...) and a message for the client.

    ``param`` names the offending field (OpenAI's ``error.param``); ``kind`` is
    OpenAI's ``error.type`` (``invalid_request_error`` unless given).
    """

    def __init__(
        self, status: int, message: str, *, param: str | None = None, kind: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind
