"""One tracking job: its inputs, its cancellation, and the ZIP stream it produces.

Per-request state lives here, not on the model (STYLE: request data, model state and a video's
tracking state kept apart). Three threads touch a job while it runs:

    frame-decoder (frames.py) -> device worker (Tracker.track) -> mask-writer (PNG + ZIP)
                                                                    -> ChunkStream -> event loop

so decoding the next frames and encoding finished masks overlap with the model. Every hand-off is
a bounded queue: a slow client slows the writer, which slows the device, and memory stays flat.
"""

import asyncio
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from . import metrics
from .archive import ZipStream
from .errors import Cancelled, DeadlineExceeded, TrackerError, translate_library_error
from .frames import FeedStopped, FrameFeed
from .memory import release_free_memory
from .prompts import Prompt
from .video import VideoInfo, VideoReader

logger = logging.getLogger("sam2_tracker")
# Hand freed heap pages back every 8 frames, at most every 2 s. The pages come back as page faults
# on the next frames: trimming every frame cost 8 % of the speed at image_size 512 on 2 cores,
# every 4th frame ~5 %, every 8th nothing measurable. See memory.py.
TRIM_EVERY_FRAMES, TRIM_MIN_SECONDS = 8, 2.0


class _End:
    """The last item of a ChunkStream: success, or the error that stopped the job."""

    def __init__(self, error: Optional[BaseException] = None):
        self.error = error


class ChunkStream:
    """Bytes from a worker thread to the event loop, at most `max_pending` chunks in between."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_pending: int = 32):
        self._loop = loop
        self._queue: "asyncio.Queue" = asyncio.Queue()
        self._slots = threading.Semaphore(max_pending)
        self._gone = threading.Event()
        self._head: Any = None

    def _deliver(self, item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: the server is gone, so is the reader
            self._gone.set()

    def put(self, chunk: bytes) -> None:
        """From a thread: blocks while the reader is `max_pending` chunks behind."""
        while not self._slots.acquire(timeout=0.2):
            if self._gone.is_set():
                raise Cancelled("the client stopped reading")
        if self._gone.is_set():
            raise Cancelled("the client stopped reading")
        self._deliver(chunk)

    def finish(self, error: Optional[BaseException] = None) -> None:
        self._deliver(_End(error))

    def close(self) -> None:
        """The reader is gone; a blocked or later `put` raises Cancelled."""
        self._gone.set()

    async def _next(self):
        if self._head is not None:
            item, self._head = self._head, None
        else:
            item = await self._queue.get()
        if not isinstance(item, _End):
            self._slots.release()
        return item

    async def wait_first(self) -> None:
        """Wait for the first chunk without consuming it; raise if the job failed before it."""
        if self._head is None:
            self._head = await self._queue.get()
        if isinstance(self._head, _End) and self._head.error is not None:
            raise self._head.error

    async def chunks(self):
        while True:
            item = await self._next()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item


class MaskWriter:
    """PNG-encodes masks and appends them to the ZIP, in its own thread."""

    def __init__(self, stream: ChunkStream, depth: int = 8):
        self._stream = stream
        self._zip = ZipStream(stream.put)
        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="mask-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks on a dead writer
            try:
                self._zip.add_mask(*item)
            except BaseException as exc:  # noqa: BLE001 - reported to the producer in put()
                self._error = exc

    def put(self, frame_idx: int, mask) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frame_idx, mask))

    def close(self, manifest: Optional[dict]) -> None:
        """Wait for queued masks; with a manifest, finish the ZIP. Raises the writer's error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        if manifest is not None:
            self._zip.close(manifest)

    @property
    def entries(self) -> int:
        return self._zip.entries


