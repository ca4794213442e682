"""The v2 short form as tensors: frame_idx INT64 [1], points FP32 [N,2], labels INT32 [N],
box FP32 [4] -> Prompts (object 1 on one frame), with the same checks and messages as the query."""

from typing import Optional

import numpy as np

from .errors import BadInput
from .prompts import HOW_TO_PROMPT, ObjectPrompt, Prompts, check_box, check_labels, check_point


def _frame_idx(frame_idx: Optional[np.ndarray]) -> int:
    if frame_idx is None:
        return 0
    flat = np.asarray(frame_idx).reshape(-1)
    if flat.size != 1 or not np.issubdtype(flat.dtype, np.integer):
        raise BadInput(f"input 'frame_idx' must be INT64 with shape [1], got {flat.dtype} with "
                       f"{flat.size} values")
    idx = int(flat[0])
    if idx < 0:
        raise BadInput(f"frame_idx must be a non-negative integer, got {idx}")
    return idx


def _points(points: Optional[np.ndarray], max_points: int):
    if points is None or not np.asarray(points).size:
        return ()
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1 and arr.size % 2 == 0:
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise BadInput(f"input 'points' must have shape [N,2] (x,y per row), got "
                       f"{list(np.asarray(points).shape)}")
    if len(arr) > max_points:
        raise BadInput(f"too many points: {len(arr)}; this server accepts at most {max_points} "
                       f"(--max_points)")
    return tuple(check_point(float(x), float(y), f"points[{i}]") for i, (x, y) in enumerate(arr))


def from_arrays(frame_idx: Optional[np.ndarray], points: Optional[np.ndarray],
                labels: Optional[np.ndarray], box: Optional[np.ndarray],
                max_points: int) -> Prompts:
    pts = _points(points, max_points)
    lbls = []
    if labels is not None and np.asarray(labels).size:
        lbls = [v.item() for v in np.asarray(labels).reshape(-1)]
    lbls = check_labels(lbls, len(pts), "")
    bx = None
    if box is not None and np.asarray(box).size:
        flat = np.asarray(box, dtype=np.float64).reshape(-1)
        if flat.size != 4:
            raise BadInput(f"input 'box' must be FP32 [4] (x1,y1,x2,y2), got {flat.size} values")
        bx = check_box(flat.tolist(), "box")
    if not pts and bx is None:
        raise BadInput(f"no prompt: {HOW_TO_PROMPT}")
    return Prompts((ObjectPrompt(obj_id=1, frame_idx=_frame_idx(frame_idx), points=pts,
                                 labels=lbls, box=bx),))
