"""Objects on one frame as one label map (pixel = obj_id), and the DAVIS palette that colours it.

The rule is sam2's own evaluation tool's (facebookresearch/sam2 `tools/vos_inference.py` at
2b90b9f): `put_per_obj_mask` paints the objects from the largest id to the smallest, so where
masks overlap the smallest obj_id wins; `save_ann_png` saves that uint8 map with `DAVIS_PALETTE`,
the PASCAL VOC colour map, generated here (entry i spreads the bits of i over the high bits of
r, g, b; a test checks it is byte for byte sam2's). The palette PNGs and the preview's colours
both come from here.
"""

from typing import Dict, Optional

import numpy as np


def _voc_palette(n: int = 256) -> bytes:
    out = bytearray()
    for i in range(n):
        r = g = b = 0
        c = i
        for bit in range(7, -1, -1):
            r |= (c & 1) << bit
            g |= ((c >> 1) & 1) << bit
            b |= ((c >> 2) & 1) << bit
            c >>= 3
        out += bytes((r, g, b))
    return bytes(out)


DAVIS_PALETTE = _voc_palette()  # 768 bytes: r, g, b of index 0..255
COLOURS = np.frombuffer(DAVIS_PALETTE, dtype=np.uint8).reshape(256, 3)


def label_map(masks: Dict[int, np.ndarray], shape: Optional[tuple] = None) -> np.ndarray:
    """uint8 HxW, pixel = obj_id (0 = background); where masks overlap the smallest obj_id wins."""
    if not masks and shape is None:
        raise ValueError("a frame with no objects needs its shape")
    labels = np.zeros(shape or next(iter(masks.values())).shape, dtype=np.uint8)
    for obj_id in sorted(masks, reverse=True):
        labels[masks[obj_id] > 0] = obj_id
    return labels
