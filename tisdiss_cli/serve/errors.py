"""The one error a request ends with: an HTTP status and one sentence for the person who sent it."""

from __future__ import annotations


class RequestError(Exception):
    """Answered as ``{"error": message}`` with ``status`` (and ``Retry-After`` when set), never a traceback."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
