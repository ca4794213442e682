"""Encodes tracked frames in their output format on a thread of their own.

PNG/RLE encoding overlaps with the model's next frame instead of adding to it; the queue between
is short (8 frames), so a writer that falls behind (a slow client) holds the device back rather
than letting memory grow.
"""

import queue
import threading
from typing import Optional

from .frame import TrackedFrame


class FrameWriter:
    def __init__(self, fmt, depth: int = 8):
        self.format = fmt
        self.frames = 0
        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="mask-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks on a dead writer
            try:
                self.format.add(item)
            except BaseException as exc:  # noqa: BLE001 - reported to the producer in put()
                self._error = exc

    def put(self, frame: TrackedFrame) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frame)
        self.frames += 1

    def close(self, manifest: Optional[dict]) -> None:
        """Wait for queued frames; with a manifest, finish the answer. Raises the writer's error."""
        self._queue.put(None)
        self._thread.join()
        if manifest is None or self._error is not None:
            self.format.abort()
        if self._error is not None:
            raise self._error
        if manifest is not None:
            self.format.close(manifest)
