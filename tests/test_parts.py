"""Fast tier: the parts of the request path one at a time (no server, no SAM2).

The error table, the ZIP writer, the manifest, the frame writer, the scheduler, the stream between
the device thread and the event loop, the frame feed, and the cancellation.
"""

import asyncio
import io
import json
import os
import threading
import time
import zipfile

import grpc
import numpy as np
import pytest
from starlette.requests import ClientDisconnect

from model.cancellation import Cancellation
from model.errors import (BUG, BadInput, Cancelled, DeadlineExceeded, InsufficientStorage,
                          TooLarge, Unavailable, UnsupportedMedia, error_response, verdict,
                          verdict_for_status)
from model.cancellation import FeedStopped
from model.feed import EndOfVideo, FeedPlan, FrameFeed
from model.video import FrameList
from model.frames import to_model_frame
from model.outputs.frame import TrackedFrame
from model.outputs.writer import FrameWriter
from model.outputs.zip_png import PngZip, ZipStream, mask_name
from model.scheduler import Scheduler
from model.stream import ChunkStream
from model.uploads import Upload, body_kind
from support.zipcheck import read_masks


# --- the error table -------------------------------------------------------------------------
@pytest.mark.parametrize("exc,http,code,outcome", [
    (BadInput("x"), 400, grpc.StatusCode.INVALID_ARGUMENT, "bad_request"),
    (TooLarge("x"), 413, grpc.StatusCode.INVALID_ARGUMENT, "too_large"),
    (UnsupportedMedia("x"), 415, grpc.StatusCode.INVALID_ARGUMENT, "unsupported_media"),
    (Unavailable("x", kind="busy"), 503, grpc.StatusCode.UNAVAILABLE, "busy"),
    (Unavailable("x", kind="draining"), 503, grpc.StatusCode.UNAVAILABLE, "unavailable"),
    (Cancelled("x"), 503, grpc.StatusCode.UNAVAILABLE, "cancelled"),
    (DeadlineExceeded("x"), 503, grpc.StatusCode.DEADLINE_EXCEEDED, "timeout"),
    (InsufficientStorage("x"), 507, grpc.StatusCode.RESOURCE_EXHAUSTED, "unavailable"),
    (ClientDisconnect(), 499, grpc.StatusCode.CANCELLED, "cancelled"),
    (asyncio.CancelledError(), 499, grpc.StatusCode.CANCELLED, "cancelled"),
    (RuntimeError("bug"), 500, grpc.StatusCode.INTERNAL, "error"),
])
def test_one_table_maps_each_error(exc, http, code, outcome):
    v = verdict(exc)
    assert (v.http, v.grpc, v.outcome) == (http, code, outcome)


def test_error_response_body_and_headers():
    r = error_response(Unavailable("busy now", retry_after=7, kind="busy"), "rid1")
    assert r.status_code == 503 and r.headers["retry-after"] == "7"
    assert r.headers["x-request-id"] == "rid1" and json.loads(r.body) == {"error": "busy now"}
    bug = error_response(KeyError("secret internals"), "rid2")
    assert bug.status_code == 500 and "secret" not in bug.body.decode()
    assert "rid2" in json.loads(bug.body)["error"]
    assert verdict_for_status(422).outcome == "bad_request"
    assert verdict_for_status(500) is BUG and verdict_for_status(200).outcome == "ok"


def test_body_kind():
    assert body_kind(None) == body_kind("video/mp4") == "raw"
    assert body_kind("application/x-www-form-urlencoded") == "raw"  # curl --data-binary
    assert body_kind("multipart/form-data; boundary=x") == "multipart"
    with pytest.raises(UnsupportedMedia, match="'application/json' is not accepted"):
        body_kind("application/json")


def test_upload_has_one_owner(tmp_path):
    path = tmp_path / "u.video"
    path.write_bytes(b"x")
    with Upload(str(path), 1):
        pass
    assert not path.exists()  # not handed over: removed when the holder lets go
    path.write_bytes(b"x")
    with Upload(str(path), 1) as up:
        up.hand_over()
    assert path.exists()  # the new owner removes it
    up.discard()
    up.discard()
    assert not path.exists()


