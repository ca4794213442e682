"""Uploads: the body (or the multipart `video` part) streamed to a file under the limits.

A video is never held in memory: it goes to a file in --spool_dir as it arrives. The `Upload`
that names the file has one owner at a time: the door while it parses the request, then the job
(`hand_over`), which discards it when it closes. `discard` is the only code that removes the file.

Also here: the body-size limit (an ASGI middleware that answers 413 before reading an oversized
body) and the media-type policy.
"""

import os
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from .accounting import record_of
from .errors import BadInput, Cancelled, TooLarge, TrackerError, UnsupportedMedia, error_response

# A multipart envelope (boundaries, part headers, prompt fields, mask images) on top of the video.
MULTIPART_OVERHEAD = 1024 * 1024
# Prompt fields are short; the `prompts` JSON with 16 objects x 64 clicks is ~40 kB.
MAX_FIELD_BYTES = 1024 * 1024
# Mask prompts are binary PNGs (a 4K mask compresses to well under 1 MiB); all of them together.
MAX_FILE_PART_BYTES = 64 * 1024 * 1024


class Upload:
    """A spooled video file. `with upload:` discards it on exit unless it was handed over."""

    def __init__(self, path: str, size: int):
        self.path = path
        self.size = size
        self._handed_over = False
        self._discarded = False

    def hand_over(self) -> "Upload":
        """The caller (the job) owns the file from now on and must `discard` it."""
        self._handed_over = True
        return self

    def discard(self) -> None:
        if self._discarded:
            return
        self._discarded = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "Upload":
        return self

    def __exit__(self, *exc) -> None:
        if not self._handed_over:
            self.discard()


@dataclass
class Received:
    """What came with the video: form fields and small file parts (mask prompts)."""

    upload: Upload
    fields: List[Tuple[str, str]] = field(default_factory=list)
    files: Dict[str, bytes] = field(default_factory=dict)


def _new_spool_file(spool_dir: str):
    fd, path = tempfile.mkstemp(prefix="sam2-upload-", suffix=".video", dir=spool_dir)
    return os.fdopen(fd, "wb"), path


def spool_bytes(data: bytes, spool_dir: str) -> Upload:
    """The v2 doors: the video's bytes arrived in the request body; write them to a file."""
    out, path = _new_spool_file(spool_dir)
    try:
        with out:
            out.write(data)
    except BaseException:
        Upload(path, 0).discard()
        raise
    return Upload(path, len(data))


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
    """python-multipart callbacks: the `video` part to the file as it arrives; text fields and
    other file parts (mask prompts) kept, within their limits."""

    def __init__(self, out):
        self.out = out
        self.video_parts = 0
        self.video_bytes = 0
        self.fields: List[Tuple[str, str]] = []
        self.files: Dict[str, bytes] = {}
        self._file_bytes = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: Dict[str, bytes] = {}
        self._name: Optional[str] = None
        self._is_file = False
        self._value = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add_header_field(d[s:e]),
            "on_header_value": lambda d, s, e: self._add_header_value(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _add_header_field(self, data: bytes) -> None:
        self._header_field += data

    def _add_header_value(self, data: bytes) -> None:
        self._header_value += data

    def _part_begin(self) -> None:
        self._headers, self._name, self._is_file = {}, None, False
        self._value = bytearray()

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
            return
        self._value += data[start:end]
        if self._is_file and self._name != "prompts":
            self._file_bytes += end - start
            if self._file_bytes > MAX_FILE_PART_BYTES:
                raise TooLarge(f"the multipart file parts besides 'video' (mask prompts) are "
                               f"over {MAX_FILE_PART_BYTES // 2**20} MiB together")
        elif len(self._value) > MAX_FIELD_BYTES:
            raise BadInput(f"the multipart field {self._name!r} is over "
                           f"{MAX_FIELD_BYTES // 1024} KiB")

    def _part_end(self) -> None:
        if self._name in (None, "video"):
            return
        if self._is_file and self._name != "prompts":
            if self._name in self.files:
                raise BadInput(f"the multipart body has more than one part {self._name!r}")
            self.files[self._name] = bytes(self._value)
        else:  # a text field, or `prompts` sent as a .json file part
            self.fields.append((self._name, self._value.decode("utf-8", "replace")))


async def _read_raw(request: Request, out) -> int:
    size = 0
    async for chunk in request.stream():
        out.write(chunk)
        size += len(chunk)
    if size == 0:
        raise BadInput("the body is empty; send the video file's bytes (e.g. curl "
                       "--data-binary @video.mp4) or multipart field 'video'")
    return size


async def _read_multipart(request: Request, out) -> _MultipartSpooler:
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
    except (TrackerError, ClientDisconnect):
        raise
    except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors
        raise BadInput(f"the multipart body is malformed: {exc}") from None
    if spooler.video_parts == 0:
        raise BadInput("the multipart body has no field 'video'; send the file as "
                       "-F video=@video.mp4")
    if spooler.video_bytes == 0:
        raise BadInput("the multipart field 'video' is empty")
    return spooler


async def receive(request: Request, spool_dir: str) -> Received:
    """Stream the body to a spool file; the caller owns the Upload. On failure the file is gone
    before this returns."""
    kind = body_kind(request.headers.get("content-type"))
    out, path = _new_spool_file(spool_dir)
    upload = Upload(path, 0)
    try:
        with out:
            if kind == "raw":
                upload.size = await _read_raw(request, out)
                return Received(upload)
            spooler = await _read_multipart(request, out)
            upload.size = spooler.video_bytes
            return Received(upload, spooler.fields, spooler.files)
    except ClientDisconnect:
        upload.discard()
        raise Cancelled("the client disconnected during the upload") from None
    except BaseException:
        upload.discard()
        raise


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
        record = record_of(scope)
        if record is not None:
            response = error_response(too_large, record.request_id)
        else:
            response = error_response(too_large)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            if record is not None:
                record.note(too_large)
            return await response(scope, receive, send)
        received, refused = 0, False

        async def limited_receive():
            # Past the limit, answer 413 at once and tell the app the client is gone: the app's
            # body parser (ours, or FastAPI's for v2, which would turn any error into a 400
            # "error parsing the body") stops reading, and whatever it answers is dropped.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if record is not None:
                        record.note(too_large)
                    await response(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


def body_limit_for(max_upload_bytes: int) -> Callable[[str], int]:
    def limit_for(path: str) -> int:
        if path.startswith("/v2/"):
            # JSON carries the video as base64 (4/3 larger); the decoded size is checked exactly
            # when the request is built.
            return max_upload_bytes * 4 // 3 + MULTIPART_OVERHEAD
        return max_upload_bytes + MULTIPART_OVERHEAD

    return limit_for
