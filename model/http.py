"""The HTTP edge: POST /track, GET /health, the upload size limit, upload spooling.

The upload is streamed to a file in --spool_dir (never held in memory), the request goes through
the model's preprocess -> predict -> postprocess, and the ZIP streams back while tracking runs.
Errors are mapped in one place (errors.py); each one is counted by outcome (metrics.py).
"""

import asyncio
import logging
import os
import tempfile
from typing import Callable, List, Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect
from python_multipart.multipart import MultipartParser, parse_options_header

from . import metrics
from .errors import BadInput, Cancelled, TooLarge, TrackerError, UnsupportedMedia, \
    error_response, register_error_handlers
from .predictor import Sam2Tracker, TrackInput, outcome_of
from .prompts import QUERY_PARAMS

logger = logging.getLogger("sam2_tracker")

# A multipart envelope (boundaries, part headers, small fields) on top of the file itself.
_MULTIPART_OVERHEAD = 1024 * 1024


def body_kind(content_type: Optional[str]) -> str:
    """raw | multipart, from the Content-Type; 415 for anything else.

    curl --data-binary and wget --post-file send application/x-www-form-urlencoded unless told
    otherwise; it is read as raw bytes, like no Content-Type at all, so those commands work.
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in ("", "application/octet-stream", "application/x-www-form-urlencoded") \
            or mime.startswith("video/"):
        return "raw"
    if mime == "multipart/form-data":
        return "multipart"
    raise UnsupportedMedia(
        f"Content-Type {mime!r} is not accepted: send the video's bytes as "
        f"application/octet-stream or video/*, or multipart/form-data with the file in the "
        f"field 'video'")


class _MultipartSpooler:
    """Writes the part named `video` to a file as it arrives; keeps small prompt fields."""

    def __init__(self, out, max_field_bytes: int = 64 * 1024):
        self.out = out
        self.video_parts = 0
        self.video_bytes = 0
        self.fields: List[Tuple[str, str]] = []
        self._max_field = max_field_bytes
        self._header_field = b""
        self._header_value = b""
        self._headers = {}
        self._name: Optional[str] = None
        self._is_file = False
        self._field_value = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _add(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _part_begin(self) -> None:
        self._headers, self._name, self._is_file = {}, None, False
        self._field_value = bytearray()

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name")
        self._name = name.decode("utf-8", "replace") if name is not None else None
        self._is_file = b"filename" in params
        if self._name == "video":
            self.video_parts += 1
            if self.video_parts > 1:
                raise BadInput("the multipart body has more than one 'video' field; send one")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == "video":
            self.out.write(data[start:end])
            self.video_bytes += end - start
        elif self._name in QUERY_PARAMS:
            self._field_value += data[start:end]
            if len(self._field_value) > self._max_field:
                raise BadInput(f"the multipart field {self._name!r} is too long")

    def _part_end(self) -> None:
        if self._name in QUERY_PARAMS and not self._is_file:
            self.fields.append((self._name, self._field_value.decode("utf-8", "replace")))


async def spool_upload(request: Request, kind: str, spool_dir: str) -> Tuple[str, list]:
    """Stream the body to a temporary file; returns (path, prompt fields from a multipart form).

    The file is removed here on any error; after success the job owns it and removes it.
    """
    fd, path = tempfile.mkstemp(prefix="sam2-upload-", suffix=".video", dir=spool_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            if kind == "raw":
                size = 0
                async for chunk in request.stream():
                    out.write(chunk)
                    size += len(chunk)
                if size == 0:
                    raise BadInput("the body is empty; send the video file's bytes (e.g. curl "
                                   "--data-binary @video.mp4) or multipart field 'video'")
                return path, []
            spooler = _MultipartSpooler(out)
            _, params = parse_options_header(request.headers.get("content-type", ""))
            boundary = params.get(b"boundary")
            if not boundary:
                raise BadInput("multipart/form-data without a boundary")
            parser = MultipartParser(boundary, spooler.callbacks())
            try:
                async for chunk in request.stream():
                    parser.write(chunk)
                parser.finalize()
            except TrackerError:
                raise
            except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors
                raise BadInput(f"the multipart body is malformed: {exc}") from None
            if spooler.video_parts == 0:
                raise BadInput("the multipart body has no field 'video'; send the file as "
                               "-F video=@video.mp4")
            if spooler.video_bytes == 0:
                raise BadInput("the multipart field 'video' is empty")
            return path, spooler.fields
    except ClientDisconnect:
        os.unlink(path)
        raise Cancelled("the client disconnected during the upload") from None
    except BaseException:
        os.unlink(path)
        raise


async def _watch_disconnect(request: Request, job_cancelled) -> None:
    """While the job waits for the device, notice a client that hangs up (body already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job_cancelled.set()
            return


async def _stream(job, door: str):
    outcome = "error"
    try:
        async for chunk in job.stream.chunks():
            yield chunk
        outcome = "ok"
    except asyncio.CancelledError:
        outcome = "cancelled"  # Starlette cancels the body when the client disconnects
        raise
    except TrackerError as exc:
        outcome = outcome_of(exc)
        raise
    finally:
        if outcome != "ok":
            job.cancel(Cancelled("the client hung up"))
        metrics.REQUESTS.labels(door, outcome).inc()


TRACK_OPENAPI = {
    "parameters": [
        {"name": "frame_idx", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 0, "default": 0},
         "description": "The frame the clicks are on (0-based, decode order)."},
        {"name": "points", "in": "query", "required": False, "style": "form", "explode": True,
         "schema": {"type": "array", "items": {"type": "string", "pattern": r"^[0-9.eE+-]+,[0-9.eE+-]+$"}},
         "description": "A click 'x,y' in pixels of the original frame; repeat for more."},
        {"name": "labels", "in": "query", "required": False, "style": "form", "explode": True,
         "schema": {"type": "array", "items": {"type": "string", "enum": ["0", "1"]}},
         "description": "1 = on the object, 0 = not; one per point; default all 1."},
        {"name": "box", "in": "query", "required": False,
         "schema": {"type": "string"}, "description": "A box 'x1,y1,x2,y2' around the object."},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "video/mp4": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["video"],
                "properties": {"video": {"type": "string", "format": "binary"}}}},
        },
    },
    "responses": {
        "200": {"description": "ZIP: masks/00000.png ... and manifest.json, streamed.",
                "content": {"application/zip": {"schema": {"type": "string",
                                                           "format": "binary"}}}},
        "400": {"description": "Bad input: {\"error\": \"...\"}"},
        "413": {"description": "Too large (upload, frames, pixels)."},
        "415": {"description": "Not a video media type."},
        "503": {"description": "Busy, loading or shutting down; see Retry-After."},
    },
}


