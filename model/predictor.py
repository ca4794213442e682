"""Sam2Tracker: the KServe model. load / preprocess / predict / postprocess.

Three doors lead here: POST /track (http.py hands a spooled upload and the query string), v2 REST
and v2 gRPC (KServe hands an InferRequest). All take the same path:

    preprocess: admit -> open the video -> check the prompt against it -> start decoding -> Job
    predict:    run the Job on the device thread (streamed: return once the first mask exists)
    postprocess: /track -> the Job, whose ZIP the route streams; v2 -> the `masks` output
"""

import asyncio
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import List, Optional, Tuple, Union

import kserve
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

from . import metrics, prompts, v2
from .checkpoints import resolve_checkpoint
from .errors import BadInput, Cancelled, DeadlineExceeded, TooLarge, Unavailable, \
    UnsupportedMedia
from .frames import FrameFeed, check_prompt_frame
from .job import ChunkStream, Job
from .scheduler import Scheduler, Ticket
from .settings import Settings
from .video import VideoLimits, open_video, to_model_frame

logger = logging.getLogger("sam2_tracker")


@dataclass
class TrackInput:
    """What POST /track hands to preprocess: the spooled upload and the raw query."""

    path: str
    query: List[Tuple[str, str]]
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class V2Result:
    request: InferRequest
    zip_bytes: bytes


def outcome_of(exc: BaseException) -> str:

    if isinstance(exc, TooLarge):
        return "too_large"
    if isinstance(exc, UnsupportedMedia):
        return "unsupported_media"
    if isinstance(exc, DeadlineExceeded):
        return "timeout"
    if isinstance(exc, Cancelled):
        return "cancelled"
    if isinstance(exc, Unavailable):
        return "busy" if exc.kind == "busy" else "unavailable"
    if isinstance(exc, (BadInput, InvalidInput)):
        return "bad_request"
    return "error"


def door_of(payload) -> str:
    if isinstance(payload, TrackInput):
        return "track"
    return "v2_grpc" if getattr(payload, "from_grpc", False) else "v2_rest"


def pick_device(requested: str):
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


