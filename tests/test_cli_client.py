"""Fast tier: `sam2-tracker track` (python -m model track) as a user runs it, against the app on
a loopback uvicorn in this process with a fake engine: layouts, 4xx, busy retries, folders,
answers cut short, progress bars on a terminal."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from support import REPO
from support.fake_engine import FakeEngine
from support.inprocess import Live
from support.server import free_port
from support.videos import write_video
from support.zipcheck import read_masks


@pytest.fixture
def live(tmp_path):
    srv = Live(tmp_path / "srv", engine=FakeEngine())
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(str(tmp_path_factory.mktemp("cli") / "v.mp4"), 12)


def cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "model", "track", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_one_object_short_form(live, video, tmp_path):
    out = cli(video, "--point", "60,96", "--frame", "3", "-o", str(tmp_path / "m.zip"),
              "--server", live.url)
    assert out.returncode == 0, out.stderr
    masks, manifest = read_masks((tmp_path / "m.zip").read_bytes())
    assert sorted(masks) == list(range(12)) and manifest["prompt"]["frame_idx"] == 3
    assert "12 frames, 1 object(s)" in out.stdout
    assert out.stderr == ""  # no bars when not on a terminal


def test_several_objects_and_a_mask_env_server(live, video, tmp_path):
    mask = np.zeros((192, 320), np.uint8)
    mask[10:50, 10:50] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = cli(video, "--object", "2", "--point", "60,96", "--point", "100,20", "--label", "1",
              "--label", "0", "--object", "5", "--frame", "4", "--box", "10,10,100,100",
              "--object", "7", "--frame", "2", "--mask", str(tmp_path / "m.png"),
              "-o", str(tmp_path / "objs.zip"), env={"SAM2_TRACKER_URL": live.url})
    assert out.returncode == 0, out.stderr
    masks, manifest = read_masks((tmp_path / "objs.zip").read_bytes(), long_form=True)
    assert sorted(masks) == [2, 5, 7]
    assert [o["prompted_frames"] for o in manifest["objects"]] == [[0], [4], [2]]
    assert manifest["prompts"][0]["labels"] == [1, 0]
    prompts, mask_names, _ = live.model.engine.calls[-1]
    assert mask_names == ["mask2"]


def test_prompts_file_and_folder_extraction(live, video, tmp_path):
    (tmp_path / "p.json").write_text(json.dumps([{"obj_id": 3, "frame_idx": 1,
                                                  "points": [[60, 96]]}]))
    folder = tmp_path / "out"
    out = cli(video, "--prompts", str(tmp_path / "p.json"), "-o", str(folder) + "/",
              "--server", live.url, "--direction", "forward")
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(folder)) == ["manifest.json", "masks"]
    assert sorted(os.listdir(folder / "masks" / "3")) == [f"{i:05d}.png" for i in range(1, 12)]
    assert [n for n in os.listdir(folder) if n.startswith(".")] == []


def test_refused_request_prints_the_message_and_exits_2(live, video, tmp_path):
    out = cli(video, "--point", "400,50", "-o", str(tmp_path / "m.zip"), "--server", live.url)
    assert out.returncode == 2
    assert "point" in out.stderr and "outside the frame" in out.stderr and "400" in out.stderr
    assert not (tmp_path / "m.zip").exists()
    bad = cli(video, "--object", "1", "--label", "1", "-o", "x.zip")
    assert bad.returncode == 2 and "1 --label for 0 --point" in bad.stderr


def test_busy_server_is_retried_after_retry_after(tmp_path, video):
    srv = Live(tmp_path / "srv", engine=FakeEngine(delay=0.05), max_queue=0)
    try:
        from model.cancellation import Cancellation

        ticket = srv.model.scheduler.admit(Cancellation())  # the device is taken
        threading.Timer(1.5, ticket.release).start()
        t0 = time.monotonic()
        out = cli(video, "--point", "60,96", "-o", str(tmp_path / "m.zip"),
                  "--server", srv.url, "--max-wait", "2")
        assert out.returncode == 0, out.stderr
        assert "server busy" in out.stderr and "retrying in" in out.stderr
        assert time.monotonic() - t0 >= 1.5
        assert len(read_masks((tmp_path / "m.zip").read_bytes())[0]) == 12
        never = srv.model.scheduler.admit(Cancellation())
        out = cli(video, "--point", "60,96", "-o", str(tmp_path / "n.zip"),
                  "--server", srv.url, "--retries", "1", "--max-wait", "0.2")
        never.release()
        assert out.returncode == 1 and "still busy after 1 retries" in out.stderr
    finally:
        srv.stop()


def test_a_cut_answer_leaves_no_file(tmp_path, video):
    # The deadline cuts the stream.
    srv = Live(tmp_path / "srv", engine=FakeEngine(delay=0.1), request_timeout=0.5)
    try:
        out = cli(video, "--point", "60,96", "-o", str(tmp_path / "m.zip"), "--server", srv.url)
        assert out.returncode == 1 and "nothing was written" in out.stderr
        assert os.listdir(tmp_path) == ["srv"]
    finally:
        srv.stop()
    unreachable = cli(video, "--point", "1,1", "-o", str(tmp_path / "m.zip"),
                      "--server", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


def test_progress_bars_on_a_terminal(tmp_path, video):
    srv = Live(tmp_path / "srv", engine=FakeEngine(delay=0.05))
    try:
        main, sub = pty.openpty()
        fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a real size
        proc = subprocess.Popen(
            [sys.executable, "-m", "model", "track", video, "--point", "60,96", "-o",
             str(tmp_path / "m.zip"), "--server", srv.url], cwd=REPO, stdout=sub, stderr=sub,
            env={**os.environ, "COLUMNS": "100"})
        os.close(sub)
        shown = b""
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:
                break
            if not data:
                break
            shown += data
        assert proc.wait(timeout=60) == 0
        text = shown.decode(errors="replace")
        assert "upload" in text and "100%" in text, text
        assert "tracking" in text and "12/12" in text, text
        assert zipfile.ZipFile(tmp_path / "m.zip").testzip() is None
    finally:
        srv.stop()
