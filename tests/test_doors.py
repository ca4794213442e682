"""Fast tier: the three doors in this process, with a fake engine.

/track (raw and multipart) and v2 REST through a TestClient on an app built as the server builds
it, v2 gRPC through our servicer on a loopback port. Every bad input in the table, through every
door, gets its status and moves sam2_tracker_requests_total by exactly one, with its outcome.
"""

import asyncio
import base64
import io
import json
import os
import zipfile

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from kserve import InferenceGRPCClient, InferInput, InferRequest
from PIL import Image
from prometheus_client import REGISTRY

from model.cancellation import Cancellation
from support.fake_engine import FakeEngine
from support.inprocess import GrpcDoor, build
from support.server import free_port
from support.videos import write_video
from support.zipcheck import read_masks

W, H = 320, 192


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("doors")
    good = open(write_video(str(d / "v12.mp4"), 12), "rb").read()
    zero = str(d / "zero.avi")
    cv2.VideoWriter(zero, cv2.VideoWriter_fourcc(*"MJPG"), 12, (W, H)).release()
    png = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(png, "PNG")
    return {"good": good, "truncated": good[: len(good) // 3], "empty": b"",
            "random": np.random.default_rng(1).integers(0, 256, 50_000, np.uint8).tobytes(),
            "text": b"hello, this is not a video\n" * 20, "png": png.getvalue(),
            "zero_frames": open(zero, "rb").read()}


@pytest.fixture
def door(tmp_path):
    app, model, dataplane = build(tmp_path, max_upload_mb=1, max_frames=40)
    with TestClient(app) as client:
        yield client, model, dataplane, tmp_path / "spool"


def count(door_name: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("sam2_tracker_requests_total",
                                     {"door": door_name, "outcome": outcome}) or 0.0


def total(door_name: str) -> float:
    return sum(count(door_name, o) for o in
               ("ok", "bad_request", "too_large", "unsupported_media", "busy", "unavailable",
                "cancelled", "timeout", "error"))


# --- the three ways in ---------------------------------------------------------------------
def via_track(client, body: bytes, prompt: dict):
    params = [("frame_idx", prompt.get("frame_idx", 0))]
    params += [("points", f"{x},{y}") for x, y in prompt.get("points", [])]
    params += [("labels", v) for v in prompt.get("labels", [])]
    if "box" in prompt:
        params.append(("box", ",".join(map(str, prompt["box"]))))
    r = client.post("/track", params=params, content=body,
                    headers={"Content-Type": "application/octet-stream"})
    return r.status_code, r.content if r.status_code == 200 else r.json()["error"]


def v2_inputs(body: bytes, prompt: dict, binary: bool):
    """The prompt as v2 tensors: JSON `data`, or numpy (raw contents, as gRPC carries them)."""
    arrays = [("frame_idx", "INT64", np.array([prompt.get("frame_idx", 0)], np.int64))]
    if prompt.get("points"):
        arrays.append(("points", "FP32", np.array(prompt["points"], np.float32)))
    if prompt.get("labels"):
        arrays.append(("labels", "INT32", np.array(prompt["labels"], np.int32)))
    if "box" in prompt:
        arrays.append(("box", "FP32", np.array(prompt["box"], np.float32)))
    video = InferInput("video", [1], "BYTES")
    if binary:
        video.set_data_from_numpy(np.array([body], dtype=np.object_))
    else:
        video.data = [base64.b64encode(body).decode()]
    out = [video]
    for name, dtype, arr in arrays:
        inp = InferInput(name, list(arr.shape), dtype)
        if binary:
            inp.set_data_from_numpy(arr)
        else:
            inp.data = arr.reshape(-1).tolist()
        out.append(inp)
    return out


def via_v2_rest(client, body: bytes, prompt: dict):
    inputs = [{"name": i.name, "shape": i.shape, "datatype": i.datatype, "data": i.data}
              for i in v2_inputs(body, prompt, binary=False)]
    r = client.post("/v2/models/sam2/infer", json={"inputs": inputs})
    if r.status_code != 200:
        return r.status_code, r.json()["error"]
    return 200, base64.b64decode(r.json()["outputs"][0]["data"][0])


def via_grpc(dataplane, body: bytes, prompt: dict):
    import grpc

    async def call():
        port = free_port()
        async with GrpcDoor(dataplane, port):
            client = InferenceGRPCClient(f"127.0.0.1:{port}", timeout=60, channel_args=[
                ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
            try:
                response = await client.infer(InferRequest("sam2",
                                                           v2_inputs(body, prompt, True)))
                return grpc.StatusCode.OK, response.outputs[0].as_numpy()[0]
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details()
            finally:
                await client.close()

    return asyncio.run(call())


GOOD = {"points": [[60, 96]]}
# (case, body, prompt, HTTP status, gRPC code name, outcome, words)
CASES = [
    ("ok", "good", GOOD, 200, "OK", "ok", ""),
    ("empty body", "empty", GOOD, 400, "INVALID_ARGUMENT", "bad_request", "empty"),
    ("random bytes", "random", GOOD, 400, "INVALID_ARGUMENT", "bad_request", "not a video"),
    ("truncated", "truncated", GOOD, 400, "INVALID_ARGUMENT", "bad_request", "not a video"),
    ("text", "text", GOOD, 415, "INVALID_ARGUMENT", "unsupported_media", "text"),
    ("png", "png", GOOD, 415, "INVALID_ARGUMENT", "unsupported_media", "PNG image"),
    ("zero frames", "zero_frames", GOOD, 400, "INVALID_ARGUMENT", "bad_request",
     "no decodable frames"),
    ("no prompt", "good", {}, 400, "INVALID_ARGUMENT", "bad_request", "no prompt"),
    ("frame past end", "good", {"frame_idx": 12, "points": [[1, 1]]}, 400, "INVALID_ARGUMENT",
     "bad_request", "0..11"),
    ("point outside", "good", {"points": [[400, 50]]}, 400, "INVALID_ARGUMENT", "bad_request",
     "0..320"),
    ("label value", "good", {"points": [[1, 1]], "labels": [2]}, 400, "INVALID_ARGUMENT",
     "bad_request", "1 (on the object) or 0"),
    ("label count", "good", {"points": [[1, 1], [2, 2]], "labels": [1]}, 400,
     "INVALID_ARGUMENT", "bad_request", "1 labels for 2"),
    ("box order", "good", {"box": [100, 10, 50, 80]}, 400, "INVALID_ARGUMENT", "bad_request",
     "x2 50 is left of x1 100"),
    ("box outside", "good", {"box": [10, 10, 500, 80]}, 400, "INVALID_ARGUMENT", "bad_request",
     "outside"),
    ("too many points", "good", {"points": [[5, 5]] * 65}, 400, "INVALID_ARGUMENT",
     "bad_request", "at most 64"),
    ("too large", "big", GOOD, 413, "INVALID_ARGUMENT", "too_large", "MiB"),
    ("too many frames", "long", GOOD, 413, "INVALID_ARGUMENT", "too_large", "--max_frames"),
]


@pytest.fixture(scope="module")
def bodies(videos, tmp_path_factory):
    d = tmp_path_factory.mktemp("more")
    big = videos["good"] + os.urandom(2 * 2**20)  # over --max_upload_mb 1
    long = open(write_video(str(d / "v48.mp4"), 48, 64, 48), "rb").read()  # over --max_frames 40
    return {**videos, "big": big, "long": long}


@pytest.mark.parametrize("case,body,prompt,status,code,outcome,words", CASES,
                         ids=[c[0] for c in CASES])
def test_every_outcome_through_every_door_is_counted_once(door, bodies, case, body, prompt,
                                                          status, code, outcome, words):
    client, model, dataplane, spool = door
    results = {}
    for name, call in (("track", lambda: via_track(client, bodies[body], prompt)),
                       ("v2_rest", lambda: via_v2_rest(client, bodies[body], prompt)),
                       ("v2_grpc", lambda: via_grpc(dataplane, bodies[body], prompt))):
        before, before_outcome = total(name), count(name, outcome)
        got, answer = call()
        assert total(name) == before + 1, (name, case)
        assert count(name, outcome) == before_outcome + 1, (name, case)
        expected = status if name != "v2_grpc" else code
        got_name = got if isinstance(got, int) else got.name
        assert got_name == expected, (name, case, got, answer)
        if status != 200:
            assert words in answer, (name, answer)
        results[name] = answer
        assert os.listdir(spool) == [], (name, case)  # nothing left behind
    if status == 200:  # the same answer through every door (but the manifest's request id)
        masks = [read_masks(results[n])[0] for n in ("track", "v2_rest", "v2_grpc")]
        assert sorted(masks[0]) == list(range(12))
        for other in masks[1:]:
            assert all(np.array_equal(other[f], masks[0][f]) for f in masks[0])
    assert client.get("/health").status_code == 200


def test_wrong_content_type_and_multipart_errors(door, videos):
    client, *_ = door
    for ctype in ("application/json", "text/plain", "image/png"):
        r = client.post("/track", params={"points": "1,1"}, content=videos["good"],
                        headers={"Content-Type": ctype})
        assert r.status_code == 415 and "Content-Type" in r.json()["error"]
    r = client.post("/track", params={"points": "1,1"}, files={"file": ("v.mp4", b"xx")})
    assert r.status_code == 400 and "no field 'video'" in r.json()["error"]
    r = client.post("/track", params={"points": "1,1"}, files={"video": ("v.mp4", b"")})
    assert r.status_code == 400 and "'video' is empty" in r.json()["error"]
    r = client.post("/track", params={"points": "1,1"},
                    files=[("video", ("a.mp4", videos["good"])), ("video", ("b", b"x"))])
    assert r.status_code == 400 and "more than one 'video'" in r.json()["error"]


def test_multipart_carries_short_and_long_form(door, videos):
    client, model, *_ = door
    r = client.post("/track", files={"video": ("v.mp4", videos["good"])},
                    data={"frame_idx": "3", "points": "60,96"})
    masks, manifest = read_masks(r.content)
    assert r.status_code == 200 and sorted(masks) == list(range(12))
    assert manifest["prompt"]["frame_idx"] == 3 and manifest["prompt"]["points"] == [[60, 96]]
    mask = np.zeros((H, W), np.uint8)
    mask[50:90, 40:80] = 255
    png = io.BytesIO()
    Image.fromarray(mask).save(png, "PNG")
    prompts = [{"obj_id": 2, "frame_idx": 4, "points": [[60, 96]], "name": "disc"},
               {"obj_id": 7, "frame_idx": 6, "mask": "m7"}]
    r = client.post("/track", files={"video": ("v.mp4", videos["good"]),
                                     "prompts": ("p.json", json.dumps(prompts)),
                                     "m7": ("m7.png", png.getvalue())})
    assert r.status_code == 200, r.text
    masks, manifest = read_masks(r.content, long_form=True)
    assert sorted(masks) == [2, 7] and sorted(masks[7]) == list(range(12))
    assert manifest["objects"] == [
        {"obj_id": 2, "name": "disc", "prompted_frames": [4]},
        {"obj_id": 7, "name": None, "prompted_frames": [6]}]
    prompts_seen, mask_names, _ = model.engine.calls[-1]
    assert mask_names == ["m7"] and prompts_seen.frames == [4, 6]


def test_mask_prompt_checked_against_the_video(door, videos):
    client, *_ = door
    small = io.BytesIO()
    Image.fromarray(np.ones((10, 10), np.uint8)).save(small, "PNG")
    prompts = json.dumps([{"obj_id": 1, "mask": "m"}])
    r = client.post("/track", files={"video": ("v.mp4", videos["good"]), "m": ("m.png",
                                     small.getvalue()), "prompts": (None, prompts)})
    assert r.status_code == 400
    assert r.json()["error"] == ("prompts[0].mask: the mask 'm' is 10x10; it must be the "
                                 "video's size, 320x192")
    r = client.post("/track", files={"video": ("v.mp4", videos["good"]), "m": ("m.png", b"no"),
                                     "prompts": (None, prompts)})
    assert r.status_code == 400 and "not an image" in r.json()["error"]


def test_request_id_echoed_and_generated(door, videos):
    client, *_ = door
    r = client.post("/track", params={"points": "60,96"}, content=videos["good"],
                    headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert read_masks(r.content)[1]["request_id"] == "abc-123"
    bad = client.post("/track", params={"points": "x"}, content=videos["good"])
    assert len(bad.headers["x-request-id"]) == 16
    v2 = client.post("/v2/models/sam2/infer", json={"inputs": []},
                     headers={"X-Request-Id": "v2-id"})
    assert v2.headers["x-request-id"] == "v2-id"


def test_upload_limit_chunked_is_counted(door):
    client, *_ = door
    before = count("v2_rest", "too_large")

    def chunks():
        for _ in range(64):
            yield b"\x00" * 65536

    r = client.post("/v2/models/sam2/infer", content=chunks(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and count("v2_rest", "too_large") == before + 1, r.text


def test_not_ready_and_busy_are_503_with_retry_after(tmp_path, videos):
    app, model, _ = build(tmp_path, engine=FakeEngine(delay=0.2), max_queue=0)
    with TestClient(app) as client:
        model.ready = False
        r = client.post("/track", params={"points": "1,1"}, content=videos["good"])
        assert r.status_code == 503 and r.headers["retry-after"] == "10"
        assert client.get("/health").json()["status"] == "loading"
        assert client.get("/v2/health/ready").status_code == 503
        model.ready = True
        ticket = model.scheduler.admit(Cancellation())
        before = count("track", "busy")
        r = client.post("/track", params={"points": "1,1"}, content=videos["good"])
        assert r.status_code == 503 and "busy" in r.json()["error"]
        assert int(r.headers["retry-after"]) >= 1 and count("track", "busy") == before + 1
        ticket.release()
        assert client.post("/track", params={"points": "60,96"},
                           content=videos["good"]).status_code == 200


def test_model_repository_api_is_closed(door):
    client, _, dataplane, _ = door
    for path in ("/v2/repository/models/sam2/unload", "/v2/repository/models/sam2/load",
                 "/v2/repository/index"):
        assert client.post(path).status_code == 404
    assert client.get("/v2/health/ready").status_code == 200

    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    async def unload():
        port = free_port()
        async with GrpcDoor(dataplane, port):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(
                        model_name="sam2"))
                return err.value.code()

    assert asyncio.run(unload()) == grpc.StatusCode.UNIMPLEMENTED
    assert client.get("/v2/health/ready").status_code == 200


def test_openapi_documents_every_parameter(door):
    from model.request import PARAMS

    client, *_ = door
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/track"]["post"]["parameters"]
    assert [p["name"] for p in params] == list(PARAMS)


def test_the_zip_is_a_zip_through_the_doors(door, videos):
    client, *_ = door
    r = client.post("/track", params={"points": "60,96", "frame_idx": 5}, content=videos["good"])
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    names = zf.namelist()
    # Tracking order: the prompt frame to the end, then back to 0; the manifest last.
    assert names[:7] == [f"masks/{i:05d}.png" for i in range(5, 12)]
    assert names[7:12] == [f"masks/{i:05d}.png" for i in range(4, -1, -1)]
    assert names[-1] == "manifest.json" and r.headers["content-type"] == "application/zip"


def test_a_bug_is_a_500_naming_the_request_and_logged_with_its_traceback(tmp_path, videos,
                                                                          caplog):
    class Broken(FakeEngine):
        def track(self, *args, **kwargs):
            raise KeyError("an internal detail")
            yield  # a generator, as the engine is

    app, *_ = build(tmp_path, engine=Broken())
    with TestClient(app) as client, caplog.at_level("ERROR", logger="model"):
        before = count("track", "error")
        r = client.post("/track", params={"points": "60,96"}, content=videos["good"],
                        headers={"X-Request-Id": "bug-1"})
    assert r.status_code == 500 and "bug-1" in r.json()["error"]
    assert "internal detail" not in r.json()["error"]
    assert count("track", "error") == before + 1
    (record,) = [r for r in caplog.records if "bug-1" in r.getMessage()]
    assert record.levelname == "ERROR" and record.exc_info and \
        "KeyError" in "".join(__import__("traceback").format_exception(*record.exc_info))
    assert os.listdir(tmp_path / "spool") == ["videos"] or os.listdir(tmp_path / "spool") == []
