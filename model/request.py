"""The one request shape every door builds: the video, the prompts, the options.

`/track` (raw body or multipart), v2 REST and v2 gRPC each translate their wire format into a
`TrackRequest` and hand it to the same preprocess -> predict -> postprocess path. The parameters
are parsed and checked here, in one place, whatever door they came through:

    short form   frame_idx, points, labels, box        (object 1 on one frame)
    long form    prompts (JSON) + mask parts            (several objects and frames)
    options      format, preview, direction, max_frames_to_track
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .cancellation import Cancellation
from .errors import BadInput
from .prompts import SHORT_FORM_PARAMS, Prompts, check_counts, short_form
from .prompts_json import long_form
from .uploads import Upload

FORMATS = ("png", "palette", "rle")
PREVIEWS = ("mp4",)
DIRECTIONS = ("both", "forward", "backward")
OPTION_PARAMS = ("format", "preview", "direction", "max_frames_to_track")
SOURCE_PARAMS = ("video_id",)  # the door's: a kept video (videos.py) instead of a body
PARAMS = SHORT_FORM_PARAMS + ("prompts",) + OPTION_PARAMS + SOURCE_PARAMS


@dataclass(frozen=True)
class Options:
    format: str = "png"
    preview: Optional[str] = None  # "mp4": an overlay video in the ZIP
    direction: str = "both"  # the library's propagate_in_video, and reverse=True
    max_frames_to_track: Optional[int] = None  # the library's max_frame_num_to_track

    def as_dict(self) -> dict:
        return {"format": self.format, "preview": self.preview, "direction": self.direction,
                "max_frames_to_track": self.max_frames_to_track}


@dataclass
class TrackRequest:
    door: str  # track | v2_rest | v2_grpc: the metric label
    request_id: str
    upload: Upload
    prompts: Prompts
    options: Options = field(default_factory=Options)
    mask_images: Dict[str, bytes] = field(default_factory=dict)  # mask prompt name -> PNG bytes
    cancellation: Cancellation = field(default_factory=Cancellation)
    reply: Any = None  # the door's own context for shaping its answer (the v2 InferRequest)
    ticket: Any = None  # scheduler.Ticket: the place in line, taken before the upload is spooled


def _one(values: List[str], name: str) -> Optional[str]:
    if len(values) > 1:
        raise BadInput(f"{name} is given more than once; give it once")
    return values[0].strip() if values else None


def _choice(value: Optional[str], name: str, allowed: Tuple[str, ...], default):
    if value is None or value == "":
        return default
    if value not in allowed:
        raise BadInput(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def parse_options(params: Dict[str, List[str]]) -> Options:
    fmt = _choice(_one(params.get("format", []), "format"), "format", FORMATS, "png")
    preview = _one(params.get("preview", []), "preview")
    preview = None if preview in (None, "", "none") else _choice(preview, "preview", PREVIEWS,
                                                                 None)
    if preview and fmt == "rle":
        raise BadInput("preview=mp4 goes into the ZIP answer: use it with format=png or "
                       "format=palette, not format=rle")
    direction = _choice(_one(params.get("direction", []), "direction"), "direction", DIRECTIONS,
                        "both")
    raw = _one(params.get("max_frames_to_track", []), "max_frames_to_track")
    limit = None
    if raw:
        try:
            limit = int(raw)
        except ValueError:
            limit = -1
        if limit < 1:
            raise BadInput(f"max_frames_to_track must be a positive integer (frames tracked in "
                           f"each direction after the first prompted frame), got {raw!r}")
    return Options(format=fmt, preview=preview, direction=direction, max_frames_to_track=limit)


def parse_prompts(params: Dict[str, List[str]], items: List[Tuple[str, str]], max_points: int,
                  max_objects: int) -> Prompts:
    long_text = _one(params.get("prompts", []), "prompts")
    short_keys = [k for k in SHORT_FORM_PARAMS if k in params]
    if long_text is not None:
        if short_keys:
            raise BadInput(f"give either prompts (the long form) or {', '.join(short_keys)} "
                           f"(the short form for one object), not both")
        prompts = long_form(long_text)
    else:
        prompts = short_form([(k, v) for k, v in items if k in SHORT_FORM_PARAMS], max_points)
    return check_counts(prompts, max_points, max_objects)


def check_mask_parts(prompts: Prompts, masks: Dict[str, bytes], kind: str = "multipart part"
                     ) -> Dict[str, bytes]:
    """Every mask a prompt names is there, and every part sent is used by a prompt."""
    for p in prompts.entries:
        if p.mask is not None and p.mask not in masks:
            raise BadInput(f"{p.where}mask: there is no {kind} {p.mask!r}; send the mask PNG "
                           f"as -F {p.mask}=@{p.mask}.png beside the video")
    unused = sorted(set(masks) - set(prompts.mask_names))
    if unused:
        raise BadInput(f"the {kind} {unused[0]!r} is not used by any prompt; name it in a prompt "
                       f"as \"mask\": \"{unused[0]}\", or leave it out")
    return masks


def parse_params(items: Iterable[Tuple[str, str]], files: Dict[str, bytes], max_points: int,
                 max_objects: int) -> Tuple[Prompts, Options, Dict[str, bytes]]:
    """Query items plus form fields, and the small file parts (mask prompts), checked."""
    items = list(items)
    params: Dict[str, List[str]] = {}
    for key, value in items:
        if key not in PARAMS:
            raise BadInput(f"unknown query parameter {key!r}; known: {', '.join(PARAMS)}")
        params.setdefault(key, []).append(value)
    options = parse_options(params)
    prompts = parse_prompts(params, [(k, v) for k, v in items if k not in SOURCE_PARAMS],
                            max_points, max_objects)
    return prompts, options, check_mask_parts(prompts, files)
