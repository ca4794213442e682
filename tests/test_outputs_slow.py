"""The palette, rle and preview answers from the real server with real SAM2 (random weights): the
README's examples verbatim, the formats against each other on the same request, and preview.mp4
in a real browser (Debian's chromium + chromium-driver, driven by selenium)."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

from support import REPO
from support.outputcheck import (bbox_of, browser_paths, check_colours, play_in_browser,
                                 read_palette, read_rle, smallest_id_wins, video_facts,
                                 video_frame, zip_entry)
from support.videos import decode_rgb, write_video
from support.zipcheck import read_masks

pytestmark = pytest.mark.slow  # the real server process with real SAM2

# On the 12-frame 320x192 test video: the red disc (frame 4) and the blue square (frame 7).
PROMPTS = [{"obj_id": 2, "frame_idx": 7, "points": [[178, 43]], "name": "square"},
           {"obj_id": 1, "frame_idx": 4, "points": [[134, 96]], "name": "disc"}]
N = 12


@pytest.fixture(scope="module")
def video12(video_dir):
    return write_video(os.path.join(video_dir, "outputs", "v12.mp4"), N)


@pytest.fixture(scope="module")
def readme_video(video_dir):
    """The README's examples click at 320,180 on frame 0 of a 640x360 video.mp4 (12 fps)."""
    return write_video(os.path.join(video_dir, "outputs-readme", "video.mp4"), 12, 640, 360)


def post(server, path, params, **kw):
    with open(path, "rb") as f:
        return requests.post(server.url + "/track", params=params, data=f, timeout=600,
                             headers={"Content-Type": "application/octet-stream"}, **kw)


# --- the README, verbatim -------------------------------------------------------------------
def readme_block(name: str) -> str:
    text = open(os.path.join(REPO, "README.md")).read()
    m = re.search(r"<!-- example: " + re.escape(name) + r" -->\s*```(\w*)\n(.*?)```", text, re.S)
    assert m, f"README has no example block {name!r}"
    return m.group(1), m.group(2)


def run_readme(names, server, readme_video, workdir):
    """Run the README's blocks one after the other in one folder holding video.mp4."""
    workdir.mkdir()
    shutil.copy(readme_video, workdir / "video.mp4")
    outputs = []
    for name in names:
        lang, block = readme_block(name)
        block = block.replace("localhost:8000", f"127.0.0.1:{server.http_port}")
        cmd = [sys.executable, "-c", block] if lang == "python" else \
            ["bash", "-euo", "pipefail", "-c", block]
        out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, (name, out.stderr[-3000:])
        outputs.append(out.stdout)
    return outputs


def test_readme_palette_examples(server, readme_video, tmp_path):
    _, printed = run_readme(["palette", "palette-read"], server, readme_video, tmp_path / "p")
    labels, manifest, _ = read_palette((tmp_path / "p" / "masks.zip").read_bytes())
    assert sorted(labels) == list(range(12)) and labels[0].shape == (360, 640)
    assert [o["obj_id"] for o in manifest["objects"]] == [1, 2]
    counts = {int(i): int((labels[0] == i).sum()) for i in np.unique(labels[0]) if i}
    assert printed.strip() == f"P {counts}"


def test_readme_rle_examples(server, readme_video, tmp_path):
    _, printed = run_readme(["rle", "rle-read"], server, readme_video, tmp_path / "r")
    lines, masks, manifest = read_rle((tmp_path / "r" / "masks.ndjson").read_bytes())
    assert len(lines) == 12 and printed.strip() == "12 frames"


def test_readme_preview_example(server, readme_video, tmp_path):
    run_readme(["preview"], server, readme_video, tmp_path / "v")
    facts = video_facts(str(tmp_path / "v" / "preview.mp4"))
    assert (facts["codec"], facts["pix_fmt"], facts["frames"], facts["fps"]) == (
        "h264", "yuv420p", 12, 12)


