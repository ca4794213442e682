"""Fast tier: kept videos (POST /videos and friends) and tracking one without uploading again."""

import io
import json
import os
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from support.inprocess import build
from support.videos import decode_rgb, write_video
from support.zipcheck import read_masks


@pytest.fixture
def client(tmp_path):
    app, model, _ = build(tmp_path, video_cache_mb=1, video_cache_ttl=60)
    with TestClient(app) as c:
        yield c, model, tmp_path / "spool"
    model.store.close()


def _upload(client, path):
    r = client.post("/videos", content=open(path, "rb").read(),
                    headers={"Content-Type": "video/mp4"})
    assert r.status_code == 201, r.text
    return r.json()


def _indexed(client, video_id, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get(f"/videos/{video_id}").json()
        if info["frame_count"] is not None:
            return info
        time.sleep(0.05)
    raise AssertionError("never indexed")


def test_keep_show_segment_and_track_a_video(client, tmp_path):
    c, model, spool = client
    path = write_video(str(tmp_path / "v.mp4"), 12)
    info = _upload(c, path)
    vid = info["video_id"]
    assert (info["width"], info["height"]) == (320, 192)
    assert _indexed(c, vid)["frame_count"] == 12
    frames = decode_rgb(path)
    for i in (0, 7, 11):
        r = c.get(f"/videos/{vid}/frames/{i}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        shown = np.asarray(Image.open(io.BytesIO(r.content))).astype(int)
        errors = [np.abs(shown - f.astype(int)).mean() for f in frames]
        assert int(np.argmin(errors)) == i and errors[i] < 4  # the same frame, JPEG-close
    small = c.get(f"/videos/{vid}/frames/3", params={"max_width": 160})
    assert Image.open(io.BytesIO(small.content)).size == (160, 96)
    assert c.get(f"/videos/{vid}/frames/12").status_code == 400

    seg = c.post(f"/videos/{vid}/segment", params={"prompts": json.dumps(
        [{"obj_id": 2, "frame_idx": 5, "points": [[60, 96]]},
         {"obj_id": 5, "frame_idx": 5, "box": [10, 10, 100, 100]}])})
    assert seg.status_code == 200 and seg.headers["x-objects"] == "2,5"
    ids = np.asarray(Image.open(io.BytesIO(seg.content)))
    assert ids.shape == (192, 320) and set(np.unique(ids)) <= {0, 2, 5}
    assert (ids == 2).any()
    both = c.post(f"/videos/{vid}/segment", params={"prompts": json.dumps(
        [{"obj_id": 1, "frame_idx": 1, "points": [[1, 1]]},
         {"obj_id": 2, "frame_idx": 2, "points": [[1, 1]]}])})
    assert both.status_code == 400 and "one frame" in both.json()["error"]

    for _ in range(2):  # tracked twice, never uploaded again
        r = c.post("/track", params={"video_id": vid, "points": "60,96", "frame_idx": 4})
        assert r.status_code == 200, r.text
        assert sorted(read_masks(r.content)[0]) == list(range(12))
    assert os.listdir(spool) == ["videos"] and len(os.listdir(spool / "videos")) == 1
    assert c.delete(f"/videos/{vid}").status_code == 204
    assert os.listdir(spool / "videos") == []
    gone = c.post("/track", params={"video_id": vid, "points": "1,1"})
    assert gone.status_code == 404 and "upload it again" in gone.json()["error"]


def test_store_expires_and_makes_room(tmp_path):
    app, model, _ = build(tmp_path, video_cache_mb=1, video_cache_ttl=0.3)
    with TestClient(app) as c:
        a = _upload(c, write_video(str(tmp_path / "a.mp4"), 6))["video_id"]
        time.sleep(0.5)
        assert c.get(f"/videos/{a}").status_code == 404  # expired
        big = write_video(str(tmp_path / "big.mp4"), 60, 320, 192)
        size = os.path.getsize(big)
        ids = [_upload(c, big)["video_id"] for _ in range(2 * 2**20 // size + 2)]
        kept = [i for i in ids if c.get(f"/videos/{i}").status_code == 200]
        assert kept and kept == ids[-len(kept):]  # the oldest went first, within 1 MiB
        assert sum(os.path.getsize(p) for p in (tmp_path / "spool" / "videos").iterdir()) \
            <= 2**20
    model.store.close()


def test_store_off(tmp_path):
    app, model, _ = build(tmp_path, video_cache_mb=0)
    with TestClient(app) as c:
        r = c.post("/videos", content=b"xx")
        assert r.status_code == 404 and "--video_cache_mb 0" in r.json()["error"]
        assert os.listdir(tmp_path / "spool") == []
