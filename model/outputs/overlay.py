"""One preview frame: the video frame with each object's mask blended in its palette colour (the
DAVIS colour of its obj_id, as in format=palette) and outlined in that hue, padded to even sides
(H.264 in yuv420p halves the chroma planes)."""

import numpy as np

from .labels import COLOURS

ALPHA_SHIFT = 1  # blend = (pixel + colour) / 2: half the picture, half the object's colour
# Outlines in the same hue at full brightness: DAVIS colours are dark (128 for objects 1-7), and a
# (128, 128, 0) outline vanishes on a (128, 128, 0) tint.
_PEAK = np.maximum(COLOURS.max(axis=1, keepdims=True), 1).astype(np.uint16)
OUTLINE_COLOURS = (COLOURS.astype(np.uint16) * 255 // _PEAK).astype(np.uint8)


def outline(labels: np.ndarray, thickness: int) -> np.ndarray:
    """Pixels of an object within `thickness` of another label (an object or background): one
    pass for all objects, whatever their number."""
    import cv2

    kernel = np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8)
    edge = (cv2.dilate(labels, kernel) != labels) | (cv2.erode(labels, kernel) != labels)
    return edge & (labels > 0)


def outline_thickness(width: int, height: int) -> int:
    """2 px at 360p, 6 at 1080p: visible in a browser at any size."""
    return max(1, round(min(width, height) / 180))


def overlay(rgb: np.ndarray, labels: np.ndarray, thickness: int) -> np.ndarray:
    """uint8 HxWx3 RGB and its uint8 HxW label map -> the preview frame (same size)."""
    colour = COLOURS[labels]
    inside = labels > 0
    out = rgb.copy()
    blended = ((rgb.astype(np.uint16) + colour) >> ALPHA_SHIFT).astype(np.uint8)
    out[inside] = blended[inside]
    edge = outline(labels, thickness)
    out[edge] = OUTLINE_COLOURS[labels[edge]]
    return out


def even_size(width: int, height: int):
    return width + width % 2, height + height % 2


def pad_even(rgb: np.ndarray) -> np.ndarray:
    """Odd sides grow by one row / column repeating the last (yuv420p needs even sides)."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