@dataclass
class Job:
    door: str
    prompt: Prompt
    reader: VideoReader
    feed: FrameFeed
    stream: ChunkStream
    ticket: Any  # scheduler.Ticket: the place in line and the cancellation
    deadline: float
    spool_path: Optional[str] = None
    v2_request: Any = None  # the InferRequest on the v2 doors, to shape the answer
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    admitted_at: float = field(default_factory=time.monotonic)
    timings: dict = field(default_factory=dict)
    masks: int = 0
    _closed: bool = False

    @property
    def info(self) -> VideoInfo:
        return self.reader.info

    def __post_init__(self) -> None:
        self.ticket.stream = self.stream

    @property
    def cancelled(self) -> threading.Event:
        return self.ticket.cancelled

    @property
    def cancel_error(self) -> Optional[TrackerError]:
        return self.ticket.error

    def cancel(self, error: TrackerError) -> None:
        self.ticket.cancel(error)

    def check(self) -> None:
        """Called between frames: raise if the job should stop."""
        if not self.cancelled.is_set() and time.monotonic() > self.deadline:
            self.cancel(DeadlineExceeded("the request ran past its deadline (--request_timeout); "
                                         "send a shorter video or raise the limit"))
        if self.cancelled.is_set():
            raise self.cancel_error or Cancelled("cancelled")

    def close(self) -> None:
        """Free everything the job holds: decoder thread, spill file, capture, upload."""
        if self._closed:
            return
        self._closed = True
        self.feed.close()
        self.reader.close()
        if self.spool_path:
            try:
                os.unlink(self.spool_path)
            except FileNotFoundError:
                pass

    def run(self, tracker, model_desc: dict, max_frames: int) -> None:
        """On the device worker thread: track, write the ZIP, report the end to the stream."""
        started = time.monotonic()
        self.timings["queued_s"] = round(started - self.admitted_at, 3)
        metrics.QUEUE_SECONDS.observe(started - self.admitted_at)
        writer = MaskWriter(self.stream)
        error: Optional[BaseException] = None
        trimmed = started
        try:
            self.check()
            with tracker.device_context():
                frames = tracker.track(self.feed, self.prompt, self.info.width, self.info.height,
                                       max_frames)
                try:
                    for frame_idx, mask in frames:
                        if self.masks == 0:
                            self.timings["first_mask_s"] = round(time.monotonic() - self.admitted_at, 3)
                            metrics.FIRST_MASK_SECONDS.observe(time.monotonic() - self.admitted_at)
                        writer.put(frame_idx, mask)
                        self.masks += 1
                        if self.masks % TRIM_EVERY_FRAMES == 0 and \
                                time.monotonic() - trimmed > TRIM_MIN_SECONDS:
                            release_free_memory()
                            trimmed = time.monotonic()
                        self.check()
                finally:
                    frames.close()
            decoded = self.feed.num_frames
            if decoded != self.masks:
                # Never present a partial ZIP as success.
                raise RuntimeError(f"made {self.masks} masks for {decoded} decoded frames")
            tracking_s = time.monotonic() - started
            self.timings["tracking_s"] = round(tracking_s, 3)
            writer.close(self._manifest(model_desc))
        except FeedStopped:
            error = self.cancel_error or Cancelled("cancelled")
        except BaseException as exc:  # noqa: BLE001 - every end is reported to the stream
            error = self.cancel_error if self.cancelled.is_set() and self.cancel_error else exc
            error = translate_library_error(error)
        finally:
            if error is not None:
                self.cancelled.set()
                try:
                    writer.close(None)
                except BaseException:  # noqa: BLE001 - the first error is the one that counts
                    pass
            self.close()
            release_free_memory()
            self._report(started, error)
            self.stream.finish(error)

    def _report(self, started: float, error: Optional[BaseException]) -> None:
        elapsed = time.monotonic() - started
        metrics.FRAMES.inc(self.masks)
        if error is None:
            metrics.TRACKING_SECONDS.observe(elapsed)
            metrics.VIDEO_FRAMES.observe(self.masks)
            metrics.VIDEO_PIXELS.observe(self.info.width * self.info.height)
            if elapsed > 0:
                metrics.FPS.observe(self.masks / elapsed)
                metrics.LAST_FPS.set(self.masks / elapsed)
        metrics.observe_gpu_memory()
        logger.info("job %s %s: %d frames %dx%d, prompt frame %d, %.2f s (%.2f fps)%s",
                    self.request_id, "done" if error is None else "stopped", self.masks,
                    self.info.width, self.info.height, self.prompt.frame_idx, elapsed,
                    self.masks / elapsed if elapsed > 0 else 0.0,
                    "" if error is None else f": {error}")

    def _manifest(self, model_desc: dict) -> dict:
        decoded = self.feed.num_frames
        tracking_s = self.timings.get("tracking_s") or 0.0
        return {
            "video": {
                "width": self.info.width,
                "height": self.info.height,
                "fps": self.info.fps,
                "frame_count": decoded,
                "container_frame_count": self.info.claimed_frames,
                "codec": self.info.codec,
            },
            "prompt": {**self.prompt.as_dict(), "obj_id": 1},
            "model": model_desc,
            "masks": {
                "count": self.masks,
                "format": "8-bit grayscale PNG, 0 = background, 255 = object",
                "names": "masks/{frame_idx:05d}.png",
                "order": "prompt frame to the last frame, then back to frame 0",
            },
            "timings": {**self.timings,
                        "frames_per_second": round(self.masks / tracking_s, 3) if tracking_s else None},
            "request_id": self.request_id,
        }
