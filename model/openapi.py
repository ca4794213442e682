"""The OpenAPI description of POST /track (FastAPI cannot infer it: the route parses its own
query and body so that every error names its parameter). Kept beside nothing else on purpose:
request.py is the authority, this is its documentation; a test checks the two agree."""

from .request import DIRECTIONS, FORMATS, PREVIEWS


def _q(name: str, schema: dict, description: str, array: bool = False) -> dict:
    out = {"name": name, "in": "query", "required": False, "description": description,
           "schema": {"type": "array", "items": schema} if array else schema}
    if array:
        out.update(style="form", explode=True)
    return out


_NUMBER_PAIR = r"^[0-9.eE+-]+,[0-9.eE+-]+$"
PARAMETERS = [
    _q("frame_idx", {"type": "integer", "minimum": 0, "default": 0},
       "Short form: the frame the clicks are on (0-based, decode order)."),
    _q("points", {"type": "string", "pattern": _NUMBER_PAIR},
       "Short form: a click 'x,y' in pixels of the original frame; repeat for more.", True),
    _q("labels", {"type": "string", "enum": ["0", "1"]},
       "Short form: 1 = on the object, 0 = not; one per point; default all 1.", True),
    _q("box", {"type": "string"}, "Short form: a box 'x1,y1,x2,y2' around the object."),
    _q("prompts", {"type": "string"},
       "Long form: a JSON list of {obj_id, frame_idx, points, labels, box, mask, name}; also a "
       "multipart field. Not with the short form."),
    _q("format", {"type": "string", "enum": list(FORMATS), "default": "png"},
       "png: a ZIP of 0/255 PNGs; palette: a ZIP of indexed PNGs (pixel = obj_id); rle: NDJSON "
       "with COCO RLE per frame."),
    _q("preview", {"type": "string", "enum": list(PREVIEWS)},
       "mp4: add preview.mp4 (the masks over the video) to the ZIP."),
    _q("direction", {"type": "string", "enum": list(DIRECTIONS), "default": "both"},
       "Track forward from the first prompted frame, backward, or both."),
    _q("max_frames_to_track", {"type": "integer", "minimum": 1},
       "Stop each direction after this many frames."),
    _q("video_id", {"type": "string"},
       "Track a video kept by POST /videos instead of one in the body (then send no body)."),
]

TRACK_OPENAPI = {
    "parameters": PARAMETERS,
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "video/mp4": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["video"],
                "properties": {"video": {"type": "string", "format": "binary"},
                               "prompts": {"type": "string"}},
                "additionalProperties": {"type": "string", "format": "binary",
                                         "description": "a mask prompt PNG, named in prompts"}}},
        },
    },
    "responses": {
        "200": {"description": "The masks, streamed while tracking runs. Headers: X-Request-Id, "
                               "X-Expected-Frames (the frames the answer will hold) and "
                               "X-Expected-Frames-Basis (decoded | container | "
                               "decoded-so-far).",
                "content": {"application/zip": {"schema": {"type": "string",
                                                           "format": "binary"}},
                            "application/x-ndjson": {"schema": {"type": "string"}}}},
        "400": {"description": "Bad input: {\"error\": \"...\"} naming the parameter."},
        "413": {"description": "Too large (upload, frames, pixels)."},
        "415": {"description": "Not a video media type."},
        "503": {"description": "Busy, loading or shutting down; see Retry-After."},
    },
}
