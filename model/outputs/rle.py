"""format=rle: NDJSON, one line per frame as soon as it is tracked, then the manifest's line.

    {"frame_idx": 12, "objects": [{"obj_id": 1, "score": 3.1, "area": 5120,
      "bbox": [x, y, w, h], "rle": {"size": [H, W], "counts": "<COCO compressed RLE>"}}]}
    ...
    {"manifest": {...}}

`rle` is pycocotools' own encoding (`mask.encode` of the column-major mask, counts as text), so
`pycocotools.mask.decode` reads it back; `area` and `bbox` are pycocotools' `area` / `toBbox` of
it (bbox null for an empty mask); `score` is the model's object-presence logit on that frame
(> 0: the model thinks the object is there). Lines come in tracking order and each names its
frame; an answer that stops early simply has no manifest line.
"""

import json
from typing import Callable

import numpy as np

from .frame import TrackedFrame


def encode_object(obj_id: int, mask: np.ndarray, score: float) -> dict:
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask > 0, dtype=np.uint8))
    area = int(coco_mask.area(rle))
    bbox = [int(round(v)) for v in coco_mask.toBbox(rle).tolist()] if area else None
    return {"obj_id": int(obj_id), "score": float(score), "area": area, "bbox": bbox,
            "rle": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}}


def frame_line(frame: TrackedFrame) -> bytes:
    objects = [encode_object(o, frame.masks[o], frame.scores.get(o, 0.0))
               for o in sorted(frame.masks)]
    return _line({"frame_idx": int(frame.frame_idx), "objects": objects})


def _line(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


class RleLines:
    media_type = "application/x-ndjson"
    filename = "masks.ndjson"
    description = ("NDJSON: a line per frame with each object's COCO compressed RLE "
                   "(pycocotools), area, bbox [x, y, w, h] and score (object-presence logit)")

    def __init__(self, emit: Callable[[bytes], None]):
        self._emit = emit

    def names(self) -> str:
        return '{"frame_idx": N, "objects": [...]} per line, then {"manifest": ...}'

    def add(self, frame: TrackedFrame) -> None:
        self._emit(frame_line(frame))

    def close(self, manifest: dict) -> None:
        self._emit(_line({"manifest": manifest}))

    def abort(self) -> None:
        """Nothing to undo: a cut answer is one without its manifest line."""
