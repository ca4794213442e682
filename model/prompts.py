"""Prompts: which object, on which frame, what the user gave (clicks, a box or a mask).

Three ways in, one shape out (`Prompts`, a tuple of `ObjectPrompt`):
- the short form: `frame_idx`, repeated `points=x,y`, `labels`, `box` (object 1, one frame);
- the long form: `prompts`, a JSON list of {obj_id, frame_idx, points, labels, box, mask, name};
- the v2 tensors (short form as arrays; the long form as a BYTES input).

Parsing checks syntax, ranges and counts; `check_against_video` then checks frames and
coordinates against the decoded video. Every message names the place (`points[1]`,
`prompts[2].box`), what was wrong and the allowed range.
"""

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from .errors import BadInput

SHORT_FORM_PARAMS = ("frame_idx", "points", "labels", "box")
MAX_OBJ_ID = 255
HOW_TO_PROMPT = ("give at least one click as points=x,y (repeat for more clicks, pixels of the "
                 "original frame) or a box as box=x1,y1,x2,y2")

Point = Tuple[float, float]
Box = Tuple[float, float, float, float]


@dataclass(frozen=True)
class ObjectPrompt:
    """One prompt of one object on one frame (the library's add_new_points_or_box/add_new_mask)."""

    obj_id: int = 1
    frame_idx: int = 0
    points: Tuple[Point, ...] = ()
    labels: Tuple[int, ...] = ()
    box: Optional[Box] = None
    mask: Optional[str] = None  # the name of the part (multipart) or input (v2) holding a PNG
    name: Optional[str] = None
    where: str = ""  # "prompts[2]." in the long form: prefixes every message about this entry

    def as_dict(self) -> dict:
        out = {"obj_id": self.obj_id, "frame_idx": self.frame_idx,
               "points": [list(p) for p in self.points], "labels": list(self.labels),
               "box": list(self.box) if self.box else None}
        if self.mask is not None:
            out["mask"] = self.mask
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class Prompts:
    entries: Tuple[ObjectPrompt, ...]
    long_form: bool = False

    @property
    def frames(self) -> List[int]:
        """The prompted frames, in order: each is a conditioning frame."""
        return sorted({p.frame_idx for p in self.entries})

    @property
    def obj_ids(self) -> List[int]:
        return sorted({p.obj_id for p in self.entries})

    @property
    def mask_names(self) -> List[str]:
        return [p.mask for p in self.entries if p.mask is not None]

    def names(self) -> dict:
        return {p.obj_id: p.name for p in self.entries if p.name is not None}

    def objects(self) -> List[dict]:
        """For the manifest: each object, its name and its prompted frames."""
        names = self.names()
        return [{"obj_id": o, "name": names.get(o),
                 "prompted_frames": sorted({p.frame_idx for p in self.entries if p.obj_id == o})}
                for o in self.obj_ids]

    def check_against_video(self, width: int, height: int) -> None:
        for p in self.entries:
            for i, (x, y) in enumerate(p.points):
                if not (0 <= x <= width and 0 <= y <= height):
                    raise BadInput(f"{p.where}points[{i}] ({_fmt(x)},{_fmt(y)}) is outside the "
                                   f"frame: x must be in 0..{width} and y in 0..{height} (the "
                                   f"video is {width}x{height})")
            if p.box is not None:
                x1, y1, x2, y2 = p.box
                if not (0 <= x1 <= width and 0 <= x2 <= width and 0 <= y1 <= height
                        and 0 <= y2 <= height):
                    raise BadInput(f"{p.where}box ({','.join(_fmt(v) for v in p.box)}) is "
                                   f"outside the frame: x in 0..{width}, y in 0..{height}")

    def check_frames(self, num_frames: int) -> None:
        for p in self.entries:
            if p.frame_idx >= num_frames:
                raise BadInput(f"{p.where}frame_idx {p.frame_idx} is past the end: the video "
                               f"has {num_frames} decoded frames, so frame_idx must be in "
                               f"0..{num_frames - 1}")


def _fmt(v: float) -> str:
    return f"{v:g}"


def check_point(x: float, y: float, where: str) -> Point:
    if not (math.isfinite(x) and math.isfinite(y)):
        raise BadInput(f"{where} ({x},{y}) is not a finite number")
    if x < 0 or y < 0:
        raise BadInput(f"{where} ({_fmt(x)},{_fmt(y)}) has a negative coordinate; pixels start "
                       f"at 0")
    return float(x), float(y)


