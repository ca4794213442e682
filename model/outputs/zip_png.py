"""The ZIP answer: masks as PNGs, written front to back, entry by entry, never seeking.

The standard library's zipfile writes to a non-seekable stream by putting each entry's CRC and
sizes in a data descriptor after its data; every unzip tool reads that. Entries appear in the
order masks are made (the first prompted frame to the end, then back to frame 0); names carry
the frame index (and, in the long form, the object id).
"""

import io
import json
import time
import zipfile
from typing import Callable, Optional

import numpy as np

from .frame import TrackedFrame
from .labels import label_map

MANIFEST_NAME = "manifest.json"
PREVIEW_NAME = "preview.mp4"
_FILE_CHUNK = 1 << 20  # a file goes into the ZIP (and out to the client) a MiB at a time


def mask_name(frame_idx: int, obj_id: Optional[int] = None) -> str:
    """masks/00012.png (one object, the short form) or masks/<obj_id>/00012.png."""
    if obj_id is None:
        return f"masks/{frame_idx:05d}.png"
    return f"masks/{obj_id}/{frame_idx:05d}.png"


def encode_png(mask: np.ndarray) -> bytes:
    """uint8 HxW 0/255 -> 8-bit grayscale PNG. Level 1: binary masks compress ~as well, faster."""
    import cv2

    ok, buf = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for a {mask.shape} mask")
    return buf.tobytes()


class _Sink(io.RawIOBase):
    """What zipfile writes into: collects bytes until the owner takes them."""

    def __init__(self):
        self._parts = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self._parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


class ZipStream:
    """Add entries; each `add` hands the entry's bytes to `emit` at once."""

    def __init__(self, emit: Callable[[bytes], None]):
        self._emit = emit
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, mode="w", allowZip64=True)
        self.entries = 0

    def add(self, name: str, data: bytes, compress: bool = False) -> None:
        info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        self._zip.writestr(info, data)
        self.entries += 1
        self._emit(self._sink.take())

    def add_file(self, name: str, path: str) -> None:
        """A file's bytes as an entry, read and sent a chunk at a time (stored: mp4 is
        compressed already)."""
        info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        with open(path, "rb") as src, self._zip.open(info, mode="w", force_zip64=True) as dst:
            while True:
                chunk = src.read(_FILE_CHUNK)
                if not chunk:
                    break
                dst.write(chunk)
                self._emit(self._sink.take())
        self.entries += 1
        self._emit(self._sink.take())

    def close(self, manifest: dict) -> None:
        """The manifest last (it holds the timings), then the central directory."""
        self.add(MANIFEST_NAME, json.dumps(manifest, indent=2).encode(), compress=True)
        self._zip.close()
        self._emit(self._sink.take())

    def close_with_preview(self, manifest: dict, preview) -> None:
        """preview.mp4 (when asked for) before the manifest, which then describes it."""
        if preview is not None:
            try:
                path = preview.finish()
                manifest = {**manifest, "preview": preview.describe()}
                self.add_file(PREVIEW_NAME, path)
            finally:
                preview.abort()  # its scratch files, whatever happened
        self.close(manifest)

    def abort(self) -> None:
        """A job that stopped early: no central directory is ever written (zipfile would write
        one when the object is collected), so the cut answer can never read as a whole ZIP."""
        self._zip.fp = None


class PngZip:
    """format=png: one 0/255 grayscale PNG per frame (and object, in the long form)."""

    media_type = "application/zip"
    filename = "masks.zip"
    description = "8-bit grayscale PNG, 0 = background, 255 = object"

    def __init__(self, emit: Callable[[bytes], None], long_form: bool, preview=None):
        self._zip = ZipStream(emit)
        self._long_form = long_form
        self._preview = preview  # outputs.preview.Preview, or None

    def names(self) -> str:
        return "masks/<obj_id>/{frame_idx:05d}.png" if self._long_form else \
            "masks/{frame_idx:05d}.png"

    def add(self, frame: TrackedFrame) -> None:
        for obj_id, mask in frame.masks.items():
            self._zip.add(mask_name(frame.frame_idx, obj_id if self._long_form else None),
                          encode_png(mask))
        if self._preview is not None:
            self._preview.add(frame.frame_idx, label_map(frame.masks))

    def close(self, manifest: dict) -> None:
        self._zip.close_with_preview(manifest, self._preview)

    def abort(self) -> None:
        if self._preview is not None:
            self._preview.abort()
        self._zip.abort()
