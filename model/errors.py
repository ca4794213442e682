"""Every error a caller can cause, and the one table that maps them to HTTP status codes.

Each class carries its status; `error_response` turns any of them into the contract's JSON body
`{"error": "..."}` (plus `Retry-After` for 503). They subclass KServe's own exceptions so that the
v2 REST and gRPC doors, which KServe's handlers serve, map them the same way:
`InvalidInput` -> 400 / INVALID_ARGUMENT, `ServerNotReady` -> 503 / UNAVAILABLE.
"""

from typing import Optional

from fastapi import Request
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput, ServerNotReady


class TrackerError(Exception):
    """Base class: a message for the caller and the HTTP status that goes with it."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        # KServe's gRPC interceptor reads `.reason`.
        self.reason = message

    def __str__(self) -> str:
        return self.message


class BadInput(TrackerError, InvalidInput):
    """400: the request is malformed or does not fit the video (KServe maps InvalidInput to 400)."""

    status = 400


class TooLarge(BadInput):
    """413: the upload, the frame size or the frame count is over a configured limit."""

    status = 413


class UnsupportedMedia(BadInput):
    """415: the body's Content-Type is not a video, octet-stream or multipart."""

    status = 415


class Unavailable(TrackerError, ServerNotReady):
    """503: busy (queue full), loading or shutting down. The client should retry later."""

    status = 503

    def __init__(self, message: str, retry_after: int = 5, kind: str = "unavailable"):
        super().__init__(message)
        self.retry_after = retry_after
        self.kind = kind  # busy | draining | not_ready | unavailable


class Cancelled(TrackerError):
    """A job stopped early: the client hung up, the deadline passed, or the server is stopping."""

    status = 503

    def __init__(self, message: str, retry_after: Optional[int] = None):
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(Cancelled):
    """504-like, but reported as 503 with Retry-After: the job ran past --request_timeout."""


def translate_library_error(exc: Exception) -> Exception:
    """SAM2 raises ValueError / RuntimeError for caller mistakes (no prompt, bad shapes).

    We validate prompts before the model sees them, so these are rare; when they happen they are
    the caller's input, not our bug, and must not surface as a 500.
    """
    if isinstance(exc, TrackerError):
        return exc
    if isinstance(exc, (ValueError, AssertionError)):
        return BadInput(f"the model rejected the prompt: {exc}")
    return exc


def error_response(exc: TrackerError) -> JSONResponse:
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if exc.status == 503 and retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(status_code=exc.status, content={"error": exc.message}, headers=headers)


async def tracker_error_handler(_: Request, exc: TrackerError) -> JSONResponse:
    return error_response(exc)


def register_error_handlers(app) -> None:
    """Starlette looks handlers up by the exception's MRO, so ours win over KServe's generic ones."""
    app.add_exception_handler(TrackerError, tracker_error_handler)
