"""Bytes from the device side (a worker thread) to the event loop that sends them, bounded.

The mask writer `put`s encoded chunks from its thread; the HTTP response (or the v2 answer)
iterates `chunks()` on the event loop. At most `max_pending` chunks wait in between, so a slow
client slows the writer, which slows the device, and memory stays flat. The last item says how
the job ended: `finish()` or `finish(error)`, which `chunks()` raises to the reader.
"""

import asyncio
import threading
from typing import Any, Optional

from .errors import Cancelled


class _End:
    def __init__(self, error: Optional[BaseException] = None):
        self.error = error


class ChunkStream:
    def __init__(self, loop: asyncio.AbstractEventLoop, max_pending: int = 32):
        self._loop = loop
        self._queue: "asyncio.Queue" = asyncio.Queue()
        self._slots = threading.Semaphore(max_pending)
        self._gone = threading.Event()
        self._head: Any = None

    def _deliver(self, item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: the server is gone, so is the reader
            self._gone.set()

    def put(self, chunk: bytes) -> None:
        """From a thread: blocks while the reader is `max_pending` chunks behind."""
        while not self._slots.acquire(timeout=0.2):
            if self._gone.is_set():
                raise Cancelled("the client stopped reading")
        if self._gone.is_set():
            raise Cancelled("the client stopped reading")
        self._deliver(chunk)

    def finish(self, error: Optional[BaseException] = None) -> None:
        self._deliver(_End(error))

    def close(self) -> None:
        """The reader is gone: a blocked or later `put` raises Cancelled."""
        self._gone.set()

    async def _next(self):
        if self._head is not None:
            item, self._head = self._head, None
        else:
            item = await self._queue.get()
        if not isinstance(item, _End):
            self._slots.release()
        return item

    async def wait_first(self) -> None:
        """Wait for the first chunk without taking it; raise if the job failed before it."""
        if self._head is None:
            self._head = await self._queue.get()
        if isinstance(self._head, _End) and self._head.error is not None:
            raise self._head.error

    async def chunks(self):
        while True:
            item = await self._next()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
