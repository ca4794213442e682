"""Whether, and why, one request's work should stop.

One `Cancellation` per request, made at the door before anything else exists: a client hang-up
(noticed while the request waits in line or while its answer streams), the deadline, or shutdown
sets it, and the first reason wins. Whoever holds work for the request watches it: the frame
decoder and the device loop poll `event`, the stream and the mask writer register `on_cancel`.
"""

import threading
from typing import Callable, List, Optional

from .errors import Cancelled, TrackerError


class FeedStopped(Exception):
    """A frame decoder or reader saw the job's cancellation while it waited."""


class Cancellation:
    def __init__(self):
        self.event = threading.Event()
        self.error: Optional[TrackerError] = None
        self._lock = threading.Lock()
        self._callbacks: List[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def cancel(self, error: TrackerError) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
            callbacks, self._callbacks = self._callbacks, []
            self.event.set()
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self.event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def reason(self) -> TrackerError:
        return self.error or Cancelled("cancelled")

    def raise_if_cancelled(self) -> None:
        if self.event.is_set():
            raise self.reason()
