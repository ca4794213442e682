"""The long form: `prompts`, a JSON list of one entry per (object, frame).

    [{"obj_id": 1, "frame_idx": 0, "points": [[320, 180], [400, 200]], "labels": [1, 0],
      "name": "dog"},
     {"obj_id": 1, "frame_idx": 40, "points": [[330, 170]]},
     {"obj_id": 2, "frame_idx": 10, "box": [100, 100, 200, 220]},
     {"obj_id": 3, "frame_idx": 5, "mask": "mask3"}]

Each entry becomes one of the library's calls on that frame (add_new_points_or_box, or
add_new_mask), so an object prompted on several frames has each of them as a conditioning frame.
"""

import json
from numbers import Real
from typing import List, Optional, Tuple

from .errors import BadInput
from .prompts import MAX_OBJ_ID, ObjectPrompt, Prompts, check_box, check_labels, check_point

KEYS = ("obj_id", "frame_idx", "points", "labels", "box", "mask", "name")
MAX_NAME = 100


def _int(value, where: str, low: int, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{where} must be an integer, got {json.dumps(value)}")
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise BadInput(f"{where} must be in {allowed}, got {value}")
    return value


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _points(value, where: str) -> Tuple[Tuple[float, float], ...]:
    if not isinstance(value, list):
        raise BadInput(f"{where} must be a list of [x, y] pairs, got {json.dumps(value)}")
    out = []
    for j, pt in enumerate(value):
        if not (isinstance(pt, list) and len(pt) == 2 and all(_is_number(v) for v in pt)):
            raise BadInput(f"{where}[{j}] must be [x, y] (two numbers), got {json.dumps(pt)}")
        out.append(check_point(float(pt[0]), float(pt[1]), f"{where}[{j}]"))
    return tuple(out)


def _entry(raw, i: int) -> ObjectPrompt:
    at = f"prompts[{i}]"
    if not isinstance(raw, dict):
        raise BadInput(f"{at} must be an object like {{\"obj_id\": 1, \"frame_idx\": 0, "
                       f"\"points\": [[x, y]]}}, got {json.dumps(raw)[:80]}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise BadInput(f"{at}: unknown key {unknown[0]!r}; allowed: {', '.join(KEYS)}")
    if "obj_id" not in raw:
        raise BadInput(f"{at}.obj_id is missing (an integer 1..{MAX_OBJ_ID})")
    obj_id = _int(raw["obj_id"], f"{at}.obj_id", 1, MAX_OBJ_ID)
    frame_idx = _int(raw.get("frame_idx", 0), f"{at}.frame_idx", 0)
    points = _points(raw["points"], f"{at}.points") if raw.get("points") is not None else ()
    labels_raw = raw.get("labels")
    if labels_raw is not None and not isinstance(labels_raw, list):
        raise BadInput(f"{at}.labels must be a list of 1/0, got {json.dumps(labels_raw)}")
    labels = check_labels(labels_raw or [], len(points), f"{at}.")
    box = None
    if raw.get("box") is not None:
        if not (isinstance(raw["box"], list) and all(_is_number(v) for v in raw["box"])):
            raise BadInput(f"{at}.box must be [x1, y1, x2, y2], got {json.dumps(raw['box'])}")
        box = check_box(raw["box"], f"{at}.box")
    mask = raw.get("mask")
    if mask is not None:
        if not isinstance(mask, str) or not mask or mask == "video":
            raise BadInput(f"{at}.mask must name the part that holds the mask PNG (e.g. "
                           f"\"mask3\" with -F mask3=@mask3.png), got {json.dumps(mask)}")
        if points or box is not None:
            raise BadInput(f"{at}: a mask cannot be combined with points or a box in one entry "
                           f"(the library takes them in separate calls); give them as two "
                           f"entries on different frames")
    elif not points and box is None:
        raise BadInput(f"{at}: no prompt: give \"points\", a \"box\" or a \"mask\"")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise BadInput(f"{at}.name must be text of at most {MAX_NAME} characters")
    return ObjectPrompt(obj_id=obj_id, frame_idx=frame_idx, points=points, labels=labels, box=box,
                        mask=mask, name=name, where=f"{at}.")


def long_form(text: str) -> Prompts:
    try:
        raw = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"prompts is not valid JSON: {exc}") from None
    if isinstance(raw, dict):
        raw = [raw]  # one entry without the brackets
    if not isinstance(raw, list) or not raw:
        raise BadInput("prompts must be a non-empty JSON list of {\"obj_id\", \"frame_idx\", "
                       "\"points\" | \"box\" | \"mask\"} entries")
    entries: List[ObjectPrompt] = [_entry(e, i) for i, e in enumerate(raw)]
    seen, names = {}, {}
    for i, p in enumerate(entries):
        key = (p.obj_id, p.frame_idx)
        if key in seen:
            raise BadInput(f"prompts[{i}]: object {p.obj_id} already has a prompt on frame "
                           f"{p.frame_idx} (prompts[{seen[key]}]); put all its clicks on that "
                           f"frame in one entry")
        seen[key] = i
        if p.name is not None:
            if names.get(p.obj_id, p.name) != p.name:
                raise BadInput(f"prompts[{i}].name: object {p.obj_id} is already named "
                               f"{names[p.obj_id]!r}")
            names[p.obj_id] = p.name
    return Prompts(tuple(entries), long_form=True)
