"""The whole request path in this process, KServe's way (kserve/kserve python/kserve/test:
the app through a TestClient): our routes and middlewares plus KServe's own v1/v2 endpoints and
error handlers on a fresh FastAPI app, the real Sam2Tracker, scheduler, jobs, feed and output
formats, and a fake engine in place of SAM2."""

import asyncio
import threading
import time
from typing import Optional

import uvicorn

from fastapi import FastAPI
from kserve.model_repository import ModelRepository
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer

from model.predictor import Sam2Tracker
from model.server import TrackerGRPCServer, configure_app
from model.settings import Settings
from model.v2 import TrackerDataPlane

from .fake_engine import FakeEngine
from .server import free_port


def build(tmp_path, engine: Optional[FakeEngine] = None, **settings):
    """(app, model, dataplane) with the model loaded on `engine` (a FakeEngine by default)."""
    engine = engine or FakeEngine()
    spool = tmp_path / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    model = Sam2Tracker(Settings(spool_dir=str(spool), **settings),
                        build_engine=lambda s: (engine, {"device": "cpu", "checkpoint": "fake"}))
    model.load()
    registry = ModelRepository()
    registry.update(model)
    dataplane = TrackerDataPlane(model_registry=registry)
    app = FastAPI()
    model.store = configure_app(app, model)
    # What RESTServer.create_application does to KServe's global app, on ours (private API).
    rest = RESTServer("unused:app", dataplane, ModelRepositoryExtension(registry), http_port=0)
    rest._register_endpoints(app)
    rest._add_exception_handlers(app)
    return app, model, dataplane


class GrpcDoor:
    """Our gRPC server on a loopback port inside a running event loop (use `async with`)."""

    def __init__(self, dataplane, port: int, max_message: int = 256 * 2**20):
        self.server = TrackerGRPCServer(
            port, dataplane, ModelRepositoryExtension(dataplane.model_registry),
            kwargs={"grpc_max_send_message_length": max_message,
                    "grpc_max_receive_message_length": max_message})
        self._task = None

    async def __aenter__(self):
        self._task = asyncio.ensure_future(self.server.start(max_workers=4))
        while self.server._server is None:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc):
        await self.server._server.stop(grace=None)
        self._task.cancel()


class Live:
    """The built app behind a real uvicorn on loopback in this process (streaming, hang-ups,
    the CLI): a TestClient buffers whole answers."""

    def __init__(self, tmp_path, engine: Optional[FakeEngine] = None, **settings):
        self.app, self.model, self.dataplane = build(tmp_path, engine=engine, **settings)
        self.spool = tmp_path / "spool"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.model.store.close()
