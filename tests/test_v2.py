"""The KServe v2 doors (REST JSON, REST binary tensor extension, gRPC) give /track's masks."""

import asyncio
import base64
import json
import os
import struct

import numpy as np
import pytest
import requests
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from support.videos import write_video
from support.zipcheck import read_masks

pytestmark = pytest.mark.slow  # the real server process with real SAM2

PROMPT = {"frame_idx": 5, "points": [[120.0, 96.0], [250.0, 60.0]], "labels": [1, 0]}


@pytest.fixture(scope="module")
def video(video_dir):
    return write_video(os.path.join(video_dir, "v2-16.mp4"), 16)


@pytest.fixture(scope="module")
def track_masks(server, video):
    with open(video, "rb") as f:
        r = requests.post(server.url + "/track", data=f, timeout=600,
                          params=[("frame_idx", 5), ("points", "120,96"), ("points", "250,60"),
                                  ("labels", 1), ("labels", 0)],
                          headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    return read_masks(r.content)[0]


def prompt_inputs(binary: bool):
    frame = InferInput("frame_idx", [1], "INT64")
    frame.set_data_from_numpy(np.array([PROMPT["frame_idx"]], dtype=np.int64), binary_data=binary)
    points = InferInput("points", [2, 2], "FP32")
    points.set_data_from_numpy(np.array(PROMPT["points"], dtype=np.float32), binary_data=binary)
    labels = InferInput("labels", [2], "INT32")
    labels.set_data_from_numpy(np.array(PROMPT["labels"], dtype=np.int32), binary_data=binary)
    return [frame, points, labels]


def assert_same(masks, expected):
    assert sorted(masks) == sorted(expected) == list(range(16))
    for f in expected:
        assert np.array_equal(masks[f], expected[f]), f"frame {f} differs from /track"


def test_rest_json_base64(server, video, track_masks):
    """Plain JSON: the video as a base64 string, the ZIP back as base64 (kserve's client)."""
    with open(video, "rb") as f:
        b64 = base64.b64encode(f.read()).decode()
    request = InferRequest(model_name="sam2", infer_inputs=[
        InferInput("video", [1], "BYTES", data=[b64]), *prompt_inputs(binary=False)])

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=600))
        return await client.infer(server.url, request, model_name="sam2")

    response = asyncio.run(call())
    out = response.outputs[0]
    assert out.name == "masks" and out.datatype == "BYTES" and out.shape == [1]
    masks, manifest = read_masks(base64.b64decode(out.data[0]))
    assert_same(masks, track_masks)
    assert manifest["prompt"]["labels"] == [1, 0]


def test_rest_binary_extension(server, video, track_masks):
    """Binary tensor data extension both ways: raw video in, raw ZIP out (wire format by hand)."""
    with open(video, "rb") as f:
        data = f.read()
    video_raw = struct.pack("<I", len(data)) + data  # BYTES elements are length-prefixed
    frame = np.array([5], dtype=np.int64).tobytes()
    points = np.array(PROMPT["points"], dtype=np.float32).tobytes()
    header = json.dumps({
        "inputs": [
            {"name": "video", "shape": [1], "datatype": "BYTES",
             "parameters": {"binary_data_size": len(video_raw)}},
            {"name": "frame_idx", "shape": [1], "datatype": "INT64",
             "parameters": {"binary_data_size": len(frame)}},
            {"name": "points", "shape": [2, 2], "datatype": "FP32",
             "parameters": {"binary_data_size": len(points)}},
            {"name": "labels", "shape": [2], "datatype": "INT32", "data": [1, 0]},
        ],
        "outputs": [{"name": "masks", "parameters": {"binary_data": True}}],
    }).encode()
    body = header + video_raw + frame + points
    r = requests.post(server.url + "/v2/models/sam2/infer", data=body,
                      headers={"Content-Type": "application/octet-stream",
                               "Inference-Header-Content-Length": str(len(header))}, timeout=600)
    assert r.status_code == 200, r.text[:500]
    json_len = int(r.headers["Inference-Header-Content-Length"])
    meta = json.loads(r.content[:json_len])
    out = meta["outputs"][0]
    assert out["name"] == "masks" and out["datatype"] == "BYTES"
    raw = r.content[json_len:json_len + out["parameters"]["binary_data_size"]]
    (n,) = struct.unpack_from("<I", raw)
    masks, _ = read_masks(raw[4:4 + n])
    assert_same(masks, track_masks)


def binary_request(video) -> InferRequest:
    with open(video, "rb") as f:
        data = f.read()
    vid = InferInput("video", [1], "BYTES")
    vid.set_data_from_numpy(np.array([data], dtype=np.object_), binary_data=True)
    return InferRequest(model_name="sam2", infer_inputs=[vid, *prompt_inputs(binary=True)])


def test_rest_binary_input_with_kserve_client(server, video, track_masks):
    request = binary_request(video)

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=600))
        return await client.infer(server.url, request, model_name="sam2")

    out = asyncio.run(call()).outputs[0]
    assert_same(read_masks(base64.b64decode(out.data[0]))[0], track_masks)


def test_grpc(server, video, track_masks):
    request = binary_request(video)

    async def call():
        client = InferenceGRPCClient(
            f"127.0.0.1:{server.grpc_port}", timeout=600,
            channel_args=[("grpc.max_receive_message_length", -1),
                          ("grpc.max_send_message_length", -1)])
        try:
            return await client.infer(request)
        finally:
            await client.close()

    response = asyncio.run(call())
    zip_bytes = response.outputs[0].as_numpy()[0]
    assert_same(read_masks(zip_bytes)[0], track_masks)


def test_v2_bad_input_is_400_and_grpc_invalid_argument(server):
    bad = requests.post(server.url + "/v2/models/sam2/infer", timeout=60, json={
        "inputs": [{"name": "video", "shape": [1], "datatype": "BYTES", "data": ["!!notbase64"]},
                   {"name": "points", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
    assert bad.status_code == 400 and "base64" in bad.json()["error"]
    missing = requests.post(server.url + "/v2/models/sam2/infer", timeout=60, json={
        "inputs": [{"name": "points", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
    assert missing.status_code == 400 and "'video'" in missing.json()["error"]

    import grpc

    request = InferRequest(model_name="sam2", infer_inputs=[
        InferInput("video", [1], "BYTES", data=[b"not a video at all \x00\x01"])])

    async def call():
        client = InferenceGRPCClient(f"127.0.0.1:{server.grpc_port}", timeout=60)
        try:
            return await client.infer(request)
        finally:
            await client.close()

    with pytest.raises(grpc.aio.AioRpcError) as err:
        asyncio.run(call())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert requests.get(server.url + "/health", timeout=5).status_code == 200


def test_v2_metadata_and_readiness(server):
    assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(server.url + "/v2/health/live", timeout=5).status_code == 200
    assert requests.get(server.url + "/v2/models/sam2/ready", timeout=5).status_code == 200
    meta = requests.get(server.url + "/v2/models/sam2", timeout=5).json()
    assert {i["name"] for i in meta["inputs"]} == {"video", "frame_idx", "points", "labels", "box",
                                                  "prompts"}
    assert meta["outputs"] == [{"name": "masks", "datatype": "BYTES", "shape": [1]}]
