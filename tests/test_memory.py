"""The heap (model/memory.py): large buffers keep their pages between frames, and the heap is
trimmed only when a job's resident size grows. Fast tier: no model."""

import os
import subprocess
import sys
import textwrap

import pytest

from model.memory import HeapWatch, keep_freed_pages

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")

# A 40 MiB buffer (above glibc's largest mmap threshold, like the image encoder's 38 MiB qkv
# output at image_size 512) allocated, written and freed twice in a fresh process; prints the
# page faults of the second round.
_PROBE = textwrap.dedent("""
    import ctypes, resource, sys
    sys.path.insert(0, {repo!r})
    from model.memory import keep_freed_pages
    applied = keep_freed_pages() if sys.argv[1] == "keep" else False
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    size = 40 * 2**20

    def one_round():
        p = libc.malloc(size)
        ctypes.memset(p, 1, size)
        libc.free(p)

    one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    one_round()
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _second_round_faults(mode: str, env=None) -> tuple:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _PROBE.format(repo=repo), mode],
                         capture_output=True, text=True, check=True,
                         env=env if env is not None else dict(os.environ)).stdout.split()
    return out[0] == "True", int(out[1])


@glibc
def test_large_buffers_reuse_their_pages():
    applied, faults = _second_round_faults("keep")
    assert applied
    assert faults < 200  # 40 MiB is 10240 pages
    plain_applied, plain_faults = _second_round_faults("plain")
    assert not plain_applied
    assert plain_faults > 5000  # glibc's default: a fresh mmap each time


@glibc
def test_the_users_malloc_settings_win():
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["MALLOC_MMAP_MAX_"] = "65536"
    applied, faults = _second_round_faults("keep", env)
    assert not applied and faults > 5000
    assert keep_freed_pages({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=1"}) is False


def _watch(sizes):
    trims = []
    reads = iter(sizes)
    watch = HeapWatch(growth=64, read=lambda: next(reads), trim=lambda: trims.append(1))
    return watch, trims


def test_heap_watch_trims_only_when_the_job_grows():
    # first check sets the base (1000); growth up to 64 is left alone; past it, a trim and the
    # size after the trim becomes the base.
    watch, trims = _watch([1000, 1060, 1064, 1065, 1010, 1050, 1075, 1074])
    assert [watch.check() for _ in range(6)] == [False, False, False, True, False, True]
    assert watch.trims == len(trims) == 2


def test_heap_watch_trims_every_check_when_the_size_cannot_be_read():
    watch, trims = _watch([-1] * 6)
    assert [watch.check() for _ in range(3)] == [True, True, True]
    assert len(trims) == 3
