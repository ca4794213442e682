"""The KServe v2 doors: inputs -> the one TrackRequest; the answer's bytes -> the `masks` output.

Also the one place we differ from KServe's data plane:
- binary tensor data extension: KServe 0.21 turns every binary BYTES input into a UTF-8 `str`
  (`InferRequest.from_bytes` -> `set_data_from_numpy(binary_data=False)`), which fails for a
  video's bytes; `parse_binary_request` keeps them as bytes.
- readiness: KServe's `/v2/health/ready` answers true as soon as the process serves; ours is
  true only while every model is loaded and not draining, so it can back a readiness probe.
"""

import asyncio
import base64
import binascii
import struct
from typing import Dict, Optional

import numpy as np
import orjson
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import (InferInput, InferOutput, InferRequest, InferResponse,
                                        RequestedOutput)

from .accounting import REQUEST_ID_HEADER, new_request_id
from .cancellation import Cancellation
from .errors import BadInput, TooLarge
from .prompts import Prompts, check_counts
from .prompts_json import long_form
from .request import OPTION_PARAMS, Options, TrackRequest, check_mask_parts, parse_options
from .uploads import spool_bytes
from .v2_arrays import from_arrays

SHORT_INPUTS = ("frame_idx", "points", "labels", "box")
INPUTS = ("video",) + SHORT_INPUTS + ("prompts",)
OUTPUT = "masks"
_HEADER = "inference-header-content-length"


def input_metadata() -> list:
    return [
        {"name": "video", "datatype": "BYTES", "shape": [1]},
        {"name": "frame_idx", "datatype": "INT64", "shape": [1]},
        {"name": "points", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "labels", "datatype": "INT32", "shape": [-1]},
        {"name": "box", "datatype": "FP32", "shape": [4]},
        {"name": "prompts", "datatype": "BYTES", "shape": [1]},
    ]


def output_metadata() -> list:
    return [{"name": OUTPUT, "datatype": "BYTES", "shape": [1]}]


def _as_numpy(inp) -> np.ndarray:
    try:
        return inp.as_numpy()
    except (ValueError, TypeError, struct.error) as exc:
        raise BadInput(f"input {inp.name!r} ({inp.datatype} {inp.shape}) cannot be read: "
                       f"{exc}") from None


def _bytes_input(inp, what: str) -> bytes:
    """One BYTES element: raw (binary extension, gRPC) or base64 text (JSON)."""
    if inp.datatype != "BYTES":
        raise BadInput(f"input {inp.name!r} must be BYTES ({what}), got {inp.datatype}")
    values = _as_numpy(inp).reshape(-1)
    if values.size != 1:
        raise BadInput(f"input {inp.name!r} must hold exactly one element (shape [1]), got "
                       f"{values.size}")
    value = values[0]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):  # JSON: base64 text
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(f"input {inp.name!r} in JSON must be {what} in base64") from None
    raise BadInput(f"input {inp.name!r} has an unsupported element type {type(value).__name__}")


def _prompts_text(inp) -> str:
    """The `prompts` JSON: plain text in JSON requests, bytes in binary and gRPC ones."""
    values = _as_numpy(inp).reshape(-1)
    if inp.datatype != "BYTES" or values.size != 1:
        raise BadInput("input 'prompts' must be BYTES [1] holding the prompts JSON")
    value = values[0]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _short_form(by_name: Dict[str, object], max_points: int) -> Prompts:
    def array(name: str) -> Optional[np.ndarray]:
        inp = by_name.get(name)
        return None if inp is None else _as_numpy(inp)

    return from_arrays(array("frame_idx"), array("points"), array("labels"), array("box"),
                       max_points)


def _options(request: InferRequest) -> Options:
    params = {}
    for key, value in (request.parameters or {}).items():
        if key in OPTION_PARAMS:
            params[key] = [str(getattr(value, "string_param", value)) if value is not None
                           else ""]
    return parse_options(params)


def door_of(request: InferRequest) -> str:
    return "v2_grpc" if getattr(request, "from_grpc", False) else "v2_rest"


async def to_track_request(request: InferRequest, settings, headers: dict, ticket=None,
                           cancellation=None) -> TrackRequest:
    """The v2 inputs -> the one request shape; the video spooled to a file like /track's."""
    by_name: Dict[str, object] = {}
    for inp in request.inputs:
        if inp.name in by_name:
            raise BadInput(f"input {inp.name!r} is given twice")
        by_name[inp.name] = inp
    if "video" not in by_name:
        raise BadInput("input 'video' (BYTES [1], the video file) is missing")
    options = _options(request)
    if "prompts" in by_name:
        short = [n for n in SHORT_INPUTS if n in by_name]
        if short:
            raise BadInput(f"give either the input 'prompts' (the long form) or "
                           f"{', '.join(short)} (the short form for one object), not both")
        prompts = long_form(_prompts_text(by_name["prompts"]))
        named = set(prompts.mask_names)
        masks = {n: _bytes_input(inp, "a mask PNG") for n, inp in by_name.items()
                 if n not in ("video", "prompts") and n in named}
        unknown = sorted(set(by_name) - set(INPUTS) - named)
        if unknown:
            raise BadInput(f"unknown input {unknown[0]!r}; inputs are: {', '.join(INPUTS)}, "
                           f"and the mask inputs the prompts name")
        check_mask_parts(prompts, masks, kind="input")
    else:
        unknown = sorted(set(by_name) - set(INPUTS))
        if unknown:
            raise BadInput(f"unknown input {unknown[0]!r}; inputs are: {', '.join(INPUTS)}")
        prompts, masks = _short_form(by_name, settings.max_points), {}
    prompts = check_counts(prompts, settings.max_points, settings.max_objects)
    data = _bytes_input(by_name["video"], "the video file's bytes")
    if len(data) > settings.max_upload_bytes:
        raise TooLarge(f"the video is {len(data)} bytes; this server accepts at most "
                       f"{settings.max_upload_mb} MiB (--max_upload_mb)")
    if not data:
        raise BadInput("input 'video' is empty")
    upload = await asyncio.to_thread(spool_bytes, data, settings.spool_dir)
    return TrackRequest(door=door_of(request), request_id=new_request_id(
        headers.get(REQUEST_ID_HEADER)), upload=upload, prompts=prompts, options=options,
        mask_images=masks, reply=request, ticket=ticket,
        cancellation=cancellation or Cancellation())


def wants_binary(request: InferRequest) -> bool:
    """gRPC always carries raw bytes; REST only when the client asked for binary outputs."""
    if getattr(request, "from_grpc", False):
        return True
    for out in request.request_outputs or []:
        if out.name == OUTPUT and out.binary_data is not None:
            return bool(out.binary_data)
    return bool(request.use_binary_outputs)


def build_response(model_name: str, request: InferRequest, answer: bytes) -> InferResponse:
    """The `masks` output: the same bytes /track would stream (a ZIP, or NDJSON for rle)."""
    binary = wants_binary(request)
    value = answer if binary else base64.b64encode(answer).decode("ascii")
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
