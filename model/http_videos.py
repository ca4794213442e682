"""Routes over kept videos (videos.py), for the web page and clients that track again:

    POST   /videos                         the video (raw body or multipart `video`) -> 201 + id
    GET    /videos/{id}                    size, fps, frame count (once indexed), expiry
    GET    /videos/{id}/frames/{i}         frame i (decode order) as JPEG; ?max_width=
    POST   /videos/{id}/segment            the prompts' masks on their one frame, no tracking:
                                           an 8-bit PNG, pixel = obj_id (0 = background)
    DELETE /videos/{id}
    POST   /track?video_id={id}&...        tracks a kept video (no body), as any /track
"""

import asyncio
import io
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .cancellation import Cancellation
from .errors import BadInput
from .frames import to_model_frame
from .mask_prompts import decode_masks
from .predictor import Sam2Tracker
from .request import parse_params
from .uploads import receive
from .videos import VideoStore


def _frame_rgb(video, i: int):
    video.wait_for_frame(i)
    return next(video.reader.frames_between(i, i + 1))[1]


def _jpeg(rgb, max_width: int) -> bytes:
    from PIL import Image

    img = Image.fromarray(rgb)
    if max_width and img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _id_png(masks: dict, width: int, height: int) -> bytes:
    """Pixel = obj_id where its mask is on (the smallest obj_id wins on overlap)."""
    import numpy as np
    from PIL import Image

    out = np.zeros((height, width), np.uint8)
    for obj_id in sorted(masks, reverse=True):
        out[masks[obj_id] > 0] = obj_id
    buf = io.BytesIO()
    Image.fromarray(out, mode="L").save(buf, "PNG")
    return buf.getvalue()


def add_video_routes(app: FastAPI, model: Sam2Tracker, store: VideoStore) -> None:
    settings = model.settings

    async def upload(request: Request):
        """Keep a video for a while: show its frames, try prompts, track it, without sending
        it again."""
        received = await receive(request, settings.spool_dir)
        with received.upload:
            video = await asyncio.to_thread(store.add, received.upload)
        return JSONResponse(video.describe(store.ttl), status_code=201,
                            headers={"Location": f"/videos/{video.video_id}"})

    async def describe(video_id: str):
        """The kept video: size, fps, frame count once indexed, seconds until it expires."""
        return JSONResponse(store.get(video_id).describe(store.ttl))

    async def frame(video_id: str, index: int, max_width: int = 0):
        """Frame `index` in decode order, as JPEG: the very frame /track reads as that index."""
        video = store.get(video_id)
        if index < 0:
            raise BadInput(f"frame index must be >= 0, got {index}")
        rgb = await asyncio.to_thread(_frame_rgb, video, index)
        data = await asyncio.to_thread(_jpeg, rgb, max_width)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=600"})

    async def segment(video_id: str, request: Request):
        """The masks of the prompts (all on one frame) on that frame: a quick look before
        tracking. Answers an 8-bit PNG of the video's size, pixel = obj_id."""
        video = store.get(video_id)
        items = list(request.query_params.multi_items())
        files = {}
        if (request.headers.get("content-type") or "").startswith("multipart/form-data"):
            form = await request.form()
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    files[key] = await value.read()
                else:
                    items.append((key, value))
        prompts, _, mask_parts = parse_params(items, files, settings.max_points,
                                              settings.max_objects)
        if len(prompts.frames) != 1:
            raise BadInput(f"a preview takes prompts on one frame; got frames {prompts.frames}")
        info = video.reader.info
        prompts.check_against_video(info.width, info.height)
        masks = decode_masks(prompts, mask_parts, info.width, info.height)
        rgb = await asyncio.to_thread(_frame_rgb, video, prompts.frames[0])
        image = to_model_frame(rgb, model.engine.image_size)
        with model.admit(Cancellation()) as ticket:
            work = partial(model.engine.segment, image, prompts, masks, info.width, info.height)
            result = await model.scheduler.run(ticket.hand_over(), work, timed=False)
        png = await asyncio.to_thread(_id_png, result.masks, info.width, info.height)
        return Response(png, media_type="image/png",
                        headers={"X-Objects": ",".join(map(str, sorted(result.masks)))})

    async def remove(video_id: str):
        store.remove(video_id)
        return Response(status_code=204)

    tags = ["videos"]
    app.add_api_route("/videos", upload, methods=["POST"], tags=tags, summary="Keep a video")
    app.add_api_route("/videos/{video_id}", describe, methods=["GET"], tags=tags)
    app.add_api_route("/videos/{video_id}", remove, methods=["DELETE"], tags=tags)
    app.add_api_route("/videos/{video_id}/frames/{index}", frame, methods=["GET"], tags=tags,
                      summary="One frame of a kept video, as JPEG")
    app.add_api_route("/videos/{video_id}/segment", segment, methods=["POST"], tags=tags,
                      summary="The prompts' masks on their frame, without tracking")
