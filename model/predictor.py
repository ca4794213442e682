"""Sam2Tracker: the KServe model. Loading, and KServe's four hooks; nothing else.

Three doors lead here with the same request shape (request.py): POST /track (http.py hands a
TrackRequest), v2 REST and v2 gRPC (KServe hands an InferRequest; v2.py translates it):

    preprocess:  admit (a place in line) -> Job.open (video, prompts checked, feed started)
    predict:     run the Job on the device thread; /track returns once the first mask exists
    postprocess: /track -> the Job, whose answer the route streams; v2 -> the `masks` output
"""

import asyncio
import logging
import os
import time
from functools import partial
from typing import Callable, Optional

import kserve
from kserve.protocol.infer_type import InferRequest

from . import metrics, v2
from .checkpoints import resolve_checkpoint
from .errors import BadInput, Cancelled, Unavailable
from .feed import FrameFeed
from .job import Job, JobConfig
from .request import TrackRequest
from .cancellation import Cancellation
from .scheduler import Scheduler, Ticket
from .settings import Settings
from .video import VideoLimits

logger = logging.getLogger(__name__)


def pick_device(requested: str):
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def build_sam2_engine(settings: Settings):
    """The real engine: SAM2.1 from the checkpoint, on the chosen device. Returns (engine, info)."""
    import torch

    from .sam2_build import build_video_predictor, log_extension_status
    from .tracking import Tracker

    checkpoint = resolve_checkpoint(settings.model_size, settings.model_dir, settings.checkpoint)
    device = pick_device(settings.device)
    if device.type == "cuda" and torch.cuda.get_device_properties(0).major >= 8:
        # TF32 on Ampere and newer, as SAM2's own demo sets it.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    logger.info("building SAM2.1 %s from %s on %s (image_size %s, compile %s)",
                settings.model_size, checkpoint, device, settings.image_size or "1024",
                settings.compile)
    predictor = build_video_predictor(settings.model_size, checkpoint, str(device),
                                      image_size=settings.image_size,
                                      compile_model=settings.compile)
    log_extension_status(device)
    engine = Tracker(predictor, device, pad_points=settings.compile,
                     object_lanes=settings.object_lanes)
    return engine, {"device": str(device), "checkpoint": os.path.basename(checkpoint)}


class Sam2Tracker(kserve.Model):
    settings: Settings
    scheduler: Scheduler
    engine = None  # tracking.Tracker (or a test's fake) once loaded
    engine_info: Optional[dict] = None
    draining: bool = False
    load_error: Optional[str] = None
    load_seconds: Optional[float] = None

    def __init__(self, settings: Settings, build_engine: Callable = build_sam2_engine):
        super().__init__(settings.model_name)
        self.settings = settings
        self.scheduler = Scheduler(settings.max_queue)
        self._build_engine = build_engine

    # --- loading ------------------------------------------------------------------------------
    def load(self) -> bool:
        t0 = time.monotonic()
        self.engine, self.engine_info = self._build_engine(self.settings)
        masks = self.scheduler.run_blocking(partial(self.engine.warm_up, self._make_feed))
        self.load_seconds = time.monotonic() - t0
        metrics.MODEL_INFO.info({k: str(v) for k, v in self.describe().items()})
        logger.info("model ready in %.1f s (warm-up made %d masks); memory window %d frames",
                    self.load_seconds, masks, self.engine.window)
        self.ready = True
        metrics.MODEL_READY.set(1)
        return self.ready

    def _make_feed(self, source, plan) -> FrameFeed:
        return FrameFeed(source, self.engine.image_size, plan, spool_dir=self.settings.spool_dir)

    def describe(self) -> dict:
        info = self.engine_info or {}
        return {
            "name": self.name,
            "size": self.settings.model_size,
            "image_size": self.engine.image_size if self.engine else self.settings.image_size,
            "device": info.get("device", self.settings.device),
            "dtype": self.engine.dtype_name if self.engine else None,
            "compiled": self.settings.compile,
            "checkpoint": info.get("checkpoint"),
        }

    def job_config(self) -> JobConfig:
        s = self.settings
        return JobConfig(image_size=self.engine.image_size, spool_dir=s.spool_dir,
                         limits=VideoLimits(max_frames=s.max_frames, max_pixels=s.max_pixels),
                         request_timeout=s.request_timeout)

    # --- readiness and admission --------------------------------------------------------------
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

    def admit(self, cancellation: Cancellation) -> Ticket:
        """A place in line, taken before the upload is read: so an upload that could not be
        served now gets its 503 before it is sent, and the spool never holds more than
        1 + --max_queue uploads (the chart sizes /tmp from that)."""
        if not self.ready and not self.draining:
            metrics.REJECTED.labels("not_ready").inc()
            raise Unavailable("the model is still loading; retry shortly", retry_after=10,
                              kind="not_ready")
        return self.scheduler.admit(cancellation)

    # --- the KServe pipeline -----------------------------------------------------------------
    async def preprocess(self, payload, headers=None) -> Job:
        if isinstance(payload, InferRequest):
            cancellation = Cancellation()
            with self.admit(cancellation) as ticket:  # released on the way out unless handed on
                request = await v2.to_track_request(payload, self.settings, headers or {},
                                                    ticket, cancellation)
                return await self._open(request)
        if isinstance(payload, TrackRequest):
            return await self._open(payload)
        raise BadInput(f"unsupported request type {type(payload).__name__}")

    async def _open(self, request: TrackRequest) -> Job:
        """Job.open in a thread; the request's upload and place in line go to the job."""
        ticket = request.ticket
        with request.upload, ticket:  # released on the way out unless the job took them
            loop = asyncio.get_running_loop()
            opening = loop.run_in_executor(None, Job.open, request, ticket, self.job_config(),
                                           loop)
            try:
                return await asyncio.shield(opening)
            except asyncio.CancelledError:
                # The caller went away (a gRPC cancel) while the video opened: stop that thread
                # and close the job it may still hand back.
                ticket.cancel(Cancelled("the client went away"))
                opening.add_done_callback(_close_if_opened)
                raise

    async def predict(self, job: Job, headers=None) -> Job:
        s = self.settings
        self.scheduler.run(job.ticket, partial(job.run, self.engine, self.describe(),
                                               s.max_frames))
        try:
            if job.request.door == "track":
                # Until the first chunk exists the answer can still be a proper 4xx/5xx; after it,
                # the 200 and the stream go out.
                await job.stream.wait_first()
                return job
            job.answer = await job.body()
            return job
        except asyncio.CancelledError:
            job.cancellation.cancel(Cancelled("the client went away"))
            raise

    async def postprocess(self, job: Job, headers=None, response_headers=None):
        if job.request.door == "track":
            return job  # the route streams its answer
        return v2.build_response(self.name, job.request.reply, job.answer)


def _close_if_opened(future) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()
