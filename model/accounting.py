"""Each request counted exactly once, whatever door it came through and however it ended.

A `RequestRecord` is made where a request enters (`CountRequests` below for `/track` and the v2
REST infer path, the gRPC servicer in server.py for v2 gRPC) and finished exactly once, when the
answer is complete or abandoned; the outcome label comes from `errors.verdict`. The record also
carries the request id (the client's `X-Request-Id` when it sent a sane one), which every answer
echoes and every log line of the request names. A request that fails with an exception nobody
expected is logged here, once, at ERROR with its traceback.
"""

import logging
import re
import uuid
from typing import Optional

from fastapi import Request
from fastapi.responses import JSONResponse

from . import metrics
from .errors import BUG, Cancelled, TrackerError, error_response, verdict, verdict_for_status

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SCOPE_KEY = "sam2_tracker.record"


def new_request_id(offered: Optional[str] = None) -> str:
    if offered and _SANE_ID.match(offered):
        return offered
    return uuid.uuid4().hex[:16]


class RequestRecord:
    def __init__(self, door: str, request_id: Optional[str] = None):
        self.door = door
        self.request_id = new_request_id(request_id)
        self.outcome: Optional[str] = None
        self._noted: Optional[BaseException] = None

    def note(self, exc: BaseException) -> None:
        """The exception that decided the answer (the first one: a 413 sent by the body limit
        stays the outcome when the app then fails on the body it no longer gets)."""
        if self._noted is None:
            self._noted = exc

    def finish(self, exc: Optional[BaseException] = None, status: Optional[int] = None) -> str:
        """Count the request once; later calls change nothing. Returns the outcome."""
        if self.outcome is not None:
            return self.outcome
        # What was noted is the cause; an exception raised after it is a consequence (Starlette
        # turns an error in a started stream into "response already started").
        exc = self._noted or exc
        if exc is not None:
            v = verdict(exc)
        else:
            v = verdict_for_status(status or 200)
        if v is BUG and exc is not None:
            logger.error("request %s (%s) failed: %s: %s", self.request_id, self.door,
                         type(exc).__name__, exc, exc_info=exc)
        self.outcome = v.outcome
        metrics.REQUESTS.labels(self.door, v.outcome).inc()
        return v.outcome


def record_of(scope) -> Optional[RequestRecord]:
    return scope.get(_SCOPE_KEY)


async def noting(record: Optional[RequestRecord], chunks):
    """An answer's body, with the error that cuts it short noted on the request's record."""
    try:
        async for chunk in chunks:
            yield chunk
    except BaseException as exc:
        if record is not None:
            record.note(exc)
        raise


def door_of_path(path: str) -> Optional[str]:
    if path == "/track" or path.startswith("/track/"):
        return "track"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2_rest"
    return None


class CountRequests:
    """ASGI middleware around the HTTP doors: one record per request, finished when the answer
    has been sent (or abandoned), the request id on every answer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        door = door_of_path(scope.get("path", "")) if scope["type"] == "http" else None
        if door is None:
            return await self.app(scope, receive, send)
        headers = list(scope.get("headers") or [])
        offered = dict(headers).get(REQUEST_ID_HEADER.encode())
        record = RequestRecord(door, offered.decode("latin-1") if offered else None)
        # KServe hands the request headers to the model: the v2 door learns the id from them.
        headers = [(k, v) for k, v in headers if k != REQUEST_ID_HEADER.encode()]
        headers.append((REQUEST_ID_HEADER.encode(), record.request_id.encode()))
        scope = {**scope, "headers": headers, _SCOPE_KEY: record}
        state = {"status": None, "complete": False}

        async def send_counted(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                names = {k.lower() for k, _ in message.get("headers", [])}
                if REQUEST_ID_HEADER.encode() not in names:
                    message = {**message, "headers": [*message.get("headers", []), (
                        REQUEST_ID_HEADER.encode(), record.request_id.encode())]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                state["complete"] = True
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except BaseException as exc:
            record.finish(exc)
            if state["status"] is not None or isinstance(exc, TrackerError) or \
                    not isinstance(exc, Exception):
                raise
            # A bug before the answer started: our JSON 500, naming the request id.
            await error_response(exc, record.request_id)(scope, receive, send)
            return
        if not state["complete"]:
            # The body stream stopped without an error reaching us: the client went away.
            record.finish(Cancelled("the client went away"))
        else:
            record.finish(status=state["status"])


async def _tracker_error_handler(request: Request, exc: TrackerError) -> JSONResponse:
    record = record_of(request.scope)
    if record is not None:
        record.note(exc)
    return error_response(exc, record.request_id if record else None)


def register_error_handlers(app) -> None:
    """Starlette looks handlers up by the exception's MRO, so ours win over KServe's generic ones
    for every TrackerError (which subclass KServe's InvalidInput / ServerNotReady)."""
    app.add_exception_handler(TrackerError, _tracker_error_handler)
