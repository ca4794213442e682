"""Fast tier: the answer streams while the job runs, and a hang-up stops the job.

A real uvicorn on loopback in this process (the TestClient buffers whole answers), serving the
app as the server builds it, with a fake engine that takes a set time per frame.
"""

import os
import socket
import threading
import time

import pytest
import requests

from support.fake_engine import FakeEngine
from support.inprocess import Live
from support.videos import write_video
from support.zipcheck import read_masks

DELAY = 0.05  # seconds per frame


@pytest.fixture
def live(tmp_path):
    srv = Live(tmp_path, engine=FakeEngine(delay=DELAY), max_queue=2)
    yield srv.url, srv.model, srv.port, srv.spool
    srv.stop()


def test_first_bytes_arrive_long_before_the_end(live, tmp_path):
    url, *_ = live
    video = write_video(str(tmp_path / "v40.mp4"), 40, 96, 64)
    t0 = time.monotonic()
    with open(video, "rb") as f:
        r = requests.post(url + "/track", params={"points": "20,30"}, data=f, stream=True,
                          timeout=60)
        first, body = None, b""
        for chunk in r.iter_content(chunk_size=None):
            if first is None:
                first = time.monotonic() - t0
            body += chunk
    total = time.monotonic() - t0
    assert len(read_masks(body)[0]) == 40
    assert total >= 40 * DELAY and first < total / 4, (first, total)


def test_hangup_mid_stream_frees_the_device(live, tmp_path):
    url, model, port, spool = live
    data = open(write_video(str(tmp_path / "v200.mp4"), 200, 64, 48), "rb").read()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /track?points=20,30 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        head = s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
    t_hangup = time.monotonic()
    # The job stops within a frame or two (not the ~10 s the other 190 frames would take).
    deadline = time.monotonic() + 5
    while model.scheduler.load["running"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert model.scheduler.load == {"running": 0, "queued": 0, "capacity": 3}
    assert time.monotonic() - t_hangup < 2.0
    after = requests.post(url + "/track", params={"points": "20,30"}, data=data[:0] or
                          open(write_video(str(tmp_path / "v5.mp4"), 5, 64, 48), "rb").read(),
                          timeout=30)
    assert after.status_code == 200 and len(read_masks(after.content)[0]) == 5
    assert sorted(spool.iterdir()) == []


def test_hangup_while_queued_cancels_the_waiting_job(live, tmp_path):
    url, model, port, spool = live
    long_video = open(write_video(str(tmp_path / "v60.mp4"), 60, 64, 48), "rb").read()
    results = {}

    def first():
        results["first"] = requests.post(url + "/track", params={"points": "20,30"},
                                         data=long_video, timeout=60)

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.5)  # the first job is running; the next one will wait in line
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /track?points=20,30 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(long_video)
                  + long_video)
        deadline = time.monotonic() + 5
        while model.scheduler.load["queued"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert model.scheduler.load["queued"] == 1
    # The waiting client hung up: its place is given back before the device gets to it.
    deadline = time.monotonic() + 5
    while model.scheduler.load["queued"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert model.scheduler.load["queued"] == 0
    t.join()
    assert results["first"].status_code == 200
    assert len(read_masks(results["first"].content)[0]) == 60
    time.sleep(0.3)
    assert sorted(spool.iterdir()) == []


def test_deadline_aborts_the_stream_never_a_short_zip(tmp_path):
    import zipfile
    import io

    srv = Live(tmp_path, engine=FakeEngine(delay=DELAY), request_timeout=0.5)
    port = srv.port
    try:
        video = write_video(str(tmp_path / "v60.mp4"), 60, 64, 48)
        body = b""
        with open(video, "rb") as f:
            try:
                r = requests.post(f"http://127.0.0.1:{port}/track", params={"points": "20,30"},
                                  data=f, stream=True, timeout=30)
                for chunk in r.iter_content(chunk_size=None):
                    body += chunk
            except requests.RequestException:
                pass
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(io.BytesIO(body))
    finally:
        srv.stop()
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("sam2_tracker_requests_total",
                                     {"door": "track", "outcome": "timeout"}) >= 1


def test_a_busy_server_refuses_before_reading_the_upload(tmp_path):
    """The place in line is taken before the body is read: with the device busy and no queue,
    the next upload gets 503 + Retry-After having sent only its headers, and nothing spools."""
    srv = Live(tmp_path, engine=FakeEngine(delay=DELAY), max_queue=0)
    port, model = srv.port, srv.model
    try:
        video = open(write_video(str(tmp_path / "v60.mp4"), 60, 64, 48), "rb").read()
        results = {}
        t = threading.Thread(target=lambda: results.update(r=requests.post(
            f"http://127.0.0.1:{port}/track", params={"points": "20,30"}, data=video,
            timeout=60)))
        t.start()
        while model.scheduler.load["running"] == 0:
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /track?points=1,1 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/octet-stream\r\nContent-Length: 104857600\r\n\r\n")
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 503") and b"retry-after" in head.lower(), head[:300]
        assert len(os.listdir(tmp_path / "spool")) == 1  # only the running job's upload
        t.join()
        assert results["r"].status_code == 200
    finally:
        srv.stop()
