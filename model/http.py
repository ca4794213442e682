"""The HTTP routes: POST /track, GET /health, and the model repository API closed.

/track turns the HTTP request into a TrackRequest (the upload spooled to a file by uploads.py,
the parameters checked by request.py), hands it to the model's preprocess -> predict ->
postprocess, and streams the job's answer while tracking runs. Errors are raised, not returned:
the one handler (accounting.py) renders them from the table in errors.py.
"""

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .accounting import new_request_id, noting, record_of, register_error_handlers
from .cancellation import Cancellation
from .errors import Cancelled
from .openapi import TRACK_OPENAPI
from .outputs.progress import progress_headers
from .predictor import Sam2Tracker
from .request import TrackRequest, parse_params
from .uploads import Received, body_kind, receive
from .videos import VideoStore


async def _watch_disconnect(request: Request, cancellation: Cancellation) -> None:
    """While the job waits for the device, notice a client that hangs up (body already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancellation.cancel(Cancelled("the client hung up"))
            return


def add_routes(app: FastAPI, model: Sam2Tracker, store: VideoStore) -> None:
    settings = model.settings

    async def track(request: Request):
        """Track objects through a video from prompts on its frames; stream the masks back."""
        record = record_of(request.scope)
        request_id = record.request_id if record else new_request_id()
        query = list(request.query_params.multi_items())
        video_id = dict(query).get("video_id")
        kind = "raw" if video_id else body_kind(request.headers.get("content-type"))
        if kind == "raw":  # every parameter is in the query: check it before reading the body
            parse_params(query, {}, settings.max_points, settings.max_objects)
        cancellation = Cancellation()
        # A place in line before the upload is read: 503 at once when busy; released on the way
        # out unless the job took it.
        with model.admit(cancellation) as ticket:
            if video_id:  # a kept video: borrowed, given back when the job ends
                received = Received(store.borrow(video_id))
            else:
                received = await receive(request, settings.spool_dir)
            with received.upload:  # removed (or given back) unless the job took it
                prompts, options, masks = parse_params(query + received.fields, received.files,
                                                       settings.max_points, settings.max_objects)
                track_request = TrackRequest(door="track", request_id=request_id,
                                             upload=received.upload, prompts=prompts,
                                             options=options, mask_images=masks, ticket=ticket,
                                             cancellation=cancellation)
                watcher = asyncio.create_task(_watch_disconnect(request, cancellation))
                try:
                    job, _ = await model(track_request, headers=dict(request.headers))
                finally:
                    watcher.cancel()
        return StreamingResponse(
            noting(record, job.chunks()), media_type=job.media_type,
            headers={"Content-Disposition": f'attachment; filename="{job.format.filename}"',
                     **progress_headers(job)})

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

    async def no_model_repository(path: str):
        """KServe registers /v2/repository/models/{name}/load and /unload. This server has no
        repository: one anonymous `unload` would leave the replica unready for good (liveness
        still 200, never restarted). Registered before KServe's routes, so it answers first."""
        return JSONResponse({"error": "this server has no model repository API"},
                            status_code=404)

    app.add_api_route("/track", track, methods=["POST"], openapi_extra=TRACK_OPENAPI,
                      summary="Track objects through a video", tags=["sam2"])
    app.add_api_route("/health", health, methods=["GET"], tags=["sam2"],
                      summary="Readiness of the model")
    app.add_api_route("/v2/repository/{path:path}", no_model_repository,
                      methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False)
    register_error_handlers(app)
