"""Mask prompts: a PNG of the video's size whose nonzero pixels are the object.

Decoded only once the video's size is known (the job opens the video first), so a wrong size is
a 400 that names both sizes. PIL reads the image; any mode works (palette, grey, RGB, RGBA with
the alpha ignored): a pixel is "object" when any of its colour channels is nonzero.
"""

import io
from typing import Dict

import numpy as np

from .errors import BadInput
from .prompts import Prompts


def decode_mask(data: bytes, width: int, height: int, where: str, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"{where}mask: the part {name!r} is not an image PIL can read ({exc}); "
                       f"send a PNG whose nonzero pixels are the object") from None
    if img.size != (width, height):
        raise BadInput(f"{where}mask: the mask {name!r} is {img.size[0]}x{img.size[1]}; it must "
                       f"be the video's size, {width}x{height}")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    arr = np.asarray(img)
    return (arr.reshape(height, width, -1) != 0).any(axis=2)


def decode_masks(prompts: Prompts, images: Dict[str, bytes], width: int, height: int
                 ) -> Dict[str, np.ndarray]:
    out = {}
    for p in prompts.entries:
        if p.mask is not None:
            mask = decode_mask(images[p.mask], width, height, p.where, p.mask)
            if not mask.any():
                raise BadInput(f"{p.where}mask: the mask {p.mask!r} is empty (all zero); mark "
                               f"the object with nonzero pixels")
            out[p.mask] = mask
    return out