class Sam2Tracker(kserve.Model):
    settings: Settings
    scheduler: Scheduler
    _tracker = None  # tracking.Tracker once loaded
    _device = None  # torch.device chosen once at load
    _checkpoint: Optional[str] = None
    draining: bool = False
    load_error: Optional[str] = None
    load_seconds: Optional[float] = None

    def __init__(self, settings: Settings, scheduler: Optional[Scheduler] = None):
        super().__init__(settings.model_name)
        self.settings = settings
        self.scheduler = scheduler or Scheduler(settings.max_queue)

    # --- loading ------------------------------------------------------------------------------
    def load(self) -> bool:
        import torch

        from .sam2_build import build_video_predictor
        from .tracking import Tracker

        t0 = time.monotonic()
        s = self.settings
        self._checkpoint = resolve_checkpoint(s.model_size, s.model_dir, s.checkpoint)
        self._device = pick_device(s.device)
        if self._device.type == "cuda" and torch.cuda.get_device_properties(0).major >= 8:
            # TF32 on Ampere and newer, as SAM2's own demo sets it.
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        logger.info("building SAM2.1 %s from %s on %s (image_size %s, compile %s)", s.model_size,
                    self._checkpoint, self._device, s.image_size or "1024", s.compile)
        predictor = build_video_predictor(s.model_size, self._checkpoint, str(self._device),
                                          image_size=s.image_size, compile_model=s.compile)
        self._tracker = Tracker(predictor, self._device, pad_points=s.compile)
        masks = self.scheduler.run_blocking(partial(self._tracker.warm_up, self._new_feed))
        self.load_seconds = time.monotonic() - t0
        metrics.MODEL_INFO.info({k: str(v) for k, v in self.describe().items()})
        logger.info("model ready in %.1f s (warm-up made %d masks); memory window %d frames",
                    self.load_seconds, masks, self._tracker.window)
        self.ready = True
        metrics.MODEL_READY.set(1)
        return self.ready

    def describe(self) -> dict:
        tracker = self._tracker
        return {
            "name": self.name,
            "size": self.settings.model_size,
            "image_size": tracker.image_size if tracker else self.settings.image_size,
            "device": str(self._device) if self._device else self.settings.device,
            "dtype": tracker.dtype_name if tracker else None,
            "compiled": self.settings.compile,
            "checkpoint": os.path.basename(self._checkpoint) if self._checkpoint else None,
        }

    async def healthy(self) -> bool:
        return self.ready and not self.draining

    def get_input_types(self) -> list:
        return v2.input_metadata()

    def get_output_types(self) -> list:
        return v2.output_metadata()

    def start_draining(self) -> None:
        """SIGTERM: readiness false first, new requests refused; running jobs go on."""
        self.draining = True
        metrics.MODEL_READY.set(0)
        self.scheduler.stop_accepting()

    def check_accepting(self) -> None:
        """503 before reading an upload when it could not be served now."""
        if not self.ready and not self.draining:
            metrics.REJECTED.labels("not_ready").inc()
            raise Unavailable("the model is still loading; retry shortly", retry_after=10,
                              kind="not_ready")
        self.scheduler.check()

    # --- the KServe pipeline -----------------------------------------------------------------
    async def __call__(self, body, headers=None, verb=kserve.model.InferenceVerb.PREDICT):
        door = door_of(body)
        try:
            result = await super().__call__(body, headers, verb)
        except BaseException as exc:
            metrics.REQUESTS.labels(door, outcome_of(exc)).inc()
            raise
        if door != "track":  # /track's outcome is known when its stream ends (http.py)
            metrics.REQUESTS.labels(door, "ok").inc()
        return result

    def _new_feed(self, frames, prompt_frame: int, cancelled=None) -> FrameFeed:
        size = self._tracker.image_size
        return FrameFeed(frames, partial(to_model_frame, image_size=size), size, prompt_frame,
                         spool_dir=self.settings.spool_dir, cancelled=cancelled)

    async def preprocess(self, payload, headers=None) -> Job:
        s = self.settings
        if isinstance(payload, TrackInput):
            path, cancelled = payload.path, payload.cancelled
            try:
                prompt = prompts.from_query(payload.query, s.max_points)
            except BaseException:
                _remove(path)
                raise
        elif isinstance(payload, InferRequest):
            self.check_accepting()
            prompt, data = v2.parse_request(payload, s.max_points)
            if len(data) > s.max_upload_bytes:
                raise TooLarge(f"the video is {len(data)} bytes; this server accepts at most "
                               f"{s.max_upload_mb} MiB (--max_upload_mb)")
            path = await asyncio.to_thread(_spool_bytes, data, s.spool_dir)
            cancelled = threading.Event()
        else:
            raise BadInput(f"unsupported request type {type(payload).__name__}")
        try:
            self.check_accepting()
            ticket = self.scheduler.admit(cancelled)
        except BaseException:
            _remove(path)
            raise
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(None, self._open_job, path, prompt, ticket,
                                       door_of(payload), loop)
        try:
            job = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The caller went away (gRPC cancel) while the video opened: stop that thread, and
            # close the job it may still hand back.
            ticket.cancel(Cancelled("the client went away"))
            opening.add_done_callback(_close_opened_job)
            ticket.release()
            _remove(path)  # unlinking is safe while the thread still has it open
            raise
        except BaseException:
            ticket.release()
            _remove(path)
            raise
        if isinstance(payload, InferRequest):
            job.v2_request = payload
        return job

    def _open_job(self, path: str, prompt, ticket: Ticket, door: str, loop) -> Job:
        s = self.settings
        reader = open_video(path, VideoLimits(max_frames=s.max_frames, max_pixels=s.max_pixels))
        try:
            prompt.check_against(reader.info.width, reader.info.height)
            feed = self._new_feed(reader.frames(), prompt.frame_idx, ticket.cancelled).start()
            try:
                check_prompt_frame(feed, prompt)
                if ticket.cancelled.is_set():
                    raise ticket.error or Cancelled("cancelled")
            except BaseException:
                feed.close()
                raise
        except BaseException:
            reader.close()
            raise
        return Job(door=door, prompt=prompt, reader=reader, feed=feed, stream=ChunkStream(loop),
                   ticket=ticket, deadline=ticket.admitted_at + s.request_timeout,
                   spool_path=path, admitted_at=ticket.admitted_at)

    async def predict(self, job: Job, headers=None) -> Union[Job, V2Result]:
        self.scheduler.run(job.ticket, partial(job.run, self._tracker, self.describe(),
                                               self.settings.max_frames))
        try:
            if job.door == "track":
                # Until the first mask exists the answer can still be a proper 4xx/5xx; after it,
                # the 200 and the ZIP stream go out.
                await job.stream.wait_first()
                return job
            return V2Result(job.v2_request, b"".join([c async for c in job.stream.chunks()]))
        except asyncio.CancelledError:
            job.cancel(Cancelled("the client went away"))
            raise

    async def postprocess(self, result, headers=None, response_headers=None):
        if isinstance(result, V2Result):
            return v2.build_response(self.name, result.request, result.zip_bytes)
        return result  # the Job: http.py streams its ZIP


def _close_opened_job(future) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


def _spool_bytes(data: bytes, spool_dir: str) -> str:
    fd, path = tempfile.mkstemp(prefix="sam2-upload-", suffix=".video", dir=spool_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _remove(path: Optional[str]) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