def add_routes(app: FastAPI, model: Sam2Tracker) -> None:
    spool_dir = model.settings.spool_dir

    async def track(request: Request):
        """Track one object through a video from clicks on one frame; answer a ZIP of masks."""
        door = "track"
        try:
            kind = body_kind(request.headers.get("content-type"))
            model.check_accepting()  # 503 before reading a large upload
            path, form_fields = await spool_upload(request, kind, spool_dir)
        except TrackerError as exc:
            metrics.REQUESTS.labels(door, outcome_of(exc)).inc()
            return error_response(exc)
        track_input = TrackInput(path=path,
                                 query=list(request.query_params.multi_items()) + form_fields)
        watcher = asyncio.create_task(_watch_disconnect(request, track_input.cancelled))
        try:
            # preprocess owns the upload from here: it removes it on failure, the job after.
            job, _ = await model(track_input, headers=dict(request.headers))
        except TrackerError as exc:
            return error_response(exc)  # counted by the model's __call__
        finally:
            watcher.cancel()
        return StreamingResponse(
            _stream(job, door), media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="masks.zip"',
                     "X-Request-Id": job.request_id})

    async def health():
        """200 when the model is loaded and serving; 503 while loading or shutting down."""
        body = {"model": model.describe(), "queue": model.scheduler.load,
                "load_seconds": model.load_seconds}
        if model.ready and not model.draining:
            return JSONResponse({"status": "ok", **body})
        status = ("draining" if model.draining else
                  "failed" if model.load_error else "loading")
        if model.load_error:
            body["error"] = model.load_error
        return JSONResponse({"status": status, **body}, status_code=503,
                            headers={"Retry-After": "10"})

    app.add_api_route("/track", track, methods=["POST"], openapi_extra=TRACK_OPENAPI,
                      summary="Track an object through a video", tags=["sam2"])
    app.add_api_route("/health", health, methods=["GET"], tags=["sam2"],
                      summary="Readiness of the model")
    register_error_handlers(app)


class BodyLimit:
    """ASGI middleware: 413 as soon as an upload passes its limit, without reading the rest.

    A declared Content-Length over the limit is refused before any byte is read (so a client
    that sent `Expect: 100-continue`, as curl does for large bodies, never sends the body).
    """

    def __init__(self, app, limit_for: Callable[[str], int], max_upload_mb: int):
        self.app = app
        self.limit_for = limit_for
        self.max_upload_mb = max_upload_mb

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = TooLarge(f"the upload is over this server's limit of {self.max_upload_mb} "
                             f"MiB of video (--max_upload_mb)")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            metrics.REQUESTS.labels(_door(scope), "too_large").inc()
            return await error_response(too_large)(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        await self.app(scope, limited_receive, send)


def _door(scope) -> str:
    return "track" if scope.get("path", "").startswith("/track") else "v2_rest"


def body_limit_for(max_upload_bytes: int) -> Callable[[str], int]:
    def limit_for(path: str) -> int:
        if path.startswith("/v2/"):
            # JSON carries the video as base64 (4/3 larger); the decoded size is checked exactly
            # in preprocess.
            return max_upload_bytes * 4 // 3 + _MULTIPART_OVERHEAD
        return max_upload_bytes + _MULTIPART_OVERHEAD

    return limit_for