# --- outputs ---------------------------------------------------------------------------------
def _mask(h=6, w=8, on=3):
    m = np.zeros((h, w), np.uint8)
    m[:, :on] = 255
    return m


def test_zip_stream_is_valid_and_emitted_entry_by_entry():
    chunks = []
    z = ZipStream(chunks.append)
    z.add("masks/00000.png", b"abc")
    assert len(chunks) == 1 and chunks[0].startswith(b"PK\x03\x04")
    z.add("masks/00001.png", b"defg")
    z.close({"k": 1})
    zf = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert zf.testzip() is None
    assert zf.namelist() == ["masks/00000.png", "masks/00001.png", "manifest.json"]
    assert json.loads(zf.read("manifest.json")) == {"k": 1}
    # Cut anywhere before the end, it is not a ZIP that opens: never a short result.
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(b"".join(chunks[:-1])))


def test_png_zip_layouts():
    assert mask_name(12) == "masks/00012.png" and mask_name(12, 3) == "masks/3/00012.png"
    for long_form, names in [(False, ["masks/00004.png"]),
                             (True, ["masks/1/00004.png", "masks/2/00004.png"])]:
        chunks = []
        fmt = PngZip(chunks.append, long_form)
        masks = {1: _mask()} if not long_form else {1: _mask(), 2: _mask(on=5)}
        fmt.add(TrackedFrame(4, masks, {1: 0.5, 2: 0.1}))
        fmt.close({"m": 1})
        zf = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
        assert zf.namelist() == names + ["manifest.json"]
    got, _ = read_masks(b"".join(chunks), long_form=True)
    assert np.array_equal(got[2][4], _mask(on=5))


def test_frame_writer_reports_the_format_error():
    class Broken:
        aborted = False

        def add(self, frame):
            raise ValueError("disk full")

        def abort(self):
            self.aborted = True

    broken = Broken()
    writer = FrameWriter(broken)
    writer.put(TrackedFrame(0, {}, {}))
    time.sleep(0.1)
    with pytest.raises(ValueError, match="disk full"):
        for i in range(20):  # the writer keeps draining, so put never blocks forever
            writer.put(TrackedFrame(i, {}, {}))
    with pytest.raises(ValueError):
        writer.close({"m": 1})
    assert broken.aborted


# --- scheduling ------------------------------------------------------------------------------
def test_scheduler_admits_one_plus_queue_then_503():
    s = Scheduler(max_queue=1)
    a, b = s.admit(Cancellation()), s.admit(Cancellation())
    with pytest.raises(Unavailable) as err:
        s.admit(Cancellation())
    assert err.value.kind == "busy" and err.value.retry_after >= 1
    assert "--max_queue 1" in str(err.value)
    assert s.load == {"running": 0, "queued": 2, "capacity": 2}
    a.release()
    a.release()  # exactly once
    assert s.load["queued"] == 1
    c = s.admit(Cancellation())
    assert s.cancel_all(Cancelled("stop")) == 2 and c.cancellation.cancelled
    b.release(), c.release()
    assert s.wait_idle(0.1)
    s.stop_accepting()
    with pytest.raises(Unavailable, match="shutting down"):
        s.check()
    s.shutdown()


def test_scheduler_runs_jobs_one_at_a_time_off_the_loop():
    s = Scheduler(max_queue=3)
    running, overlap, order = [0], [], []

    def work(i):
        running[0] += 1
        overlap.append(running[0])
        time.sleep(0.05)
        order.append(i)
        running[0] -= 1

    async def main():
        tickets = [s.admit(Cancellation()) for _ in range(3)]
        futures = [s.run(t, lambda i=i: work(i)) for i, t in enumerate(tickets)]
        await asyncio.gather(*futures)

    asyncio.run(main())
    assert order == [0, 1, 2] and max(overlap) == 1
    assert s.load == {"running": 0, "queued": 0, "capacity": 4}
    s.shutdown()


