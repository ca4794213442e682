"""The web page in a real browser: Debian's headless Chromium driven by selenium, against the real
server with real SAM2 (random weights). A user's story: open a video, move to a frame, click,
see the mask, add a second object with a box, Track, watch the masks arrive, download them.

The video is H.264 at a variable frame rate whose frames show their own index, so "the frame the
page shows is the frame the server tracks from" is checked on pixels, not on the page's word."""

import base64
import io
import json
import os
import shutil
import time
import zipfile

import numpy as np
import pytest
import requests
from PIL import Image

from support.outputcheck import browser_paths, read_rle, smallest_id_wins
from support.server import ServerProcess
from support.videos import frames_of, read_index, write_vfr_video

pytestmark = pytest.mark.slow

N, W, H = 16, 256, 160
SHOWN = 5  # the frame the user clicks on


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if browser_paths() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium and chromium-driver (apt-get install "
                        "chromium chromium-driver)")
        pytest.skip("no chromium + chromedriver here (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths()
    downloads = tmp_path_factory.mktemp("downloads")
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    """Its own server: the videos the page keeps stay in its store (--video_cache_ttl), and the
    suite's shared server checks that its spool dir ends empty."""
    srv = ServerProcess(checkpoint, str(tmp_path_factory.mktemp("page-server"))).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory) -> str:
    return write_vfr_video(str(tmp_path_factory.mktemp("page") / "vfr.mp4"), N, W, H)


