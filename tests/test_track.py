"""POST /track end to end: a real server process, real video files, the real ZIP.

The masks are compared with the plain SAM2 library run in this process on the same checkpoint.
"""

import io
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
import requests

from support import IMAGE_SIZE
from support.metrics import metric
from support.readme import readme_block
from support.reference import build_library_predictor, iou, track_with_library
from support.videos import decode_rgb, write_video
from support.zipcheck import read_masks

pytestmark = pytest.mark.slow  # the real server process with real SAM2

POINT = (120, 96)  # on the red disc around frame 8 of the 24-frame test video


@pytest.fixture(scope="module")
def video24(video_dir):
    return write_video(os.path.join(video_dir, "v24.mp4"), 24)


@pytest.fixture(scope="module")
def library(checkpoint):
    return build_library_predictor(checkpoint, IMAGE_SIZE)


def post_raw(server, path, params, **kw):
    with open(path, "rb") as f:
        return requests.post(server.url + "/track", params=params, data=f,
                             headers={"Content-Type": "application/octet-stream"}, timeout=600,
                             **kw)


@pytest.fixture(scope="module")
def readme_video(video_dir):
    """The README's examples click at 320,180 on frame 0 of a 640x360 video.mp4."""
    return write_video(os.path.join(video_dir, "readme", "video.mp4"), 12, 640, 360)


def _run_readme_example(name, server, readme_video, tmp_path):
    workdir = tmp_path / name
    workdir.mkdir()
    shutil.copy(readme_video, workdir / "video.mp4")
    block = readme_block(name).replace("localhost:8000", f"127.0.0.1:{server.http_port}") \
        .replace("localhost:8081", f"127.0.0.1:{server.grpc_port}")
    if name in ("python", "grpc"):
        cmd = [sys.executable, "-c", block]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", block]
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return (workdir / "masks.zip").read_bytes()


@pytest.mark.parametrize("name", ["wget", "curl", "python", "grpc"])
def test_readme_examples_return_one_mask_per_frame(name, server, readme_video, tmp_path):
    """The README's wget (raw body), curl (multipart) and requests examples, run verbatim."""
    masks, manifest = read_masks(_run_readme_example(name, server, readme_video, tmp_path))
    _check_readme_masks(masks, manifest, readme_video)