# --- the stream --------------------------------------------------------------------------------
def test_chunk_stream_back_pressure_and_end():
    async def main():
        stream = ChunkStream(asyncio.get_running_loop(), max_pending=2)
        put = []

        def producer():
            for i in range(5):
                stream.put(b"%d" % i)
                put.append(i)
            stream.finish()

        t = threading.Thread(target=producer)
        t.start()
        await asyncio.sleep(0.3)
        assert len(put) == 2  # blocked: the reader is 2 chunks behind
        await stream.wait_first()
        got = [c async for c in stream.chunks()]
        t.join()
        assert got == [b"0", b"1", b"2", b"3", b"4"]

    asyncio.run(main())


def test_chunk_stream_error_and_close():
    async def main():
        stream = ChunkStream(asyncio.get_running_loop(), max_pending=1)
        stream.finish(BadInput("no frames"))
        with pytest.raises(BadInput):
            await stream.wait_first()
        stream2 = ChunkStream(asyncio.get_running_loop(), max_pending=1)
        stream2.put(b"a")
        stream2.close()  # the reader went away: a blocked or later put raises
        with pytest.raises(Cancelled):
            await asyncio.to_thread(stream2.put, b"b")

    asyncio.run(main())


def test_cancellation_first_reason_wins_and_calls_back():
    c, called = Cancellation(), []
    c.on_cancel(lambda: called.append(1))
    c.cancel(DeadlineExceeded("late"))
    c.cancel(Cancelled("hung up"))
    assert called == [1] and isinstance(c.reason(), DeadlineExceeded)
    c.on_cancel(lambda: called.append(2))  # already cancelled: at once
    assert called == [1, 2]
    with pytest.raises(DeadlineExceeded):
        c.raise_if_cancelled()


# --- the frame feed --------------------------------------------------------------------------
def _frames(n, h=24, w=32):
    return [np.full((h, w, 3), i * 10 % 256, np.uint8) for i in range(n)]


class Unseekable(FrameList):
    """Frames without usable timestamps: only a second decode from the start could find them."""

    seekable = False

    def frames_between(self, start, end):
        raise AssertionError("an unseekable source is never read twice: its frames are spilled")


def _read(feed, order):
    return [feed.get(i) for i in order]


def test_feed_forward_then_reverse_without_keeping_frames(tmp_path):
    frames = _frames(80)
    feed = FrameFeed(FrameList(frames), 16, FeedPlan(first=50, prompted=(50,)),
                     spool_dir=str(tmp_path)).start()
    try:
        assert feed.wait_for_count(51) >= 51
        got = _read(feed, range(50, 80))
        with pytest.raises(EndOfVideo):
            feed.get(80)
        assert feed.wait_done() == 80 and feed.num_frames == 80
        got += _read(feed, range(49, -1, -1))  # decoded again, chunk by chunk
        want = [to_model_frame(frames[i], 16) for i in [*range(50, 80), *range(49, -1, -1)]]
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
        assert feed._spill is None and os.listdir(tmp_path) == []
        with pytest.raises(RuntimeError, match="out of order"):
            feed.get(70)
    finally:
        feed.close()


def test_feed_spills_what_it_cannot_seek_and_removes_it(tmp_path):
    frames = _frames(30)
    feed = FrameFeed(Unseekable(frames), 16, FeedPlan(first=20, prompted=(20,)),
                     spool_dir=str(tmp_path)).start()
    try:
        _read(feed, range(20, 30))
        feed.wait_done()
        got = _read(feed, range(19, -1, -1))
        assert all(np.array_equal(got[k], to_model_frame(frames[19 - k], 16)) for k in range(20))
        assert sorted(feed._spill.held) == list(range(20))
        assert os.listdir(tmp_path) == []  # unlinked at once
    finally:
        feed.close()


