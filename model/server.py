"""KServe's ModelServer with our routes, our data plane, background loading and a graceful stop.

Start-up: the server listens at once (liveness answers, readiness is 503) while the model builds
and warms up in a thread; then readiness turns 200. A failed load stops the process with exit 1.

SIGTERM/SIGINT: readiness turns 503 and new requests get 503 at once; running and queued jobs get
--grace_period seconds to finish, then are cancelled (their clients see an aborted stream, never
a short ZIP that looks complete); then HTTP and gRPC stop and the process exits 0.
"""

import asyncio
import logging
import signal
import threading
from typing import Optional

import kserve
from kserve import model_server as kserve_model_server

from .errors import Cancelled
from .http import BodyLimit, add_routes, body_limit_for
from .predictor import Sam2Tracker
from .v2 import TrackerDataPlane

logger = logging.getLogger("sam2_tracker")

# Once jobs are done or cancelled, how long uvicorn waits for connections to close.
_HTTP_CLOSE_SECONDS = 5


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
        app = kserve_model_server.app
        add_routes(app, self.model)
        settings = self.model.settings
        app.add_middleware(BodyLimit, limit_for=body_limit_for(settings.max_upload_bytes),
                           max_upload_mb=settings.max_upload_mb)
        # Registered before it is ready; ModelServer.start() would refuse an unready model.
        self.register_model(self.model)
        self.model.enable_latency_logging = self.enable_latency_logging
        self.start([])
        return self.exit_code

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
