"""Parse and check the prompt (frame_idx, points, labels, box) from a query string or v2 tensors.

Parsing checks syntax and counts; `Prompt.check_against` checks it against the decoded video.
Every message names the parameter, what was wrong, and the allowed range.
"""

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import BadInput

QUERY_PARAMS = ("frame_idx", "points", "labels", "box")
HOW_TO_PROMPT = ("give at least one click as points=x,y (repeat for more clicks, pixels of the "
                 "original frame) or a box as box=x1,y1,x2,y2")


@dataclass(frozen=True)
class Prompt:
    frame_idx: int = 0
    points: Tuple[Tuple[float, float], ...] = ()
    labels: Tuple[int, ...] = ()
    box: Optional[Tuple[float, float, float, float]] = None

    def check_against(self, width: int, height: int) -> None:
        """Points and box inside the frame (continuous pixel coordinates 0..width, 0..height)."""
        for i, (x, y) in enumerate(self.points):
            if not (0 <= x <= width and 0 <= y <= height):
                raise BadInput(f"point {i} ({_fmt(x)},{_fmt(y)}) is outside the frame: x must be "
                               f"in 0..{width} and y in 0..{height} (the video is "
                               f"{width}x{height})")
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not (0 <= x1 <= width and 0 <= x2 <= width and 0 <= y1 <= height
                    and 0 <= y2 <= height):
                raise BadInput(f"box ({','.join(_fmt(v) for v in self.box)}) is outside the "
                               f"frame: x in 0..{width}, y in 0..{height}")

    def check_frame(self, num_frames: int) -> None:
        if self.frame_idx >= num_frames:
            raise BadInput(f"frame_idx {self.frame_idx} is past the end: the video has "
                           f"{num_frames} decoded frames, so frame_idx must be in "
                           f"0..{num_frames - 1}")

    def as_dict(self) -> dict:
        return {"frame_idx": self.frame_idx, "points": [list(p) for p in self.points],
                "labels": list(self.labels), "box": list(self.box) if self.box else None}


def _fmt(v: float) -> str:
    return f"{v:g}"


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise BadInput(f"{what}: {text.strip()!r} is not a number") from None
    if not math.isfinite(v):
        raise BadInput(f"{what}: {text.strip()!r} is not a finite number")
    return v


def parse_frame_idx(raw: Optional[str]) -> int:
    if raw is None or raw == "":
        return 0
    text = raw.strip()
    try:
        value = int(text)
    except ValueError:
        raise BadInput(f"frame_idx must be a non-negative integer, got {raw!r}") from None
    if value < 0:
        raise BadInput(f"frame_idx must be a non-negative integer (0 = first frame), got {value}")
    return value


def parse_point(raw: str, i: int) -> Tuple[float, float]:
    parts = raw.split(",")
    if len(parts) != 2:
        raise BadInput(f"points[{i}] must be 'x,y' (two numbers separated by a comma), "
                       f"got {raw!r}")
    x, y = (_number(p, f"points[{i}]") for p in parts)
    if x < 0 or y < 0:
        raise BadInput(f"points[{i}] ({_fmt(x)},{_fmt(y)}) has a negative coordinate; pixels "
                       f"start at 0")
    return x, y


def parse_label(raw: str, i: int) -> int:
    if raw.strip() not in ("0", "1"):
        raise BadInput(f"labels[{i}] must be 1 (on the object) or 0 (not on it), got {raw!r}")
    return int(raw.strip())


def parse_box(raw: str) -> Tuple[float, float, float, float]:
    parts = raw.split(",")
    if len(parts) != 4:
        raise BadInput(f"box must be 'x1,y1,x2,y2' (four numbers), got {raw!r}")
    return _check_box(tuple(_number(p, "box") for p in parts))


def _check_box(box: Sequence[float]) -> Tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    if min(x1, y1, x2, y2) < 0:
        raise BadInput(f"box ({','.join(_fmt(v) for v in box)}) has a negative coordinate")
    if not (x2 > x1 and y2 > y1):
        raise BadInput(f"box must have x2 > x1 and y2 > y1 (top-left, then bottom-right corner), "
                       f"got {','.join(_fmt(v) for v in box)}")
    return x1, y1, x2, y2


