"""The reverse pass's frames: the ones before the first prompted frame, last first.

They were not kept while the video decoded forward: a thread decodes them again from the spooled
upload, chunk by chunk from the keyframe before each chunk (video.py `frames_between`), and hands
them over last-first through a bounded queue (or reads them from the spill file, spill.py).
"""

import queue
import threading
from typing import Callable

import numpy as np

from .cancellation import FeedStopped

# Frames decoded again per chunk. A chunk costs (its end - the keyframe before it) decodes, so a
# 250-frame GOP costs ~4 decodes per frame at 32; memory is 32 frames (96 MiB at 1024).
REVERSE_CHUNK = 32


class Rewinder:
    def __init__(self, source, spill, resize: Callable[[np.ndarray], np.ndarray], size: int,
                 first: int, cancelled: threading.Event, depth: int):
        self._source, self._spill, self._resize, self._size = source, spill, resize, size
        self._first = first
        self._cancelled = cancelled
        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="frame-rewinder", daemon=True)

    def start(self) -> "Rewinder":
        self._thread.start()
        return self

    def get(self):
        """(index, frame), the next one back; raises what the decoder raised."""
        while True:
            try:
                item = self._queue.get(timeout=0.2)
                break
            except queue.Empty:
                if self._cancelled.is_set():
                    raise FeedStopped() from None
        if isinstance(item, BaseException):
            raise item
        return item

    def _chunk(self, end: int) -> list:
        spill = self._spill
        if spill is not None and end - 1 in spill.held:
            return [(end - 1, spill.get(end - 1, self._size))]
        start = max(self._source.keyframe_at_or_before(end - 1), end - REVERSE_CHUNK)
        return [(i, self._resize(rgb)) for i, rgb in self._source.frames_between(start, end)]

    def _run(self) -> None:
        end = self._first
        try:
            while end > 0 and not self._cancelled.is_set():
                chunk = self._chunk(end)
                for item in reversed(chunk):
                    if not self._put(item):
                        return
                end = chunk[0][0]
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(exc)

    def _put(self, item) -> bool:
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                pass
        return False

    def close(self) -> None:
        while True:  # unblock the thread waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._thread.join(timeout=10)
