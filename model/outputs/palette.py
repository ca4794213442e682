"""format=palette: one indexed PNG per frame, pixel = obj_id, as DAVIS / YouTube-VOS store them
and as sam2's `tools/vos_inference.py` writes its results (labels.py: the overlap rule and the
palette). A DAVIS or YouTube-VOS evaluation tool reads the ZIP's masks/ folder directly.
"""

import io
from typing import Callable

import numpy as np

from .frame import TrackedFrame
from .labels import DAVIS_PALETTE, label_map
from .zip_png import ZipStream, mask_name


def encode_palette_png(labels: np.ndarray) -> bytes:
    """uint8 HxW label map -> 8-bit indexed PNG with the DAVIS palette (PIL mode P)."""
    from PIL import Image

    img = Image.fromarray(labels)  # mode L; putpalette makes it P, as save_ann_png does
    img.putpalette(DAVIS_PALETTE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class PaletteZip:
    """format=palette: masks/00000.png per frame, all objects in one indexed PNG."""

    media_type = "application/zip"
    filename = "masks.zip"
    description = ("8-bit indexed PNG with the DAVIS palette, pixel = obj_id, 0 = background; "
                   "where objects overlap the smallest obj_id wins")

    def __init__(self, emit: Callable[[bytes], None], preview=None):
        self._zip = ZipStream(emit)
        self._preview = preview

    def names(self) -> str:
        return "masks/{frame_idx:05d}.png"

    def add(self, frame: TrackedFrame) -> None:
        labels = label_map(frame.masks)
        self._zip.add(mask_name(frame.frame_idx), encode_palette_png(labels))
        if self._preview is not None:
            self._preview.add(frame.frame_idx, labels)

    def close(self, manifest: dict) -> None:
        self._zip.close_with_preview(manifest, self._preview)

    def abort(self) -> None:
        if self._preview is not None:
            self._preview.abort()
        self._zip.abort()
