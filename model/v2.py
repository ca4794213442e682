"""The KServe v2 door: inputs -> (prompt, video bytes), ZIP bytes -> the `masks` output.

Also the one place we differ from KServe's data plane:
- binary tensor data extension: KServe 0.21 turns every binary BYTES input into a UTF-8 `str`
  (`InferRequest.from_bytes` -> `set_data_from_numpy(binary_data=False)`), which fails for a
  video's bytes; `parse_binary_request` keeps them as bytes.
- readiness: KServe's `/v2/health/ready` answers true as soon as the process serves; ours is
  true only while every model is loaded and not draining, so it can back a readiness probe.
"""

import base64
import binascii
import struct
from typing import Dict, Optional, Tuple

import numpy as np
import orjson
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, \
    RequestedOutput

from .errors import BadInput
from .prompts import Prompt, from_arrays

INPUTS = ("video", "frame_idx", "points", "labels", "box")
OUTPUT = "masks"
_HEADER = "inference-header-content-length"


def input_metadata() -> list:
    return [
        {"name": "video", "datatype": "BYTES", "shape": [1]},
        {"name": "frame_idx", "datatype": "INT64", "shape": [1]},
        {"name": "points", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "labels", "datatype": "INT32", "shape": [-1]},
        {"name": "box", "datatype": "FP32", "shape": [4]},
    ]


def output_metadata() -> list:
    return [{"name": OUTPUT, "datatype": "BYTES", "shape": [1]}]


def _as_numpy(inp) -> np.ndarray:
    try:
        return inp.as_numpy()
    except (ValueError, TypeError, struct.error) as exc:
        raise BadInput(f"input {inp.name!r} ({inp.datatype} {inp.shape}) cannot be read: "
                       f"{exc}") from None


def _video_bytes(inp) -> bytes:
    if inp.datatype != "BYTES":
        raise BadInput(f"input 'video' must be BYTES (the file's bytes), got {inp.datatype}")
    values = _as_numpy(inp).reshape(-1)
    if values.size != 1:
        raise BadInput(f"input 'video' must hold exactly one element (shape [1]), got "
                       f"{values.size}")
    value = values[0]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)  # binary extension or gRPC: the raw file
    if isinstance(value, str):  # JSON: the file as base64 text
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput("input 'video' in JSON must be the file's bytes in base64") from None
    raise BadInput(f"input 'video' has an unsupported element type {type(value).__name__}")


def parse_request(request: InferRequest, max_points: int) -> Tuple[Prompt, bytes]:
    by_name: Dict[str, object] = {}
    for inp in request.inputs:
        if inp.name not in INPUTS:
            raise BadInput(f"unknown input {inp.name!r}; inputs are: {', '.join(INPUTS)}")
        by_name[inp.name] = inp
    if "video" not in by_name:
        raise BadInput("input 'video' (BYTES [1], the video file) is missing")

    def array(name: str) -> Optional[np.ndarray]:
        inp = by_name.get(name)
        return None if inp is None else _as_numpy(inp)

    prompt = from_arrays(array("frame_idx"), array("points"), array("labels"), array("box"),
                         max_points)
    return prompt, _video_bytes(by_name["video"])


def wants_binary(request: InferRequest) -> bool:
    """gRPC always carries raw bytes; REST only when the client asked for binary outputs."""
    if getattr(request, "from_grpc", False):
        return True
    for out in request.request_outputs or []:
        if out.name == OUTPUT and out.binary_data is not None:
            return bool(out.binary_data)
    return bool(request.use_binary_outputs)


def build_response(model_name: str, request: InferRequest, zip_bytes: bytes) -> InferResponse:
    binary = wants_binary(request)
    value = zip_bytes if binary else base64.b64encode(zip_bytes).decode("ascii")
    output = InferOutput(name=OUTPUT, shape=[1], datatype="BYTES",
                         data=np.array([value], dtype=np.object_))
    return InferResponse(
        response_id=request.id or "", model_name=model_name, infer_outputs=[output],
        from_grpc=getattr(request, "from_grpc", False), use_binary_outputs=binary,
        requested_outputs=request.request_outputs,
    )


def parse_binary_request(body: bytes, json_length: int, model_name: str) -> InferRequest:
    """The v2 binary tensor data extension, keeping BYTES inputs as bytes."""
    if not 0 < json_length <= len(body):
        raise BadInput(f"Inference-Header-Content-Length {json_length} does not fit a body of "
                       f"{len(body)} bytes")
    try:
        header = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"the JSON header of the binary request is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise BadInput("the JSON header must be an object with a list 'inputs'")
    offset, inputs = json_length, []
    for spec in header["inputs"]:
        if not isinstance(spec, dict) or not {"name", "shape", "datatype"} <= spec.keys():
            raise BadInput("each input needs 'name', 'shape' and 'datatype'")
        params = spec.get("parameters") or {}
        inp = InferInput(name=spec["name"], shape=spec["shape"], datatype=spec["datatype"],
                         parameters=params)
        if spec.get("data") is not None:
            inp.data = spec["data"]
        elif "binary_data_size" in params:
            size = int(params["binary_data_size"])
            chunk = body[offset:offset + size]
            if size < 0 or len(chunk) != size:
                raise BadInput(f"input {spec['name']!r} claims {size} binary bytes; the body "
                               f"has {len(body) - offset} left")
            inp._raw_data = chunk  # KServe's own from_bytes sets the same field
            offset += size
        else:
            raise BadInput(f"input {spec['name']!r} has neither 'data' nor "
                           f"'binary_data_size'")
        inputs.append(inp)
    outputs = [RequestedOutput(name=o.get("name"), parameters=o.get("parameters"))
               for o in header.get("outputs") or [] if isinstance(o, dict)]
    return InferRequest(model_name=model_name, request_id=header.get("id"),
                        parameters=header.get("parameters"), infer_inputs=inputs,
                        request_outputs=outputs or None)


class TrackerDataPlane(DataPlane):
    def decode_inference_request(self, body, headers: Dict, model_name: str) -> InferRequest:
        if isinstance(body, bytes) and headers.get(_HEADER) is not None:
            try:
                json_length = int(headers[_HEADER])
            except ValueError:
                raise BadInput(f"Inference-Header-Content-Length must be an integer, got "
                               f"{headers[_HEADER]!r}") from None
            return parse_binary_request(body, json_length, model_name)
        return super().decode_inference_request(body, headers, model_name)

    async def ready(self) -> bool:
        models = list(self.model_registry.get_models().values())
        if not models:
            return False
        for model in models:
            if not await model.healthy():
                return False
        return await super().ready()
