"""KServe's ModelServer with our routes, our data plane, our gRPC servicer, background loading and
a graceful stop.

Start-up: the server listens at once (liveness answers, readiness is 503) while the model builds
and warms up in a thread; then readiness turns 200. A failed load stops the process with exit 1.

SIGTERM/SIGINT: readiness turns 503 and new requests get 503 at once; running and queued jobs get
--grace_period seconds to finish, then are cancelled (their clients see an aborted stream, never
a short ZIP that looks complete); then HTTP and gRPC stop and the process exits 0.

KServe internals this relies on (kserve==0.21.0 is pinned; check these when bumping it):
`kserve.model_server.app`/`args`/`parser`, `ModelServer._rest_server._server` (uvicorn),
`ModelServer.servers`, `setup_event_loop`, `RESTServer`, `GRPCServer._server`/`_kwargs`, and
`InferenceServicer._data_plane`/`validate_grpc_request`.
"""

import asyncio
import logging
import os
import signal
import threading
from concurrent import futures
from typing import Optional

import grpc
import kserve
from fastapi import FastAPI
from grpc import aio
from kserve import model_server as kserve_model_server
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.protocol.rest.server import RESTServer
from kserve.utils.utils import to_headers

from .accounting import REQUEST_ID_HEADER, CountRequests, RequestRecord
from .errors import BUG, Cancelled, verdict
from .http import add_routes
from .http_page import add_page_routes
from .http_videos import add_video_routes
from .predictor import Sam2Tracker
from .uploads import BodyLimit, body_limit_for
from .v2 import TrackerDataPlane
from .video import VideoLimits
from .videos import VideoStore

logger = logging.getLogger(__name__)

_NO_REPOSITORY = "this server has no model repository API"
# Once jobs are done or cancelled, how long uvicorn waits for connections to close.
_HTTP_CLOSE_SECONDS = 5


def configure_app(app: FastAPI, model: Sam2Tracker) -> VideoStore:
    """Our routes and middlewares on an app (KServe's global one, or a test's); returns the
    store of kept videos, which the caller closes at the end."""
    s = model.settings
    store = VideoStore(os.path.join(s.spool_dir, "videos"), s.video_cache_mb * 2**20,
                       s.video_cache_ttl, VideoLimits(s.max_frames, s.max_pixels))
    add_page_routes(app)
    add_routes(app, model, store)
    add_video_routes(app, model, store)
    app.add_middleware(BodyLimit, limit_for=body_limit_for(s.max_upload_bytes),
                       max_upload_mb=s.max_upload_mb)
    app.add_middleware(CountRequests)  # outermost of ours: it counts BodyLimit's 413s too
    return store


class TrackerServicer(InferenceServicer):
    """KServe's gRPC servicer, with each ModelInfer counted once and mapped by errors.TABLE,
    and no model repository calls."""

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        headers = to_headers(context)
        record = RequestRecord("v2_grpc", headers.get(REQUEST_ID_HEADER))
        headers[REQUEST_ID_HEADER] = record.request_id
        await context.send_initial_metadata(((REQUEST_ID_HEADER, record.request_id),))
        try:
            self.validate_grpc_request(request)
            response, _ = await self._data_plane.infer(
                request=InferRequest.from_grpc(request), headers=headers,
                model_name=request.model_name)
        except Exception as exc:  # noqa: BLE001 - mapped by the table, counted once
            record.finish(exc)
            v = verdict(exc)
            message = str(exc) if v is not BUG else \
                f"internal error; see the server log for request {record.request_id}"
            await context.abort(v.grpc, message)
        except BaseException as exc:  # the RPC was cancelled
            record.finish(exc)
            raise
        record.finish()
        return response.to_grpc() if isinstance(response, InferResponse) else response

    async def RepositoryModelLoad(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_REPOSITORY)

    async def RepositoryModelUnload(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_REPOSITORY)


class TrackerGRPCServer(GRPCServer):
    async def start(self, max_workers):
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            options=[("grpc.max_send_message_length",
                      self._kwargs.get("grpc_max_send_message_length")),
                     ("grpc.max_receive_message_length",
                      self._kwargs.get("grpc_max_receive_message_length"))])
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            TrackerServicer(self._data_plane, self._model_repository_extension), self._server)
        self._server.add_insecure_port(f"[::]:{self._port}")
        logger.info("gRPC on port %d", self._port)
        await self._server.start()
        await self._server.wait_for_termination()


