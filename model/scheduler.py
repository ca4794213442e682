"""One job on the device at a time, a bounded queue behind it, 503 beyond it.

SAM2 holds its whole per-video state on the device and a second concurrent video would only
split the same GPU (and double its memory), so jobs run one after another on a single worker
thread, never on the event loop: health, readiness and metrics answer while a long video runs.
"""

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Set

from . import metrics
from .cancellation import Cancellation
from .errors import Cancelled, Unavailable


class Ticket:
    """A place in the line (running or queued), released exactly once. It holds the request's
    Cancellation so that shutdown can stop every admitted job."""

    def __init__(self, scheduler: "Scheduler", cancellation: Cancellation):
        self._scheduler = scheduler
        self._released = False
        self._handed_over = False
        self.cancellation = cancellation
        self.admitted_at = time.monotonic()

    def cancel(self, error: Cancelled) -> None:
        self.cancellation.cancel(error)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._scheduler._release(self)

    def hand_over(self) -> "Ticket":
        """The job holds the place from now on (the scheduler releases it when the job ends)."""
        self._handed_over = True
        return self

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc) -> None:
        if not self._handed_over:
            self.release()


class Scheduler:
    def __init__(self, max_queue: int):
        self.capacity = 1 + max(0, max_queue)
        self._lock = threading.Lock()
        self._tickets: Set[Ticket] = set()
        self._running = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2-device")
        self._idle = threading.Condition(self._lock)
        self.accepting = True
        # Retry-After estimate: an exponentially weighted mean of job durations (seconds).
        self._mean_job_s = 10.0

    # --- admission ----------------------------------------------------------------------------
    def _refuse(self, reason: str, message: str, retry_after: int) -> Unavailable:
        metrics.REJECTED.labels(reason).inc()
        return Unavailable(message, retry_after=retry_after, kind=reason)

    def check(self) -> None:
        """Fail fast, before reading an upload, when a request could not be admitted now."""
        with self._lock:
            self._check_locked()

    def _check_locked(self) -> None:
        if not self.accepting:
            raise self._refuse("draining", "the server is shutting down; retry on another "
                               "replica", retry_after=5)
        if len(self._tickets) >= self.capacity:
            queued = len(self._tickets) - self._running
            wait = math.ceil(self._mean_job_s * max(1, queued))
            raise self._refuse(
                "busy", f"busy: {self._running} job running and {queued} waiting "
                f"(--max_queue {self.capacity - 1}); retry in about {wait} s",
                retry_after=max(1, min(wait, 300)))

    def admit(self, cancellation: Cancellation) -> Ticket:
        with self._lock:
            self._check_locked()
            ticket = Ticket(self, cancellation)
            self._tickets.add(ticket)
            self._publish()
            return ticket

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            self._tickets.discard(ticket)
            self._publish()
            self._idle.notify_all()

    def _publish(self) -> None:
        metrics.QUEUE_DEPTH.set(len(self._tickets) - self._running)
        metrics.IN_FLIGHT.set(self._running)

    @property
    def load(self) -> dict:
        with self._lock:
            return {"running": self._running, "queued": len(self._tickets) - self._running,
                    "capacity": self.capacity}

    # --- running ------------------------------------------------------------------------------
    def run(self, ticket: Ticket, work: Callable[[], object], timed: bool = True
            ) -> "asyncio.Future":
        """Run `work` on the device thread after the jobs ahead of it; the ticket is released
        when it ends, however it ends. The future holds what `work` returned. `timed` work
        feeds the job-time estimate behind Retry-After (a one-frame preview does not)."""

        def _run() -> object:
            with self._lock:
                self._running += 1
                self._publish()
            t0 = time.monotonic()
            try:
                return work()
            finally:
                with self._lock:
                    self._running -= 1
                    if timed:
                        self._mean_job_s = 0.7 * self._mean_job_s + \
                            0.3 * (time.monotonic() - t0)
                ticket.release()

        return asyncio.get_running_loop().run_in_executor(self._executor, _run)

    def run_blocking(self, work: Callable[[], object]) -> object:
        """Run `work` on the device thread and wait (the warm-up at load time): torch.compile's
        CUDA graphs are recorded per thread, so they must be made where jobs will run."""
        return self._executor.submit(work).result()

    # --- shutting down ------------------------------------------------------------------------
    def stop_accepting(self) -> None:
        with self._lock:
            self.accepting = False

    def wait_idle(self, timeout: Optional[float]) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: not self._tickets, timeout=timeout)

    def cancel_all(self, error: Cancelled) -> int:
        with self._lock:
            tickets = list(self._tickets)
        for ticket in tickets:
            ticket.cancel(error)
        return len(tickets)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
