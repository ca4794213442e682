"""One tracking job: it owns everything a request holds, from `open` to `close`.

    door -> TrackRequest -> Job.open: the upload (handed over), the video reader, the frame
            feed, the place in line and the cancellation
         -> Job.run on the device thread -> FrameWriter -> ChunkStream -> the answer
         -> Job.close: everything released, the upload removed

Three threads touch a running job: the frame decoder (feed.py) -> the device worker (the engine)
-> the mask writer (outputs/), whose chunks cross to the event loop through the ChunkStream. Every
hand-off is a bounded queue: a slow client slows the writer, which slows the device, and memory
stays flat. Nothing outside the job removes the upload or stops the work: they ask the job (or
its Cancellation) to.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from . import metrics
from .errors import BadInput, Cancelled, DeadlineExceeded, translate_library_error
from .cancellation import FeedStopped
from .feed import FrameFeed
from .mask_prompts import decode_masks
from .memory import HeapWatch, release_free_memory
from .outputs import PreviewSource, open_format
from .outputs.manifest import build_manifest
from .outputs.writer import FrameWriter
from .request import TrackRequest
from .sam2_rules import feed_plan
from .scheduler import Ticket
from .stream import ChunkStream
from .video import VideoLimits, VideoReader, open_video

logger = logging.getLogger(__name__)
# Every 8 frames, a look at the resident size (a /proc read, ~10 us); the heap is trimmed only when
# it grew (memory.py): trimmed pages come back as page faults on the next frames.
CHECK_HEAP_EVERY_FRAMES = 8


@dataclass(frozen=True)
class JobConfig:
    """What a job needs from the server's settings, as values (no reference back to the model)."""

    image_size: int
    spool_dir: str
    limits: VideoLimits
    request_timeout: float


