"""Fast tier: the palette, rle and preview answers, in process with the fake engine, read back as
a user would (PIL, pycocotools, PyAV); through /track and the v2 doors; the progress header."""

import asyncio
import base64
import hashlib
import io
import json
import os
import threading
import time
import zipfile

import av
import numpy as np
import pytest
import requests
import uvicorn
from fastapi.testclient import TestClient
from kserve import InferenceGRPCClient, InferInput, InferRequest
from PIL import Image

from model.errors import DeadlineExceeded
from model.outputs.labels import DAVIS_PALETTE, label_map
from model.outputs.palette import encode_palette_png
from support.fake_engine import FakeEngine
from support.inprocess import GrpcDoor, build
from support.outputcheck import (SAM2_DAVIS_PALETTE_SHA256, bbox_of, check_colours, read_palette,
                                 read_rle, smallest_id_wins, video_facts, video_frame,
                                 zip_entry)
from support.server import free_port
from support.videos import decode_rgb, frames_of, write_video
from support.zipcheck import read_masks

W, H = 320, 192
# Three objects on the red disc; the fake engine shifts object k by k - 1 pixels, so they overlap.
PROMPTS = [{"obj_id": 3, "frame_idx": 4, "points": [[60, 96]]},
           {"obj_id": 1, "frame_idx": 4, "points": [[60, 96]]},
           {"obj_id": 2, "frame_idx": 6, "points": [[60, 96]]}]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = write_video(str(tmp_path_factory.mktemp("outputs") / "v12.mp4"), 12)
    return open(path, "rb").read(), decode_rgb(path)


@pytest.fixture
def door(tmp_path):
    app, model, dataplane = build(tmp_path)
    with TestClient(app) as client:
        yield client, dataplane, tmp_path / "spool"


