"""Bad input, table-driven: each gets its 4xx and a message naming the problem; afterwards the
server is healthy and its descriptors and temp files are back where they were."""

import io
import os
import socket
import time

import cv2
import numpy as np
import pytest
import requests
from PIL import Image

from support.videos import write_video

pytestmark = pytest.mark.slow  # the real server process with real SAM2

H, W = 192, 320  # the test video's size


@pytest.fixture(scope="module")
def files(video_dir):
    good = write_video(os.path.join(video_dir, "err12.mp4"), 12)
    data = open(good, "rb").read()
    png = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(png, "PNG")
    jpg = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(jpg, "JPEG")
    zero = os.path.join(video_dir, "zero.avi")
    cv2.VideoWriter(zero, cv2.VideoWriter_fourcc(*"MJPG"), 12, (W, H)).release()
    return {
        "good": data,
        "truncated": data[: len(data) // 3],
        "random": np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        "text": b"hello, this is not a video\n" * 20,
        "png": png.getvalue(),
        "jpeg": jpg.getvalue(),
        "zero_frames": open(zero, "rb").read(),
    }


P = "points"
# (case id, body key, query, expected status, words the error must contain)
RAW_CASES = [
    ("empty body", "empty", [(P, "10,10")], 400, "empty"),
    ("random bytes", "random", [(P, "10,10")], 400, "not a video"),
    ("truncated video", "truncated", [(P, "10,10")], 400, "not a video"),
    ("text as video", "text", [(P, "10,10")], 415, "text"),
    ("png as video", "png", [(P, "10,10")], 415, "PNG image"),
    ("jpeg as video", "jpeg", [(P, "10,10")], 415, "JPEG image"),
    ("zero frames", "zero_frames", [(P, "10,10")], 400, "no decodable frames"),
    ("no prompt", "good", [], 400, "points=x,y"),
    ("frame_idx negative", "good", [("frame_idx", "-1"), (P, "10,10")], 400, "non-negative"),
    ("frame_idx not int", "good", [("frame_idx", "abc"), (P, "10,10")], 400, "integer"),
    ("frame_idx float", "good", [("frame_idx", "1.5"), (P, "10,10")], 400, "integer"),
    ("frame_idx past end", "good", [("frame_idx", "12"), (P, "10,10")], 400, "0..11"),
    ("point x;y", "good", [(P, "10;10")], 400, "'x,y'"),
    ("point a,b", "good", [(P, "a,b")], 400, "not a number"),
    ("point 3 values", "good", [(P, "1,2,3")], 400, "'x,y'"),
    ("point NaN", "good", [(P, "nan,5")], 400, "finite"),
    ("point inf", "good", [(P, "inf,5")], 400, "finite"),
    ("point negative", "good", [(P, "-1,5")], 400, "negative"),
    ("point outside", "good", [(P, "400,50")], 400, "0..320"),
    ("point below", "good", [(P, "50,193")], 400, "0..192"),
    ("label count", "good", [(P, "10,10"), (P, "20,20"), ("labels", "1")], 400, "1 labels for 2"),
    ("label value", "good", [(P, "10,10"), ("labels", "2")], 400, "1 (on the object) or 0"),
    ("labels alone", "good", [("labels", "1")], 400, "without points"),
    ("box 3 values", "good", [("box", "1,2,3")], 400, "four numbers"),
    ("box x2<x1", "good", [("box", "100,10,50,80")], 400, "x2 > x1"),
    ("box outside", "good", [("box", "10,10,500,80")], 400, "outside"),
    ("too many points", "good", [(P, "5,5")] * 65, 400, "at most 64"),
    ("unknown param", "good", [(P, "5,5"), ("point", "5,5")], 400, "unknown query parameter"),
]


def post(server, body: bytes, query, content_type="application/octet-stream"):
    return requests.post(server.url + "/track", params=query, data=body, timeout=120,
                         headers={"Content-Type": content_type, "Connection": "close"})


def settle(server, fds: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.open_fds() > fds:
        time.sleep(0.1)
    return server.open_fds()


@pytest.fixture(scope="module")
def baseline(server, files):
    # One good request first, so lazily opened resources are counted in the baseline.
    assert post(server, files["good"], [(P, "10,10")]).status_code == 200
    time.sleep(0.5)
    return {"fds": server.open_fds(), "spool": server.spool_files()}


@pytest.mark.parametrize("case,body,query,status,words", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_bad_input(server, files, baseline, case, body, query, status, words):
    data = b"" if body == "empty" else files[body]
    r = post(server, data, query)
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert words.lower() in error.lower(), error
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
    assert settle(server, baseline["fds"]) <= baseline["fds"], server.log()[-2000:]
    assert server.spool_files() == baseline["spool"]


MULTIPART_CASES = [
    ("no video field", {"file": ("v.mp4", b"xx")}, 400, "no field 'video'"),
    ("empty video field", {"video": ("v.mp4", b"")}, 400, "'video' is empty"),
]


@pytest.mark.parametrize("case,files_,status,words", MULTIPART_CASES,
                         ids=[c[0] for c in MULTIPART_CASES])
def test_bad_multipart(server, baseline, case, files_, status, words):
    r = requests.post(server.url + "/track", params={P: "10,10"}, files=files_, timeout=60)
    assert r.status_code == status and words in r.json()["error"], r.text
    assert server.spool_files() == baseline["spool"]


def test_wrong_media_type(server, files, baseline):
    for ctype in ("application/json", "text/plain", "image/png"):
        r = post(server, files["good"], [(P, "10,10")], content_type=ctype)
        assert r.status_code == 415 and "Content-Type" in r.json()["error"], r.text
    assert server.spool_files() == baseline["spool"]


def test_upload_over_limit_is_refused_without_reading_it(make_server, files):
    srv = make_server("--max_upload_mb", "1")
    big = b"\x00" * (3 * 1024 * 1024)
    # Declared length over the limit: 413 before the body is read.
    r = post(srv, big, [(P, "10,10")])
    assert r.status_code == 413 and "1 MiB" in r.json()["error"]
    # Chunked upload (no Content-Length): 413 as soon as the running count passes the limit.
    r = requests.post(srv.url + "/track", params={P: "10,10"}, timeout=60,
                      data=(big[i:i + 65536] for i in range(0, len(big), 65536)))
    assert r.status_code == 413
    # The server answers before the client has sent the rest: a raw socket sees the 413
    # having sent only the headers and a first slice of a declared 3 MiB body.
    with socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as s:
        s.sendall(b"POST /track?points=1,1 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/octet-stream\r\nContent-Length: 3145728\r\n\r\n" + big[:1000])
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert requests.get(srv.url + "/health", timeout=5).status_code == 200
    assert srv.spool_files() == []
    ok = post(srv, files["good"], [(P, "10,10")])
    assert ok.status_code == 200


def test_limits_on_frames_and_pixels(make_server, video_dir):
    srv = make_server("--max_frames", "10", "--max_pixels", str(100 * 100))
    small = write_video(os.path.join(video_dir, "small40.mp4"), 12, 96, 64)
    r = post(srv, open(small, "rb").read(), [(P, "10,10")])
    assert r.status_code == 413 and "--max_frames" in r.json()["error"], r.text
    big = write_video(os.path.join(video_dir, "wide.mp4"), 3, 320, 192)
    r = post(srv, open(big, "rb").read(), [(P, "10,10")])
    assert r.status_code == 413 and "--max_pixels" in r.json()["error"], r.text
    assert srv.spool_files() == []