class Job:
    def __init__(self, request: TrackRequest, ticket: Ticket, reader: VideoReader,
                 feed: FrameFeed, masks: Dict[str, np.ndarray], stream: ChunkStream,
                 deadline: float, preview_source: Optional[PreviewSource] = None):
        self.request = request
        self.ticket = ticket
        self.reader = reader
        self.feed = feed
        self.masks = masks
        self.stream = stream
        self.deadline = deadline
        self.cancellation = request.cancellation
        self.format = open_format(request.options, request.prompts.long_form, stream.put,
                                  preview_source)
        self.opened_at = time.monotonic()
        self.timings: dict = {}
        self.frames = 0
        self.answer: Optional[bytes] = None  # the whole answer, on the v2 doors
        self._freed = False
        self.cancellation.on_cancel(stream.close)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def media_type(self) -> str:
        return self.format.media_type

    # --- opening: in a worker thread (decoding the first frames blocks) -----------------------
    @classmethod
    def open(cls, request: TrackRequest, ticket: Ticket, config: JobConfig,
             loop: asyncio.AbstractEventLoop) -> "Job":
        reader = open_video(request.upload.path, config.limits)
        feed = None
        try:
            info = reader.info
            request.prompts.check_against_video(info.width, info.height)
            masks = decode_masks(request.prompts, request.mask_images, info.width, info.height)
            feed = FrameFeed(reader, config.image_size,
                             feed_plan(request.prompts, request.options),
                             spool_dir=config.spool_dir,
                             cancelled=request.cancellation.event).start()
            decoded = feed.wait_for_count(request.prompts.frames[-1] + 1)
            if decoded == 0:
                raise BadInput("the video has no decodable frames")
            request.prompts.check_frames(decoded)
            request.cancellation.raise_if_cancelled()
            # The clock starts once the upload is in (a slow upload does not eat the deadline).
            job = cls(request, ticket, reader, feed, masks, ChunkStream(loop),
                      deadline=time.monotonic() + config.request_timeout,
                      preview_source=PreviewSource(reader.path, info, config.limits,
                                                   config.spool_dir,
                                                   request.cancellation.event))
        except BaseException:
            if feed is not None:
                feed.close()
            reader.close()
            raise
        request.upload.hand_over()
        ticket.hand_over()
        return job

    # --- running: on the device thread --------------------------------------------------------
    def check(self) -> None:
        """Called between frames: raise if the job should stop."""
        if not self.cancellation.cancelled and time.monotonic() > self.deadline:
            self.cancellation.cancel(DeadlineExceeded(
                "the request ran past its deadline (--request_timeout); send a shorter video or "
                "raise the limit"))
        self.cancellation.raise_if_cancelled()

    def run(self, engine, model_desc: dict, max_frames: int) -> None:
        """Track, write the answer, report the end to the stream; then free everything."""
        started = time.monotonic()
        admitted = self.opened_at
        self.timings["queued_s"] = round(started - admitted, 3)
        metrics.QUEUE_SECONDS.observe(started - admitted)
        writer = FrameWriter(self.format)
        error: Optional[BaseException] = None
        heap = HeapWatch()
        try:
            self.check()
            info = self.reader.info
            with engine.device_context():
                frames = engine.track(self.feed, self.request.prompts, self.masks, info.width,
                                      info.height, self.request.options, max_frames)
                try:
                    for frame in frames:
                        if self.frames == 0:
                            first_s = time.monotonic() - admitted
                            self.timings["first_mask_s"] = round(first_s, 3)
                            metrics.FIRST_MASK_SECONDS.observe(first_s)
                        writer.put(frame)
                        self.frames += 1
                        if self.frames % CHECK_HEAP_EVERY_FRAMES == 0:
                            heap.check()
                        self.check()
                finally:
                    frames.close()
            expected = engine.expected_frames(self.feed, self.request)
            if expected != self.frames:
                # Never present a partial answer as success.
                raise RuntimeError(f"made masks for {self.frames} frames; {expected} expected")
            self.timings["tracking_s"] = round(time.monotonic() - started, 3)
            writer.close(self._manifest(model_desc, engine))
        except FeedStopped:
            error = self.cancellation.reason()
        except BaseException as exc:  # noqa: BLE001 - every end is reported to the stream
            error = self.cancellation.reason() if self.cancellation.cancelled else exc
            error = translate_library_error(error)
        finally:
            if error is not None:
                self.cancellation.event.set()
                try:
                    writer.close(None)
                except BaseException:  # noqa: BLE001 - the first error is the one that counts
                    pass
            self._free()
            release_free_memory()
            self._report(started, error)
            self.stream.finish(error)

    def _manifest(self, model_desc: dict, engine) -> dict:
        info = self.reader.info
        video = {"width": info.width, "height": info.height, "fps": info.fps,
                 "frame_count": self.feed.num_frames,
                 "container_frame_count": info.claimed_frames, "codec": info.codec}
        tracked = engine.tracked_range(self.feed, self.request)
        return build_manifest(self.request, video, model_desc, self.frames, tracked, self.format,
                              self.timings)

    def _report(self, started: float, error: Optional[BaseException]) -> None:
        elapsed = time.monotonic() - started
        info = self.reader.info
        metrics.FRAMES.inc(self.frames)
        if error is None:
            metrics.TRACKING_SECONDS.observe(elapsed)
            metrics.VIDEO_FRAMES.observe(self.feed.num_frames or self.frames)
            metrics.VIDEO_PIXELS.observe(info.width * info.height)
            if elapsed > 0:
                metrics.FPS.observe(self.frames / elapsed)
                metrics.LAST_FPS.set(self.frames / elapsed)
        metrics.observe_gpu_memory()
        logger.info("job %s %s: %d frames %dx%d, %d object(s), prompted frames %s, %.2f s "
                    "(%.2f fps)%s", self.request_id, "done" if error is None else "stopped",
                    self.frames, info.width, info.height, len(self.request.prompts.obj_ids),
                    self.request.prompts.frames, elapsed,
                    self.frames / elapsed if elapsed > 0 else 0.0,
                    "" if error is None else f": {type(error).__name__}: {error}")

    # --- the answer, on the event loop -------------------------------------------------------
    async def chunks(self):
        """The answer's bytes. A reader that stops early (hang-up) cancels the job."""
        complete = False
        try:
            async for chunk in self.stream.chunks():
                yield chunk
            complete = True
        finally:
            if not complete:
                self.cancellation.cancel(Cancelled("the client went away"))

    async def body(self) -> bytes:
        """The whole answer (the v2 doors, which do not stream)."""
        return b"".join([chunk async for chunk in self.chunks()])

    # --- closing ------------------------------------------------------------------------------
    def _free(self) -> None:
        if self._freed:
            return
        self._freed = True
        self.feed.close()
        self.reader.close()
        self.request.upload.discard()

    def close(self) -> None:
        """A job that will not run (its caller went away first): free it and its place."""
        self.cancellation.cancel(Cancelled("the client went away"))
        self._free()
        self.ticket.release()