def track(client, body: bytes, **params):
    if "prompts" in params and not isinstance(params["prompts"], str):
        params["prompts"] = json.dumps(params["prompts"])
    r = client.post("/track", params=params, content=body,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    return r


# --- palette --------------------------------------------------------------------------------
def test_the_palette_is_sam2s_davis_palette():
    assert len(DAVIS_PALETTE) == 768
    assert hashlib.sha256(DAVIS_PALETTE).hexdigest() == SAM2_DAVIS_PALETTE_SHA256


def test_label_map_smallest_obj_id_wins_where_masks_overlap():
    rng = np.random.default_rng(0)
    masks = {o: (rng.random((40, 50)) > 0.5).astype(np.uint8) * 255 for o in (9, 2, 200, 5)}
    assert np.array_equal(label_map(masks), smallest_id_wins(masks, (40, 50)))
    img = Image.open(io.BytesIO(encode_palette_png(label_map(masks))))
    assert img.mode == "P" and np.array_equal(np.asarray(img), label_map(masks))


def test_palette_answer_is_the_union_of_the_png_masks(door, video):
    client, _, spool = door
    body, _ = video
    png, _ = read_masks(track(client, body, prompts=PROMPTS).content, long_form=True)
    r = track(client, body, prompts=PROMPTS, format="palette")
    labels, manifest, names = read_palette(r.content)
    assert r.headers["content-type"] == "application/zip"
    assert names[:8] == [f"masks/{i:05d}.png" for i in range(4, 12)]  # tracking order
    assert sorted(labels) == list(range(12)) and manifest["masks"]["format"].startswith(
        "8-bit indexed PNG")
    for f in range(12):
        expected = smallest_id_wins({o: png[o][f] for o in png}, (H, W))
        assert np.array_equal(labels[f], expected), f
    assert {1, 2, 3} <= set(np.unique(labels[8]))  # 2 and 3 peek out right of object 1
    short, _, _ = read_palette(track(client, body, points="60,96", format="palette").content)
    assert set(np.unique(short[8])) == {0, 1}
    assert os.listdir(spool) == []


# --- rle ------------------------------------------------------------------------------------
def test_rle_lines_decode_to_the_png_masks(door, video):
    client, _, _ = door
    body, _ = video
    png, png_manifest = read_masks(track(client, body, prompts=PROMPTS).content, long_form=True)
    r = track(client, body, prompts=PROMPTS, format="rle")
    assert r.headers["content-type"] == "application/x-ndjson"
    lines, masks, manifest = read_rle(r.content)
    assert [x["frame_idx"] for x in lines] == [*range(4, 12), *range(3, -1, -1)]
    assert manifest["masks"]["count"] == 12 and manifest["video"] == png_manifest["video"]
    for line in lines:
        f = line["frame_idx"]
        assert [o["obj_id"] for o in line["objects"]] == [1, 2, 3]
        for obj in line["objects"]:
            mask = png[obj["obj_id"]][f]
            assert np.array_equal(masks[f][obj["obj_id"]], mask), (f, obj["obj_id"])
            assert obj["area"] == int((mask > 0).sum()) and obj["bbox"] == bbox_of(mask)
            assert obj["score"] == float(f)  # the fake engine's logit; the real one in slow
            assert obj["rle"]["size"] == [H, W]
    short = read_rle(track(client, body, points="60,96", format="rle").content)[1]
    assert all(list(frame) == [1] for frame in short.values())


def test_rle_empty_mask_has_null_bbox(door, tmp_path):
    client, _, _ = door
    dark = [np.zeros((48, 64, 3), np.uint8)] * 3  # no red disc: the fake engine finds nothing
    path = str(tmp_path / "dark.mkv")
    with av.open(path, "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "bgr0"
        for f in dark:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    lines, _, _ = read_rle(track(client, open(path, "rb").read(), points="5,5",
                                 format="rle").content)
    assert [o["bbox"] for x in lines for o in x["objects"]] == [None] * 3
    assert all(o["area"] == 0 for x in lines for o in x["objects"])


@pytest.fixture
def live(tmp_path):
    app, model, _ = build(tmp_path, engine=FakeEngine(delay=0.03))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_rle_first_line_arrives_before_tracking_ends(live, tmp_path):
    video = write_video(str(tmp_path / "v40.mp4"), 40, 96, 64)
    t0 = time.monotonic()
    with open(video, "rb") as f:
        r = requests.post(live + "/track", params={"points": "20,30", "format": "rle"}, data=f,
                          stream=True, timeout=60)
        assert r.headers["x-expected-frames"] == "40"
        arrivals = [(time.monotonic() - t0, line) for line in r.iter_lines() if line]
    total = time.monotonic() - t0
    assert json.loads(arrivals[0][1])["frame_idx"] == 0
    assert arrivals[0][0] < total / 4, (arrivals[0][0], total)  # 40 frames take >= 1.2 s
    assert len(arrivals) == 41 and "manifest" in json.loads(arrivals[-1][1])


# --- preview --------------------------------------------------------------------------------
def test_preview_mp4_in_the_zip(door, video, tmp_path):
    client, _, spool = door
    body, originals = video
    prompts = [{"obj_id": 2, "frame_idx": 5, "points": [[60, 96]]}]
    r = track(client, body, prompts=prompts, format="palette", preview="mp4")
    labels, manifest, names = read_palette(r.content)
    assert names[-2:] == ["preview.mp4", "manifest.json"]
    path = tmp_path / "preview.mp4"
    path.write_bytes(zip_entry(r.content, "preview.mp4"))
    facts = video_facts(str(path))
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert (facts["frames"], facts["fps"], facts["width"], facts["height"]) == (12, 12, W, H)
    assert manifest["preview"]["frames"] == 12 and manifest["preview"]["first_frame"] == 0
    for f in (0, 4, 5, 11):  # both segments: 0..4 encoded at the end, 5..11 as they came
        assert check_colours(video_frame(str(path), f), originals[f], labels[f]) == 1
    assert os.listdir(spool) == []


def odd_video(path: str, n: int, width: int, height: int) -> str:
    """A lossless odd-sized video (OpenCV's writers round sizes down to even)."""
    with av.open(path, "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = width, height, "bgr0"
        for f in frames_of(n, width, height):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[..., ::-1]), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize("direction", ["both", "backward"])
def test_preview_of_an_odd_video_tracked_in_part(door, tmp_path, direction):
    client, _, spool = door
    path = odd_video(str(tmp_path / "odd.mkv"), 20, 161, 97)
    r = track(client, open(path, "rb").read(), points="40,48", frame_idx=10,
              max_frames_to_track=3, direction=direction, format="png", preview="mp4")
    masks, manifest = read_masks(r.content)
    first = 7  # three frames back from frame 10
    last = 13 if direction == "both" else 10
    assert sorted(masks) == list(range(first, last + 1))
    mp4 = tmp_path / "preview.mp4"
    mp4.write_bytes(zip_entry(r.content, "preview.mp4"))
    facts = video_facts(str(mp4))
    assert (facts["width"], facts["height"], facts["frames"], facts["fps"]) == (
        162, 98, last - first + 1, 10)
    assert manifest["preview"]["first_frame"] == first and manifest["preview"]["padded"]
    originals = decode_rgb(path)
    for i in (0, 3, last - first):
        frame = video_frame(str(mp4), i)
        # The padding row and column repeat the last ones (up to H.264's losses).
        assert np.abs(frame[97].astype(int) - frame[96]).mean() < 3
        assert np.abs(frame[:, 161].astype(int) - frame[:, 160]).mean() < 3
        assert check_colours(frame[:97, :161], originals[first + i],
                             (masks[first + i] > 0).astype(np.uint8)) == 1
    assert os.listdir(spool) == []


def test_a_stopped_job_leaves_no_preview_files(tmp_path):
    app, model, _ = build(tmp_path, engine=FakeEngine(delay=0.05), request_timeout=0.5)
    video = open(write_video(str(tmp_path / "v40.mp4"), 40, 96, 64), "rb").read()
    with TestClient(app) as client:
        with pytest.raises(RuntimeError) as cut:  # the stream is cut, never a short ZIP
            client.post("/track", params={"points": "20,30", "frame_idx": 20,
                                          "preview": "mp4"}, content=video)
        assert isinstance(cut.value.__cause__, DeadlineExceeded)
        deadline = time.monotonic() + 5
        while os.listdir(tmp_path / "spool") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert os.listdir(tmp_path / "spool") == []


# --- progress -------------------------------------------------------------------------------
def test_expected_frames_header(door, video):
    client, _, _ = door
    body, _ = video
    r = track(client, body, points="60,96", frame_idx=5)
    assert r.headers["x-expected-frames"] == "12"
    assert r.headers["x-expected-frames-basis"] in ("decoded", "container")
    r = track(client, body, points="60,96", frame_idx=5, max_frames_to_track=2, format="rle")
    lines, _, manifest = read_rle(r.content)
    assert int(r.headers["x-expected-frames"]) == len(lines) == manifest["masks"]["count"] == 5


# --- the v2 doors ---------------------------------------------------------------------------
def v2_json(client, body: bytes, parameters: dict):
    inputs = [{"name": "video", "shape": [1], "datatype": "BYTES",
               "data": [base64.b64encode(body).decode()]},
              {"name": "frame_idx", "shape": [1], "datatype": "INT64", "data": [5]},
              {"name": "points", "shape": [1, 2], "datatype": "FP32", "data": [60, 96]}]
    return client.post("/v2/models/sam2/infer", json={"inputs": inputs,
                                                      "parameters": parameters})


def v2_grpc(dataplane, body: bytes, parameters: dict):
    import grpc

    async def call():
        port = free_port()
        async with GrpcDoor(dataplane, port):
            client = InferenceGRPCClient(f"127.0.0.1:{port}", timeout=60, channel_args=[
                ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
            video = InferInput("video", [1], "BYTES")
            video.set_data_from_numpy(np.array([body], dtype=np.object_))
            frame = InferInput("frame_idx", [1], "INT64")
            frame.set_data_from_numpy(np.array([5], np.int64))
            points = InferInput("points", [1, 2], "FP32")
            points.set_data_from_numpy(np.array([[60, 96]], np.float32))
            try:
                response = await client.infer(InferRequest("sam2", [video, frame, points],
                                                           parameters=parameters))
                return grpc.StatusCode.OK, response.outputs[0].as_numpy()[0]
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details()
            finally:
                await client.close()

    return asyncio.run(call())


def same_answer(a: bytes, b: bytes, fmt: str):
    """Byte for byte but the manifest (its request id and timings differ)."""
    if fmt == "rle":
        assert a.splitlines()[:-1] == b.splitlines()[:-1]
        return
    za, zb = zipfile.ZipFile(io.BytesIO(a)), zipfile.ZipFile(io.BytesIO(b))
    assert za.namelist() == zb.namelist()
    for name in za.namelist():
        if name != "manifest.json":
            assert za.read(name) == zb.read(name), name


@pytest.mark.parametrize("fmt,preview", [("palette", "mp4"), ("rle", None), ("png", "mp4")])
def test_every_format_through_the_v2_doors(door, video, fmt, preview):
    client, dataplane, _ = door
    body, _ = video
    params = {"format": fmt, **({"preview": preview} if preview else {})}
    answer = track(client, body, points="60,96", frame_idx=5, **params).content
    r = v2_json(client, body, params)
    assert r.status_code == 200, r.text
    same_answer(base64.b64decode(r.json()["outputs"][0]["data"][0]), answer, fmt)
    if fmt == "palette":
        code, grpc_answer = v2_grpc(dataplane, body, params)
        assert code.name == "OK", grpc_answer
        same_answer(bytes(grpc_answer), answer, fmt)


@pytest.mark.parametrize("params,words", [
    ({"format": "jpeg"}, "format must be one of png, palette, rle; got 'jpeg'"),
    ({"preview": "gif"}, "preview must be one of mp4; got 'gif'"),
    ({"format": "rle", "preview": "mp4"}, "use it with format=png or format=palette")])
def test_bad_format_or_preview_over_v2_is_400(door, video, params, words):
    client, dataplane, _ = door
    body, _ = video
    r = v2_json(client, body, params)
    assert r.status_code == 400 and words in r.json()["error"], r.text
    code, details = v2_grpc(dataplane, body, params)
    assert code.name == "INVALID_ARGUMENT" and words in details
    r = client.post("/track", params={"points": "60,96", **params}, content=body,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and words in r.json()["error"]