def test_readme_v2_example(server, readme_video, tmp_path):
    workdir = tmp_path / "v2"
    workdir.mkdir()
    shutil.copy(readme_video, workdir / "video.mp4")
    block = readme_block("v2").replace("localhost:8000", f"127.0.0.1:{server.http_port}")
    out = subprocess.run([sys.executable, "-c", block], cwd=workdir, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f"{len(decode_rgb(readme_video))} masks"


def _check_readme_masks(masks, manifest, readme_video):
    n = len(decode_rgb(readme_video))
    assert sorted(masks) == list(range(n))
    assert all(m.shape == (360, 640) for m in masks.values())
    assert manifest["video"]["frame_count"] == n
    assert (manifest["video"]["width"], manifest["video"]["height"]) == (640, 360)


def test_masks_identical_to_plain_library(server, video24, library):
    """Same frames, same prompt, same checkpoint: the service's masks are the library's."""
    r = post_raw(server, video24, {"frame_idx": 8, "points": "%d,%d" % POINT})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    masks, manifest = read_masks(r.content)
    ref = track_with_library(library, decode_rgb(video24), 8, points=[POINT])
    assert sorted(masks) == sorted(ref) == list(range(24))
    for f in ref:
        assert np.array_equal(masks[f], ref[f]), f"frame {f}: IoU {iou(masks[f], ref[f]):.4f}"
    assert manifest["prompt"]["frame_idx"] == 8
    assert manifest["model"]["image_size"] == IMAGE_SIZE
    assert manifest["masks"]["count"] == 24


def test_masks_match_library_readme_jpeg_path(server, video24, library):
    """The library as its README feeds it (a JPEG folder): close, not identical (lossy JPEG)."""
    r = post_raw(server, video24, {"frame_idx": 3, "points": ["60,96", "70,100"]})
    masks, _ = read_masks(r.content)
    ref = track_with_library(library, decode_rgb(video24), 3, points=[(60, 96), (70, 100)],
                             same_tensors=False)
    ious = [iou(masks[f], ref[f]) for f in ref]
    assert min(ious) >= 0.95 and np.mean(ious) >= 0.98, ious


def test_negative_label_and_box_are_used(server, video24, library):
    frames = decode_rgb(video24)
    base = read_masks(post_raw(server, video24, {"frame_idx": 8,
                                                 "points": ["120,96", "250,60"]}).content)[0]
    neg = read_masks(post_raw(server, video24, {"frame_idx": 8, "points": ["120,96", "250,60"],
                                                "labels": ["1", "0"]}).content)[0]
    boxed = read_masks(post_raw(server, video24, {"frame_idx": 8, "points": ["120,96", "250,60"],
                                                  "box": "80,60,170,140"}).content)[0]
    changed = lambda a, b: sum(not np.array_equal(a[f], b[f]) for f in a)  # noqa: E731
    assert changed(base, neg) > 0, "a negative label did not change any mask"
    assert changed(base, boxed) > 0, "a box did not change any mask"
    ref_neg = track_with_library(library, frames, 8, points=[(120, 96), (250, 60)], labels=[1, 0])
    ref_box = track_with_library(library, frames, 8, points=[(120, 96), (250, 60)],
                                 box=(80, 60, 170, 140))
    assert all(np.array_equal(neg[f], ref_neg[f]) for f in ref_neg)
    assert all(np.array_equal(boxed[f], ref_box[f]) for f in ref_box)


def test_box_alone_is_a_prompt(server, video24):
    r = post_raw(server, video24, {"frame_idx": 0, "box": "20,40,120,150"})
    assert r.status_code == 200, r.text
    masks, manifest = read_masks(r.content)
    assert len(masks) == 24 and manifest["prompt"]["box"] == [20, 40, 120, 150]


def test_first_zip_bytes_arrive_before_half_the_request(server, video24):
    t0 = time.monotonic()
    with open(video24, "rb") as f:
        r = requests.post(server.url + "/track", params={"frame_idx": 0, "points": "60,96"},
                          data=f, headers={"Content-Type": "video/mp4"}, stream=True, timeout=600)
        assert r.status_code == 200
        body = io.BytesIO()
        first = None
        for chunk in r.iter_content(chunk_size=None):
            if first is None and chunk:
                first = time.monotonic() - t0
            body.write(chunk)
    total = time.monotonic() - t0
    assert first is not None and first < total / 2, (first, total)
    assert zipfile.ZipFile(body).namelist()[0] == "masks/00000.png"


def test_health_answers_fast_while_a_job_runs(server, video_dir):
    long_video = write_video(os.path.join(video_dir, "v48.mp4"), 48)
    result = {}

    def run():
        result["r"] = post_raw(server, long_video, {"frame_idx": 24, "points": "160,96"})

    t = threading.Thread(target=run)
    t.start()
    time.sleep(1.5)
    latencies = []
    while t.is_alive() and len(latencies) < 10:
        t0 = time.monotonic()
        h = requests.get(server.url + "/health", timeout=5)
        latencies.append(time.monotonic() - t0)
        assert h.status_code == 200 and h.json()["queue"]["running"] == 1
        time.sleep(0.3)
    t.join()
    assert result["r"].status_code == 200
    assert latencies and max(latencies) < 1.0, latencies


def test_metrics_move_after_a_request(server, video24):
    before = requests.get(server.url + "/metrics", timeout=5).text
    r = post_raw(server, video24, {"frame_idx": 0, "points": "60,96"})
    assert r.status_code == 200
    bad = requests.post(server.url + "/track", data=b"x" * 10, timeout=30)
    assert bad.status_code in (400, 415)
    after = requests.get(server.url + "/metrics", timeout=5).text
    assert metric(after, "sam2_tracker_requests_total", door="track", outcome="ok") == \
        metric(before, "sam2_tracker_requests_total", door="track", outcome="ok") + 1
    assert metric(after, "sam2_tracker_frames_tracked_total") == \
        metric(before, "sam2_tracker_frames_tracked_total") + 24
    assert metric(after, "sam2_tracker_tracking_seconds_count") == \
        metric(before, "sam2_tracker_tracking_seconds_count") + 1
    assert metric(after, "sam2_tracker_requests_total", door="track") >= \
        metric(before, "sam2_tracker_requests_total", door="track") + 2
    for name in ("sam2_tracker_jobs_in_flight", "sam2_tracker_queue_depth",
                 "sam2_tracker_frames_per_second_count", "sam2_tracker_video_frames_count",
                 "request_predict_seconds_count"):
        assert name in after, name


def test_reverse_pass_decodes_h264_again_with_identical_masks(server, video_dir, library):
    """H.264 with B-frames and 12-frame GOPs, clicked on frame 30: the 30 earlier frames are
    decoded again chunk by chunk from keyframes (nothing is spilled) and the masks are the
    library's on the frames a sequential decode gives."""
    from support.videos import write_av_video

    video = write_av_video(os.path.join(video_dir, "gop12.mp4"), 40, 320, 192, gop=12, bframes=2)
    r = post_raw(server, video, {"frame_idx": 30, "points": "%d,%d" % POINT})
    assert r.status_code == 200, r.text
    masks, manifest = read_masks(r.content)
    assert manifest["video"]["codec"] == "h264" and manifest["video"]["frame_count"] == 40
    frames = decode_rgb(video)
    ref = track_with_library(library, frames, 30, points=[POINT])
    assert sorted(masks) == sorted(ref) == list(range(40))
    for f in ref:
        assert np.array_equal(masks[f], ref[f]), f"frame {f}: IoU {iou(masks[f], ref[f]):.4f}"
    assert server.spool_files() == []