def _assemble(frame_idx: int, points: List[Tuple[float, float]], labels: Optional[List[int]],
              box, max_points: int) -> Prompt:
    if not points and box is None:
        raise BadInput(f"no prompt: {HOW_TO_PROMPT}")
    if len(points) > max_points:
        raise BadInput(f"too many points: {len(points)}; this server accepts at most "
                       f"{max_points} (--max_points)")
    if labels:
        if len(labels) != len(points):
            raise BadInput(f"got {len(labels)} labels for {len(points)} points; give one label "
                           f"per point (1 = on the object, 0 = not) or none (all 1)")
    else:
        labels = [1] * len(points)
    return Prompt(frame_idx=frame_idx, points=tuple(points), labels=tuple(labels), box=box)


def from_query(items: Iterable[Tuple[str, str]], max_points: int) -> Prompt:
    """Parse `frame_idx`, repeated `points`, `labels`, one `box` from query (key, value) pairs."""
    frame_raw, point_raws, label_raws, box_raws = None, [], [], []
    for key, value in items:
        if key == "frame_idx":
            if frame_raw is not None:
                raise BadInput("frame_idx is given more than once; give one frame")
            frame_raw = value
        elif key == "points":
            point_raws.append(value)
        elif key == "labels":
            label_raws.append(value)
        elif key == "box":
            box_raws.append(value)
        else:
            raise BadInput(f"unknown query parameter {key!r}; known: {', '.join(QUERY_PARAMS)}")
    if len(box_raws) > 1:
        raise BadInput("box is given more than once; give one box x1,y1,x2,y2")
    if len(point_raws) > max_points:
        raise BadInput(f"too many points: {len(point_raws)}; this server accepts at most "
                       f"{max_points} (--max_points)")
    points = [parse_point(p, i) for i, p in enumerate(point_raws)]
    labels = [parse_label(v, i) for i, v in enumerate(label_raws)]
    if labels and not points:
        raise BadInput("labels were given without points; labels go with points=x,y")
    box = parse_box(box_raws[0]) if box_raws else None
    return _assemble(parse_frame_idx(frame_raw), points, labels, box, max_points)


def from_arrays(frame_idx: Optional[np.ndarray], points: Optional[np.ndarray],
                labels: Optional[np.ndarray], box: Optional[np.ndarray],
                max_points: int) -> Prompt:
    """The v2 inputs: frame_idx INT64 [1], points FP32 [N,2], labels INT32 [N], box FP32 [4]."""
    idx = 0
    if frame_idx is not None:
        flat = np.asarray(frame_idx).reshape(-1)
        if flat.size != 1 or not np.issubdtype(flat.dtype, np.integer):
            raise BadInput(f"input 'frame_idx' must be INT64 with shape [1], got "
                           f"{flat.dtype} with {flat.size} values")
        idx = int(flat[0])
        if idx < 0:
            raise BadInput(f"frame_idx must be a non-negative integer, got {idx}")
    pts: List[Tuple[float, float]] = []
    if points is not None and np.asarray(points).size:
        arr = np.asarray(points, dtype=np.float64)
        if arr.ndim == 1 and arr.size % 2 == 0:
            arr = arr.reshape(-1, 2)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise BadInput(f"input 'points' must have shape [N,2] (x,y per row), got "
                           f"{list(np.asarray(points).shape)}")
        if len(arr) > max_points:
            raise BadInput(f"too many points: {len(arr)}; this server accepts at most "
                           f"{max_points} (--max_points)")
        for i, (x, y) in enumerate(arr):
            if not (math.isfinite(x) and math.isfinite(y)):
                raise BadInput(f"points[{i}] is not finite: ({x},{y})")
            if x < 0 or y < 0:
                raise BadInput(f"points[{i}] ({_fmt(x)},{_fmt(y)}) has a negative coordinate")
            pts.append((float(x), float(y)))
    lbls: List[int] = []
    if labels is not None and np.asarray(labels).size:
        flat = np.asarray(labels).reshape(-1)
        for i, v in enumerate(flat):
            if v not in (0, 1):
                raise BadInput(f"labels[{i}] must be 1 (on the object) or 0 (not on it), got {v}")
            lbls.append(int(v))
        if not pts:
            raise BadInput("labels were given without points")
    bx = None
    if box is not None and np.asarray(box).size:
        flat = np.asarray(box, dtype=np.float64).reshape(-1)
        if flat.size != 4:
            raise BadInput(f"input 'box' must be FP32 [4] (x1,y1,x2,y2), got {flat.size} values")
        if not np.all(np.isfinite(flat)):
            raise BadInput("input 'box' has a value that is not a finite number")
        bx = _check_box(flat)
    return _assemble(idx, pts, lbls, bx, max_points)