def check_box(box: Sequence[float], where: str) -> Box:
    if len(box) != 4:
        raise BadInput(f"{where} must be x1,y1,x2,y2 (four numbers), got {len(box)} values")
    x1, y1, x2, y2 = (float(v) for v in box)
    text = ",".join(_fmt(v) for v in (x1, y1, x2, y2))
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise BadInput(f"{where} ({text}) has a value that is not a finite number")
    if min(x1, y1, x2, y2) < 0:
        raise BadInput(f"{where} ({text}) has a negative coordinate")
    if x2 <= x1:
        raise BadInput(f"{where}: x2 {_fmt(x2)} is left of x1 {_fmt(x1)} (x1,y1 is the top-left "
                       f"corner, x2,y2 the bottom-right; need x2 > x1 and y2 > y1)")
    if y2 <= y1:
        raise BadInput(f"{where}: y2 {_fmt(y2)} is above y1 {_fmt(y1)} (x1,y1 is the top-left "
                       f"corner, x2,y2 the bottom-right; need x2 > x1 and y2 > y1)")
    return x1, y1, x2, y2


def check_labels(labels: Sequence[int], n_points: int, where: str) -> Tuple[int, ...]:
    if labels and not n_points:
        raise BadInput(f"{where}labels were given without points; labels go with points")
    for i, v in enumerate(labels):
        if v not in (0, 1) or isinstance(v, bool):
            raise BadInput(f"{where}labels[{i}] must be 1 (on the object) or 0 (not on it), "
                           f"got {v!r}")
    if labels and len(labels) != n_points:
        raise BadInput(f"{where}got {len(labels)} labels for {n_points} points; give one label "
                       f"per point (1 = on the object, 0 = not) or none (all 1)")
    return tuple(int(v) for v in labels) if labels else (1,) * n_points


def check_counts(prompts: Prompts, max_points: int, max_objects: int) -> Prompts:
    clicks = sum(len(p.points) for p in prompts.entries)
    if clicks > max_points:
        where = "prompts: " if prompts.long_form else ""
        raise BadInput(f"{where}too many points: {clicks}{' in all' if where else ''}; this "
                       f"server accepts at most {max_points} (--max_points)")
    objects = len(prompts.obj_ids)
    if objects > max_objects:
        raise BadInput(f"prompts: {objects} objects; this server tracks at most {max_objects} "
                       f"in one request (--max_objects)")
    return prompts


# --- the short form: query string or form fields ---------------------------------------------
def _number(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise BadInput(f"{where}: {text.strip()!r} is not a number") from None
    if not math.isfinite(v):
        raise BadInput(f"{where}: {text.strip()!r} is not a finite number")
    return v


def parse_frame_idx(raw: Optional[str], where: str = "frame_idx") -> int:
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadInput(f"{where} must be a non-negative integer, got {raw!r}") from None
    if value < 0:
        raise BadInput(f"{where} must be a non-negative integer (0 = first frame), got {value}")
    return value


def _parse_point(raw: str, i: int) -> Point:
    parts = raw.split(",")
    if len(parts) != 2:
        raise BadInput(f"points[{i}] must be 'x,y' (two numbers separated by a comma), "
                       f"got {raw!r}")
    x, y = (_number(p, f"points[{i}]") for p in parts)
    return check_point(x, y, f"points[{i}]")


def _parse_label(raw: str, i: int) -> int:
    if raw.strip() not in ("0", "1"):
        raise BadInput(f"labels[{i}] must be 1 (on the object) or 0 (not on it), got {raw!r}")
    return int(raw.strip())


def _parse_box(raw: str) -> Box:
    parts = raw.split(",")
    if len(parts) != 4:
        raise BadInput(f"box must be 'x1,y1,x2,y2' (four numbers), got {raw!r}")
    return check_box([_number(p, "box") for p in parts], "box")


def short_form(items: Iterable[Tuple[str, str]], max_points: int) -> Prompts:
    """`frame_idx`, repeated `points`, `labels`, one `box` (already split from other keys)."""
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
    if len(box_raws) > 1:
        raise BadInput("box is given more than once; give one box x1,y1,x2,y2")
    if len(point_raws) > max_points:  # before parsing 10,000 of them
        raise BadInput(f"too many points: {len(point_raws)}; this server accepts at most "
                       f"{max_points} (--max_points)")
    points = tuple(_parse_point(p, i) for i, p in enumerate(point_raws))
    labels = check_labels([_parse_label(v, i) for i, v in enumerate(label_raws)], len(points),
                          "")
    box = _parse_box(box_raws[0]) if box_raws else None
    if not points and box is None:
        raise BadInput(f"no prompt: {HOW_TO_PROMPT}")
    return Prompts((ObjectPrompt(obj_id=1, frame_idx=parse_frame_idx(frame_raw), points=points,
                                 labels=labels, box=box),))