class TrackerServer(kserve.ModelServer):
    def __init__(self, model: Sam2Tracker, **kwargs):
        super().__init__(grace_period=_HTTP_CLOSE_SECONDS, **kwargs)
        # Our data plane: binary BYTES inputs kept as bytes, readiness that means "can serve".
        self.dataplane = TrackerDataPlane(model_registry=self.registered_models)
        self.model = model
        self.exit_code = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Task] = None

    # --- start --------------------------------------------------------------------------------
    def serve(self) -> int:
        self.store = configure_app(kserve_model_server.app, self.model)
        # Registered before it is ready; KServe's start() would refuse an unready model.
        self.register_model(self.model)
        self.model.enable_latency_logging = self.enable_latency_logging
        self.start([])
        return self.exit_code

    def start(self, models) -> None:
        """ModelServer.start for our one worker, with our gRPC servicer."""
        self._rest_server = RESTServer(
            kserve_model_server.FASTAPI_APP_IMPORT_STRING, self.dataplane,
            self.model_repository_extension, self.http_port,
            access_log_format=self.access_log_format, workers=1,
            grace_period=self.grace_period, event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive)
        self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = TrackerGRPCServer(
                self.grpc_port, self.dataplane, self.model_repository_extension,
                kwargs=vars(kserve_model_server.args), grace_period=self.grace_period)
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())

    async def _serve(self):
        self._loop = asyncio.get_running_loop()
        # uvicorn installs its own SIGINT/SIGTERM handler (`handle_exit`) while it serves; ours
        # replaces it so that draining comes before uvicorn stops listening.
        self._rest_server._server.handle_exit = self._on_signal
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()
        await super()._serve()

    def _load(self) -> None:
        try:
            self.model.load()
        except Exception as exc:  # noqa: BLE001 - any load failure ends the process
            logger.exception("loading the model failed")
            self.model.load_error = f"{type(exc).__name__}: {exc}"
            self.exit_code = 1
            self._loop.call_soon_threadsafe(self._begin_stop, signal.SIGTERM)

    # --- stop ---------------------------------------------------------------------------------
    def register_signal_handler(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, sig, frame) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._begin_stop, sig)

    def _begin_stop(self, sig) -> None:
        if self._stopping is None:
            logger.info("signal %s: draining (grace period %.0f s)", signal.Signals(sig).name,
                        self.model.settings.grace_period)
            self._stopping = asyncio.ensure_future(self._stop(sig))
        else:  # a second signal: do not wait any longer
            logger.info("second signal: cancelling all jobs now")
            self.model.scheduler.cancel_all(Cancelled("the server is shutting down", 5))

    async def _stop(self, sig) -> None:
        self.model.start_draining()
        scheduler = self.model.scheduler
        idle = await asyncio.to_thread(scheduler.wait_idle, self.model.settings.grace_period)
        if not idle:
            n = scheduler.cancel_all(Cancelled("the server is shutting down; retry the request",
                                               retry_after=5))
            logger.warning("grace period over: cancelled %d job(s)", n)
            await asyncio.to_thread(scheduler.wait_idle, 10)
        self._rest_server._server.should_exit = True
        if self._grpc_server is not None:
            await self._grpc_server.stop(sig)
        scheduler.shutdown()
        self.store.close()
        logger.info("stopped")


def configure_grpc_limits(max_message_bytes: int) -> None:
    """KServe's gRPC server reads its limits from the flags KServe parsed at import (8 MiB by
    default), not from the ModelServer arguments; raise them so a video fits, unless the user
    set them on the command line."""
    args = kserve_model_server.args
    default = kserve_model_server.parser.get_default("grpc_max_receive_message_length")
    if args.grpc_max_receive_message_length == default:
        args.grpc_max_receive_message_length = max_message_bytes
    if args.grpc_max_send_message_length == default:
        args.grpc_max_send_message_length = 2**31 - 1
