"""Frames kept on disk for a job whose video cannot be decoded again by seeking.

Rare (raw elementary streams, files without usable timestamps): the frames the engine reads a
second time go to an unlinked file in --spool_dir (pread/pwrite: the page cache holds them, the
process's RSS does not grow), after checking that the disk has room for all of them.
"""

import os
import shutil
import tempfile
from typing import Optional

import numpy as np

from .errors import InsufficientStorage

_MARGIN = 256 * 2**20  # left free for uploads and caches


class Spill:
    """Frames kept on disk: an unlinked file, read back with pread."""

    def __init__(self, spool_dir: Optional[str], frame_bytes: int, frames: int):
        free = shutil.disk_usage(spool_dir or tempfile.gettempdir()).free
        need = frames * frame_bytes
        if need + _MARGIN > free:
            raise InsufficientStorage(
                f"this video's timestamps cannot be sought, so {frames} frames would be kept on "
                f"disk ({need // 2**20} MiB) and only {free // 2**20} MiB are free; retry later "
                f"or re-encode the video (e.g. ffmpeg -i in -c:v libx264 out.mp4)", retry_after=30)
        fd, path = tempfile.mkstemp(prefix="sam2-frames-", suffix=".u8", dir=spool_dir)
        os.unlink(path)  # the descriptor keeps it; nothing is left behind on a crash
        self.fd, self.frame_bytes, self.held = fd, frame_bytes, set()

    def put(self, i: int, frame: np.ndarray) -> None:
        os.pwrite(self.fd, frame.data, i * self.frame_bytes)
        self.held.add(i)

    def get(self, i: int, size: int) -> np.ndarray:
        frame = np.empty((size, size, 3), dtype=np.uint8)
        if os.preadv(self.fd, [frame.data], i * self.frame_bytes) != self.frame_bytes:
            raise RuntimeError(f"frame {i} is missing from the spill file")
        return frame

    def close(self) -> None:
        os.close(self.fd)