def test_readme_progress_example(server, readme_video, tmp_path):
    (printed,) = run_readme(["progress"], server, readme_video, tmp_path / "g")
    assert printed.strip().endswith("12/12 frames"), printed
    assert len(read_rle((tmp_path / "g" / "masks.ndjson").read_bytes())[0]) == 12


# --- the formats agree, with the real model -------------------------------------------------
@pytest.fixture(scope="module")
def png_answer(server, video12):
    r = post(server, video12, {"prompts": json.dumps(PROMPTS)})
    assert r.status_code == 200, r.text
    return read_masks(r.content, long_form=True)


def test_palette_is_the_union_of_the_png_masks(server, video12, png_answer):
    png, _ = png_answer
    r = post(server, video12, {"prompts": json.dumps(PROMPTS), "format": "palette"})
    assert r.status_code == 200, r.text
    labels, manifest, _ = read_palette(r.content)
    assert sorted(labels) == list(range(N))
    overlaps = 0
    for f in range(N):
        assert np.array_equal(labels[f], smallest_id_wins({o: png[o][f] for o in png},
                                                          (192, 320))), f
        overlaps += int(((png[1][f] > 0) & (png[2][f] > 0)).sum())
    assert overlaps > 0  # random weights: masks are large, so the rule is exercised


def test_rle_decodes_to_the_png_masks_and_streams(server, video12, png_answer):
    png, _ = png_answer
    t0 = time.monotonic()
    with open(video12, "rb") as f:
        r = requests.post(server.url + "/track", data=f, stream=True, timeout=600,
                          params={"prompts": json.dumps(PROMPTS), "format": "rle"},
                          headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200 and r.headers["x-expected-frames"] == str(N)
        arrivals = [(time.monotonic() - t0, line) for line in r.iter_lines() if line]
    total = time.monotonic() - t0
    # The first line comes after one frame's work, long before the 12 frames (x2 objects) end.
    assert arrivals[0][0] < total / 2, (arrivals[0][0], total)
    lines, masks, manifest = read_rle(b"\n".join(line for _, line in arrivals))
    assert [x["frame_idx"] for x in lines] == [*range(4, N), *range(3, -1, -1)]
    scores = []
    for line in lines:
        f = line["frame_idx"]
        for obj in line["objects"]:
            mask = png[obj["obj_id"]][f]
            assert np.array_equal(masks[f][obj["obj_id"]], mask), (f, obj["obj_id"])
            assert obj["area"] == int((mask > 0).sum()) and obj["bbox"] == bbox_of(mask)
            assert math.isfinite(obj["score"])
            scores.append(obj["score"])
    assert len(set(scores)) > 1  # the model's logit, frame by frame
    assert manifest["masks"]["count"] == N


# --- preview.mp4, checked by PyAV and played by a browser ---------------------------------
def test_preview_mp4_is_h264_in_the_videos_fps_and_plays_in_a_browser(server, video12,
                                                                       tmp_path):
    r = post(server, video12, {"frame_idx": 4, "points": "134,96", "preview": "mp4"})
    assert r.status_code == 200, r.text
    masks, manifest = read_masks(r.content)
    path = tmp_path / "preview.mp4"
    path.write_bytes(zip_entry(r.content, "preview.mp4"))
    facts = video_facts(str(path))
    assert (facts["codec"], facts["pix_fmt"], facts["frames"], facts["fps"]) == (
        "h264", "yuv420p", N, 12)
    assert (facts["width"], facts["height"]) == (320, 192)
    originals = decode_rgb(video12)
    checked = sum(check_colours(video_frame(str(path), f), originals[f],
                                (masks[f] > 0).astype(np.uint8)) for f in (0, 3, 4, N - 1))
    assert checked >= 2, checked
    if browser_paths() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium and chromium-driver (apt-get install "
                        "chromium chromium-driver)")
        pytest.skip("no chromium + chromedriver here (apt-get install chromium chromium-driver)")
    played = play_in_browser(str(path))
    assert played["kind"] == "played" and played["error"] is None, played
    assert abs(played["duration"] - N / 12) < 0.1 and played["time"] > 0, played
    assert (played["width"], played["height"]) == (320, 192)
