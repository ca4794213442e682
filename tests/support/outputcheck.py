"""Reading the palette, rle and preview answers back as a user would: PIL, pycocotools, PyAV and
a real browser; nothing from the `model` package."""

import io
import json
import os
import shutil
import zipfile
from fractions import Fraction

import numpy as np
from PIL import Image

# sha256 of DAVIS_PALETTE in facebookresearch/sam2 tools/vos_inference.py at 2b90b9f (768 bytes).
SAM2_DAVIS_PALETTE_SHA256 = "ec76f86cfddd0f4c0768796cda862d8f5099af416b298a406db7e84b55136fc9"
# Its first entries, as sam2's literal spells them (obj_id -> r, g, b).
DAVIS_COLOURS = {1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                 5: (128, 0, 128), 6: (0, 128, 128), 7: (128, 128, 128)}


def smallest_id_wins(per_object: dict, shape) -> np.ndarray:
    """The overlap rule, written the other way round from the service: each pixel takes the
    smallest obj_id whose mask covers it."""
    labels = np.zeros(shape, np.uint8)
    for obj_id in sorted(per_object):
        labels[(labels == 0) & (per_object[obj_id] > 0)] = obj_id
    return labels


def read_palette(zip_bytes: bytes):
    """({frame: uint8 label map}, manifest, names in order). Asserts mode P + the DAVIS palette."""
    import hashlib

    zf = zipfile.ZipFile(io.BytesIO(zip_bytes))
    assert zf.testzip() is None
    labels, names = {}, zf.namelist()
    for name in names:
        if not name.startswith("masks/"):
            continue
        img = Image.open(io.BytesIO(zf.read(name)))
        assert img.format == "PNG" and img.mode == "P", (name, img.mode)
        palette = bytes(img.getpalette())
        assert hashlib.sha256(palette).hexdigest() == SAM2_DAVIS_PALETTE_SHA256, name
        labels[int(name[len("masks/"):-len(".png")])] = np.asarray(img)
    return labels, json.loads(zf.read("manifest.json")), names


def read_rle(body: bytes):
    """(frame lines in order, {frame: {obj_id: 0/255 mask}}, manifest) with pycocotools."""
    from pycocotools import mask as coco_mask

    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert "manifest" in lines[-1] and all("manifest" not in x for x in lines[:-1])
    masks = {}
    for line in lines[:-1]:
        frame = {}
        for obj in line["objects"]:
            rle = {"size": obj["rle"]["size"], "counts": obj["rle"]["counts"].encode()}
            frame[obj["obj_id"]] = coco_mask.decode(rle).astype(np.uint8) * 255
        masks[line["frame_idx"]] = frame
    return lines[:-1], masks, lines[-1]["manifest"]


def bbox_of(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]


def zip_entry(zip_bytes: bytes, name: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(zip_bytes)).read(name)


def video_facts(path: str) -> dict:
    """What PyAV (FFmpeg's libraries, as ffprobe) says about a video, frames counted by decoding."""
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        return {"codec": s.codec_context.name, "pix_fmt": s.codec_context.pix_fmt,
                "width": s.codec_context.width, "height": s.codec_context.height,
                "fps": Fraction(s.average_rate), "frames": frames,
                "profile": s.codec_context.profile}


def video_frame(path: str, index: int) -> np.ndarray:
    import av

    with av.open(path) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise IndexError(index)


def check_colours(frame: np.ndarray, original: np.ndarray, labels: np.ndarray) -> int:
    """Inside an object (away from its outline): half the picture, half the palette colour;
    outside every object: the picture. Compared as local means (7x7), which H.264's losses on
    the test videos' pixel noise leave within a few levels. Returns the objects checked (those
    with an inside left after taking 5 pixels off their border)."""
    import cv2

    def local(img):
        return cv2.blur(img.astype(np.float32), (7, 7))

    kernel = np.ones((11, 11), np.uint8)
    got = local(frame)
    outside = cv2.erode((labels == 0).astype(np.uint8), kernel) > 0
    if outside.sum() > 50:
        assert np.abs(got - local(original))[outside].mean() < 3
    checked = 0
    for obj_id in set(np.unique(labels).tolist()) - {0}:
        inside = cv2.erode((labels == obj_id).astype(np.uint8), kernel) > 0
        if inside.sum() < 50:
            continue
        expected = local((original.astype(np.float32) + DAVIS_COLOURS[obj_id]) / 2)
        assert np.abs(got - expected)[inside].mean() < 4, obj_id
        assert np.abs(got - local(original))[inside].mean() > 20, obj_id
        checked += 1
    return checked


# --- a real browser -------------------------------------------------------------------------
_PLAY = """
const [src, done] = arguments;
const v = document.createElement('video');
v.muted = true;
const report = (kind) => done({kind, duration: v.duration, error: v.error && v.error.code,
                               width: v.videoWidth, height: v.videoHeight, time: v.currentTime});
v.addEventListener('error', () => report('error'));
v.addEventListener('loadeddata', () => v.play()
    .then(() => setTimeout(() => report('played'), 300))
    .catch((e) => done({kind: 'play failed', error: String(e)})));
v.src = src;
document.body.appendChild(v);
"""


def browser_paths():
    """(chromium, chromedriver) from Debian's packages, or None."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def play_in_browser(video_path: str) -> dict:
    """Headless Chromium loads the file in a <video> element and plays it for 0.3 s."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = browser_paths()
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    page = os.path.join(os.path.dirname(video_path), "page.html")
    with open(page, "w") as f:
        f.write("<!doctype html><body></body>")
    browser = webdriver.Chrome(options=options, service=Service(driver))
    try:
        browser.set_script_timeout(30)
        browser.get("file://" + page)
        return browser.execute_async_script(_PLAY, "file://" + video_path)
    finally:
        browser.quit()