def test_feed_prompts_far_apart_replay_the_forward_range(tmp_path):
    frames = _frames(60)
    plan = FeedPlan(first=5, prompted=(5, 40))  # 35 frames apart: more than the queue holds
    feed = FrameFeed(FrameList(frames), 16, plan, spool_dir=str(tmp_path)).start()
    try:
        feed.wait_for_count(41)
        # The prompts read their frames before propagation (from kept copies)...
        assert np.array_equal(feed.get(40), to_model_frame(frames[40], 16))
        assert np.array_equal(feed.get(5), to_model_frame(frames[5], 16))
        # ...then the forward pass reads every frame from 5 on, in order.
        got = _read(feed, range(5, 60))
        feed.release_prompt_frames(passed=59, keep=5)
        assert all(np.array_equal(got[k], to_model_frame(frames[5 + k], 16)) for k in range(55))
        assert feed.num_frames == 60 or feed.wait_done() == 60
        assert np.array_equal(feed.get(5), to_model_frame(frames[5], 16))  # reverse starts here
        assert np.array_equal(feed.get(4), to_model_frame(frames[4], 16))
    finally:
        feed.close()


def test_feed_decodes_nothing_past_what_the_plan_reads(tmp_path):
    source = FrameList(_frames(500))
    feed = FrameFeed(source, 16, FeedPlan(first=3, prompted=(3,), forward_last=23),
                     spool_dir=str(tmp_path)).start()
    try:
        _read(feed, range(3, 24))
        assert feed.wait_done() == 24 and feed.num_frames is None  # stopped, count unknown
    finally:
        feed.close()
    back = FrameFeed(source, 16, FeedPlan(first=3, prompted=(3,), forward=False),
                     spool_dir=str(tmp_path)).start()
    try:
        assert back.wait_done() == 16  # at least 16 frames: the model needs min(count, 16)
        assert np.array_equal(back.get(3), to_model_frame(source._frames[3], 16))
        assert np.array_equal(back.get(2), to_model_frame(source._frames[2], 16))
    finally:
        back.close()


def test_feed_cancel_and_decoder_error(tmp_path):
    cancelled = threading.Event()
    feed = FrameFeed(FrameList(_frames(200)), 16, FeedPlan(first=0, prompted=(0,)),
                     spool_dir=str(tmp_path), cancelled=cancelled).start()
    feed.wait_for_count(17)
    cancelled.set()
    time.sleep(0.5)
    with pytest.raises(FeedStopped):
        for i in range(200):
            feed.get(i)
    feed.close()

    class Broken(FrameList):
        def frames(self):
            yield from self._frames
            raise BadInput("corrupt frame")

    feed = FrameFeed(Broken(_frames(3)), 16, FeedPlan(first=0, prompted=(0,)),
                     spool_dir=str(tmp_path)).start()
    with pytest.raises(BadInput, match="corrupt"):
        feed.wait_done()
    feed.close()


@pytest.mark.parametrize("codec,gop,bframes", [("libx264", 12, 2), ("mpeg4", 5, 0),
                                              ("mjpeg", 1, 0)])
def test_video_seeking_gives_the_frames_of_a_sequential_decode(tmp_path, codec, gop, bframes):
    """video.py: any range decoded again from its keyframe equals the first, sequential decode."""
    from model.video import VideoLimits, VideoReader
    from support.videos import write_av_video

    path = write_av_video(str(tmp_path / f"v.{'avi' if codec == 'mjpeg' else 'mp4'}"), 40,
                          codec=codec, gop=gop, bframes=bframes)
    with VideoReader(path, VideoLimits(max_frames=100, max_pixels=10**7)) as reader:
        frames = list(reader.frames())
        assert len(frames) == 40 and reader.seekable
        for start, end in [(0, 40), (13, 17), (30, 31), (6, 29)]:
            again = list(reader.frames_between(start, end))
            assert [i for i, _ in again] == list(range(start, end))
            assert all(np.array_equal(f, frames[i]) for i, f in again)


def test_a_spill_that_would_not_fit_is_refused_with_507(tmp_path, monkeypatch):
    import collections

    import model.spill as spill_mod

    Usage = collections.namedtuple("Usage", "total used free")
    monkeypatch.setattr(spill_mod.shutil, "disk_usage", lambda path: Usage(1, 1, 10 * 2**20))
    feed = FrameFeed(Unseekable(_frames(30)), 256, FeedPlan(first=20, prompted=(20,)),
                     spool_dir=str(tmp_path)).start()
    with pytest.raises(InsufficientStorage, match="MiB are free") as err:
        feed.wait_done()
    feed.close()
    assert verdict(err.value).http == 507 and err.value.retry_after
