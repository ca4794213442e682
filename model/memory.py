"""The heap on a CPU: large buffers reused instead of fresh pages, and freed pages handed back
when a long job's resident size grows (glibc; a no-op elsewhere).

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh mmap and
unmaps it on free, and shrinks its heaps whenever their free top passes the trim threshold. A
frame at image_size 512 allocates tensors up to 38 MiB (the image encoder's [16384, 576] qkv
output) and frees them a moment later, so the next frame takes every one of those pages again
as a page fault: 300-600k faults per 2-object request of 24 frames. A fresh page costs ~1.5 us
here (a 38 MiB linear layer: 29 ms into fresh pages, 16 ms into reused ones). `keep_freed_pages`
(once, at start) turns both off. The plain library's own run, with the same settings through
glibc's environment: 0.92-0.96x its time (4 alternating pairs, 2 objects, 2 cores). The server,
against the previous commit: ~555k -> ~55k faults per request, 0.95-1.005x the time (4 pairs;
this machine's noise is about as large).

Without the automatic trimming, only `HeapWatch` hands memory back: per-frame buffers are
allocated and freed in several threads, each with its own arena, so the resident size can drift
upward over a long job while live memory is flat. It trims (malloc_trim) when the resident size
has grown 64 MiB since the job's first check or the last trim; a steady job never trims, so its
frames keep their pages. Trimming on a fixed cadence (every 8 frames) made ~130k faults per such
request. The job trims once more at its end, so an idle server holds little.
"""

import ctypes
import ctypes.util
import functools
import os

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
# The environment variables through which a user sets glibc's malloc instead.
_USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                  "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
TRIM_GROWTH_BYTES = 64 * 2**20


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        libc.mallopt  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_pages(environ=os.environ) -> bool:
    """Once, before the model runs: no mmap per large buffer, no automatic trimming. Left alone
    when the user configures glibc's malloc through the environment. True when applied."""
    libc = _libc()
    if libc is None or any(name in environ for name in _USER_SETTINGS):
        return False
    # Allocations a thread's arena cannot hold (above 64 MiB) still fall back to mmap.
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30))


def release_free_memory() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def resident_bytes() -> int:
    """This process's resident size, or -1 where /proc cannot tell."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return -1


class HeapWatch:
    """Called between frames: trims when the resident size grew `growth` bytes since the first
    check or the last trim. Where the size cannot be read, it trims at every check."""

    def __init__(self, growth: int = TRIM_GROWTH_BYTES, read=resident_bytes,
                 trim=release_free_memory):
        self._growth, self._read, self._trim = growth, read, trim
        self._base = None
        self.trims = 0

    def check(self) -> bool:
        rss = self._read()
        if rss >= 0 and self._base is None:
            self._base = rss
            return False
        if rss >= 0 and rss - self._base <= self._growth:
            return False
        self._trim()
        self._base = self._read()
        self.trims += 1
        return True
