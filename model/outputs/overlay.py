"""One preview frame: the video frame with each object's mask blended in its palette colour (the
DAVIS colour of its obj_id, as in format=palette) and outlined in that hue, padded to even sides
(H.264 in yuv420p halves the chroma planes).

All in OpenCV's vectorised calls on the label map (one pass, whatever the number of objects):
~1.5 ms for a 640x360 frame on one core, where the same steps with numpy fancy indexing and
boolean masks took ~10 ms (bench/preview_memory.py).
"""

import numpy as np

from .labels import COLOURS

# Outlines in the same hue at full brightness: DAVIS colours are dark (128 for objects 1-7), and a
# (128, 128, 0) outline vanishes on a (128, 128, 0) tint.
_PEAK = np.maximum(COLOURS.max(axis=1, keepdims=True), 1).astype(np.uint16)
OUTLINE_COLOURS = (COLOURS.astype(np.uint16) * 255 // _PEAK).astype(np.uint8)
_FILL_LUTS = [np.ascontiguousarray(COLOURS[:, c]) for c in range(3)]
_LINE_LUTS = [np.ascontiguousarray(OUTLINE_COLOURS[:, c]) for c in range(3)]


def _paint(labels: np.ndarray, luts) -> np.ndarray:
    """HxWx3: each pixel the colour of its label."""
    import cv2

    return cv2.merge([cv2.LUT(labels, lut) for lut in luts])


def outline(labels: np.ndarray, thickness: int) -> np.ndarray:
    """uint8 0/255: pixels of an object within `thickness` of another label (an object or the
    background)."""
    import cv2

    kernel = np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8)
    changed = cv2.bitwise_or(cv2.compare(cv2.dilate(labels, kernel), labels, cv2.CMP_NE),
                             cv2.compare(cv2.erode(labels, kernel), labels, cv2.CMP_NE))
    return cv2.bitwise_and(changed, cv2.compare(labels, 0, cv2.CMP_GT))


def outline_thickness(width: int, height: int) -> int:
    """2 px at 360p, 6 at 1080p: visible in a browser at any size."""
    return max(1, round(min(width, height) / 180))


def overlay(rgb: np.ndarray, labels: np.ndarray, thickness: int) -> np.ndarray:
    """uint8 HxWx3 RGB and its uint8 HxW label map -> the preview frame (same size): inside an
    object (pixel + colour) / 2, on its outline the outline colour, elsewhere the pixel."""
    import cv2

    out = rgb.copy()
    inside = cv2.compare(labels, 0, cv2.CMP_GT)
    cv2.copyTo(cv2.addWeighted(rgb, 0.5, _paint(labels, _FILL_LUTS), 0.5, 0), inside, out)
    cv2.copyTo(_paint(labels, _LINE_LUTS), outline(labels, thickness), out)
    return out


def even_size(width: int, height: int):
    return width + width % 2, height + height % 2


def pad_even(rgb: np.ndarray) -> np.ndarray:
    """Odd sides grow by one row / column repeating the last (yuv420p needs even sides)."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