# --- driving the page ----------------------------------------------------------------------
def wait_for(driver, condition, timeout=60, what="the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(condition)
        if value:
            return value
        time.sleep(0.1)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for {what}: {condition!r}; status: {status!r}")


def stage(driver, key):
    return driver.execute_script(f"return document.getElementById('stage').dataset.{key}")


def canvas_rgba(driver, canvas_id) -> np.ndarray:
    """The canvas's own pixels (its backing store, the video's size), through a PNG."""
    url = driver.execute_script(
        f"return document.getElementById('{canvas_id}').toDataURL('image/png')")
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def open_video(driver, url, path):
    driver.get(url + "/")
    driver.find_element("id", "file").send_keys(path)
    wait_for(driver, "return document.getElementById('stage').dataset.frame === '0'",
             what="frame 0")
    wait_for(driver, f"return document.getElementById('frame-count').textContent === 'of {N}'",
             what="the frame count")


def go_to(driver, index):
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element("id", "frame-number")
    box.clear()
    box.send_keys(str(index), Keys.ENTER)
    wait_for(driver, f"return document.getElementById('stage').dataset.frame === '{index}'",
             what=f"frame {index}")


def click_at(driver, x, y, shift=False, drag_to=None):
    """A click (or a drag) at video pixel (x, y) on the shown frame."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    canvas = driver.find_element("id", "marks-canvas")
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", canvas)

    def offset(px, py):  # selenium 4: offsets from the element's centre, in CSS pixels
        return (round(px / W * rect["width"] - rect["width"] / 2),
                round(py / H * rect["height"] - rect["height"] / 2))

    chain = ActionChains(driver)
    if shift:
        chain.key_down(Keys.SHIFT)
    chain.move_to_element_with_offset(canvas, *offset(x, y))
    if drag_to:
        chain.click_and_hold().move_to_element_with_offset(canvas, *offset(*drag_to)).release()
    else:
        chain.click()
    if shift:
        chain.key_up(Keys.SHIFT)
    chain.perform()


def prompts_shown(driver):
    return json.loads(driver.execute_script(
        "return document.getElementById('prompts-json').textContent"))


def colours(driver):
    return {int(li.get_attribute("data-obj-id")):
            tuple(int(v) for v in li.get_attribute("data-colour").split(","))
            for li in driver.find_elements("css selector", "#objects li")}


def downloaded(driver, name, timeout=120) -> bytes:
    path = driver.downloads / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and not (driver.downloads / (name + ".crdownload")).exists():
            return path.read_bytes()
        time.sleep(0.2)
    raise AssertionError(f"{name} was not downloaded: {os.listdir(driver.downloads)}")


def disc_centre(i):
    """Where frames_of draws the red disc on frame i."""
    return W * 0.2 + i * (W * 0.6) / (N - 1), H / 2


# --- the story -----------------------------------------------------------------------------
def test_page_click_track_watch_download(server, browser, vfr_video, tmp_path):
    open_video(browser, server.url, vfr_video)

    # The frame on screen is frame SHOWN in decode order: its pixels say so (a time-based seek
    # on this variable-frame-rate video would land elsewhere: 5 x 40 ms is frame 3's time).
    go_to(browser, SHOWN)
    shown = canvas_rgba(browser, "frame-canvas")[..., :3]
    assert read_index(shown) == SHOWN
    assert np.abs(shown[30:].astype(int) - frames_of(N, W, H)[SHOWN][30:, :, ::-1]).mean() < 12

    # A click on the disc: the mask of object 1 appears on this frame within seconds.
    x, y = disc_centre(SHOWN)
    click_at(browser, x, y)
    wait_for(browser, "return document.getElementById('stage').dataset.masks === 'ids'",
             what="the clicked frame's mask")
    preview = canvas_rgba(browser, "mask-canvas")
    colour = colours(browser)[1]
    on = preview[..., 3] > 0
    assert on.mean() > 0.005, "no mask drawn after the click"
    assert (preview[on][:, :3] == colour).all()

    # A negative shift-click, then object 2 with a box drawn by dragging.
    click_at(browser, 20, 140, shift=True)
    browser.find_element("id", "add-object").click()
    browser.find_element("css selector", "input[name=tool][value=box]").click()
    sx = W * 0.75 - SHOWN * (W * 0.4) / (N - 1)
    click_at(browser, sx - 4, H / 8 - 4, drag_to=(sx + W / 8 + 4, H / 8 + H / 5 + 4))
    wait_for(browser, "return document.getElementById('status').textContent"
                      ".startsWith('Mask on frame 5')", what="the second object's mask")

    # What the page will send names the frame it showed, the clicks where they were made.
    sent = prompts_shown(browser)
    assert [(e["obj_id"], e["frame_idx"]) for e in sent] == [(1, SHOWN), (2, SHOWN)]
    assert sent[0]["labels"] == [1, 0]
    assert np.allclose(sent[0]["points"][0], [x, y], atol=1.5), sent[0]["points"]
    assert np.allclose(sent[1]["box"], [sx - 4, H / 8 - 4, sx + W / 8 + 4, H / 8 + H / 5 + 4],
                       atol=1.5), sent[1]["box"]

    # Track: the masks stream in and the page follows them.
    browser.find_element("id", "track").click()
    wait_for(browser, "return document.body.dataset.state === 'tracked'", timeout=600,
             what="the end of tracking")
    status = browser.find_element("id", "status").text
    assert status.startswith(f"Tracked {N} frames"), status

    # The downloaded NDJSON is the server's answer; its manifest has the prompts on frame SHOWN.
    browser.find_element("id", "download-rle").click()
    lines, masks, manifest = read_rle(downloaded(browser, "masks.ndjson"))
    assert sorted(masks) == list(range(N))
    assert {p["frame_idx"] for p in manifest["prompts"]} == {SHOWN}, manifest["prompts"]

    # The last frame on the canvas: each pixel in the colour of the object the server says is
    # there (the smallest obj_id on top), nothing where the server has no mask.
    go_to(browser, N - 1)
    wait_for(browser, "return document.getElementById('stage').dataset.masks === 'rle'",
             what="the last frame's tracked masks")
    assert read_index(canvas_rgba(browser, "frame-canvas")[..., :3]) == N - 1
    drawn = canvas_rgba(browser, "mask-canvas")
    ids = smallest_id_wins(masks[N - 1], (H, W))
    assert (ids > 0).mean() > 0.005, "the server's last frame has no mask to compare with"
    palette = colours(browser)
    expected = np.zeros((H, W, 4), np.uint8)
    for obj_id, rgb in palette.items():
        expected[ids == obj_id] = (*rgb, 255)
    assert (drawn == expected).all(axis=-1).mean() == 1.0

    screenshot = tmp_path / "page.png"
    browser.save_screenshot(str(screenshot))
    if os.environ.get("SAM2_TRACKER_SCREENSHOT"):  # docs/page.png is made this way
        shutil.copy(screenshot, os.environ["SAM2_TRACKER_SCREENSHOT"])

    # The ZIP + preview: tracked again on the server, saved by the browser.
    browser.find_element("id", "download-zip").click()
    archive = zipfile.ZipFile(io.BytesIO(downloaded(browser, "masks.zip", timeout=600)))
    names = set(archive.namelist())
    assert {"manifest.json", "preview.mp4", "masks/1/00000.png",
            f"masks/2/{N - 1:05d}.png"} <= names


def test_page_uploads_again_when_the_server_lost_the_video(server, browser, vfr_video):
    """Several replicas (or an expired video): the next click gets a 404 for the kept video; the
    page uploads its file again and carries on."""
    open_video(browser, server.url, vfr_video)
    first = stage(browser, "videoId")
    assert requests.delete(f"{server.url}/videos/{first}", timeout=10).status_code == 204
    go_to(browser, 2)  # frame 2 was never fetched: this request meets the 404 first
    click_at(browser, *disc_centre(2))
    wait_for(browser, "return document.getElementById('stage').dataset.masks === 'ids'",
             what="the mask after uploading again")
    second = stage(browser, "videoId")
    assert second and second != first
    assert requests.get(f"{server.url}/videos/{second}", timeout=10).json()["frame_count"] == N


def test_readme_kept_video_example(server, video_dir, tmp_path):
    """The README's curl lines for the kept-video routes, verbatim."""
    import subprocess

    from support.readme import readme_block
    from support.videos import decode_rgb, write_video
    from support.zipcheck import read_masks

    source = write_video(os.path.join(video_dir, "readme", "video.mp4"), 12, 640, 360)
    shutil.copy(source, tmp_path / "video.mp4")
    block = readme_block("curl-kept").replace("localhost:8000", f"127.0.0.1:{server.http_port}")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    frame = np.asarray(Image.open(tmp_path / "frame4.jpg").convert("RGB")).astype(int)
    assert np.abs(frame - decode_rgb(source)[4]).mean() < 6
    ids = Image.open(tmp_path / "mask4.png")
    assert (ids.mode, ids.size) == ("L", (640, 360))
    assert set(np.unique(np.asarray(ids))) <= {0, 1} and (np.asarray(ids) == 1).any()
    masks, manifest = read_masks((tmp_path / "masks.zip").read_bytes())
    assert sorted(masks) == list(range(12))
    assert manifest["prompt"]["frame_idx"] == 4 and manifest["prompt"]["points"] == [[320, 180]]
