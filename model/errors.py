"""Every error a caller can cause, and the one table from error to HTTP status, gRPC code and
metric outcome.

The classes subclass KServe's own exceptions (`InvalidInput`, `ServerNotReady`) so that KServe's
machinery, where it still sees them, agrees with us. `verdict(exc)` is the only place that decides
what an exception means to a client and to the `sam2_tracker_requests_total{outcome}` counter;
the HTTP handlers, the gRPC servicer and the request accounting all ask it.
"""

import asyncio
from dataclasses import dataclass
from typing import Optional

import grpc
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotReady
from starlette.requests import ClientDisconnect


class TrackerError(Exception):
    """Base class: a message for the caller (named parameter, value, allowed range)."""

    def __init__(self, message: str, retry_after: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.reason = message  # what KServe's gRPC interceptor reads
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class BadInput(TrackerError, InvalidInput):
    """The request is malformed or does not fit the video."""


class TooLarge(BadInput):
    """The upload, the frame size or the frame count is over a configured limit."""


class UnsupportedMedia(BadInput):
    """The body's Content-Type, or the body itself, is not a video."""


class NotFound(BadInput):
    """A video id this server does not hold (expired, removed, or on another replica)."""


class InsufficientStorage(TrackerError):
    """The job would need more scratch disk than is free now; retry later or elsewhere."""


class Unavailable(TrackerError, ServerNotReady):
    """Busy (queue full), loading or shutting down. The client should retry later."""

    def __init__(self, message: str, retry_after: int = 5, kind: str = "unavailable"):
        super().__init__(message, retry_after)
        self.kind = kind  # busy | draining | not_ready | unavailable


class Cancelled(TrackerError):
    """A job stopped early: the client hung up or the server is shutting down."""


class DeadlineExceeded(Cancelled):
    """The job ran past --request_timeout."""


@dataclass(frozen=True)
class Verdict:
    http: int
    grpc: grpc.StatusCode
    outcome: str  # the `outcome` label of sam2_tracker_requests_total


_G = grpc.StatusCode
# The table. Most specific class first; the first match wins. KServe's own exceptions appear
# because KServe raises them on the v2 doors before our code runs (bad JSON, unknown model).
TABLE = (
    (TooLarge, Verdict(413, _G.INVALID_ARGUMENT, "too_large")),
    (UnsupportedMedia, Verdict(415, _G.INVALID_ARGUMENT, "unsupported_media")),
    (NotFound, Verdict(404, _G.NOT_FOUND, "bad_request")),
    (BadInput, Verdict(400, _G.INVALID_ARGUMENT, "bad_request")),
    (InvalidInput, Verdict(400, _G.INVALID_ARGUMENT, "bad_request")),
    (ModelNotFound, Verdict(404, _G.NOT_FOUND, "bad_request")),
    (InsufficientStorage, Verdict(507, _G.RESOURCE_EXHAUSTED, "unavailable")),
    (DeadlineExceeded, Verdict(503, _G.DEADLINE_EXCEEDED, "timeout")),
    (Cancelled, Verdict(503, _G.UNAVAILABLE, "cancelled")),
    (ClientDisconnect, Verdict(499, _G.CANCELLED, "cancelled")),
    (asyncio.CancelledError, Verdict(499, _G.CANCELLED, "cancelled")),
    (Unavailable, Verdict(503, _G.UNAVAILABLE, "unavailable")),
    (ServerNotReady, Verdict(503, _G.UNAVAILABLE, "unavailable")),
    (ModelNotReady, Verdict(503, _G.UNAVAILABLE, "unavailable")),
)
BUG = Verdict(500, _G.INTERNAL, "error")


def verdict(exc: BaseException) -> Verdict:
    for cls, v in TABLE:
        if isinstance(exc, cls):
            if isinstance(exc, Unavailable) and exc.kind == "busy":
                return Verdict(v.http, v.grpc, "busy")
            return v
    return BUG


def verdict_for_status(status: int) -> Verdict:
    """An HTTP answer whose exception we did not see (a framework's own 4xx, e.g. FastAPI's 422)."""
    for _, v in TABLE:
        if v.http == status:
            return v
    if status < 400:
        return Verdict(status, _G.OK, "ok")
    return Verdict(status, _G.INVALID_ARGUMENT, "bad_request") if status < 500 else BUG


def translate_library_error(exc: BaseException) -> BaseException:
    """SAM2 raises ValueError / AssertionError for caller mistakes (no prompt, bad shapes).

    Prompts are validated before the model sees them, so these are rare; when they happen they are
    the caller's input, not our bug, and must not surface as a 500.
    """
    if isinstance(exc, TrackerError):
        return exc
    if isinstance(exc, (ValueError, AssertionError)):
        return BadInput(f"the model rejected the prompt: {exc}")
    return exc


def error_response(exc: BaseException, request_id: Optional[str] = None) -> JSONResponse:
    v = verdict(exc)
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if v.http in (503, 507) and retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if request_id:
        headers["X-Request-Id"] = request_id
    message = str(exc) if v is not BUG else f"internal error ({type(exc).__name__}); see the " \
        f"server log for request {request_id or '?'}"
    return JSONResponse(status_code=v.http, content={"error": message}, headers=headers)
