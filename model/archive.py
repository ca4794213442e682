"""Masks -> PNG -> a ZIP written front to back, entry by entry, never seeking.

The standard library's zipfile writes to a non-seekable stream by putting each entry's CRC and
sizes in a data descriptor after its data; every unzip tool reads that. Entries appear in the
order masks are made (prompt frame to the end, then back to frame 0); names carry the frame index.
"""

import io
import json
import time
import zipfile
from typing import Callable

import numpy as np

MANIFEST_NAME = "manifest.json"


def mask_name(frame_idx: int) -> str:
    return f"masks/{frame_idx:05d}.png"


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

    def add_mask(self, frame_idx: int, mask: np.ndarray) -> None:
        self.add(mask_name(frame_idx), encode_png(mask))

    def close(self, manifest: dict) -> None:
        """The manifest last (it holds the timings), then the central directory."""
        self.add(MANIFEST_NAME, json.dumps(manifest, indent=2).encode(), compress=True)
        self._zip.close()
        self._emit(self._sink.take())
