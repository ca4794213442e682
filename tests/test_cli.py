"""`python -m model` start-up errors and `python -m model download`, as a user runs them."""

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading

import pytest
import torch

from support import REPO

pytestmark = pytest.mark.slow  # `python -m model` processes and real SAM2 checkpoints


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "model", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_missing_checkpoint_fails_at_once_naming_path_and_command(tmp_path):
    out = run("--model_size", "small", "--model_dir", str(tmp_path / "weights"), "--http_port", "0")
    assert out.returncode == 2
    assert str(tmp_path / "weights" / "sam2.1_hiera_small.pt") in out.stderr
    assert f"python -m model download --model_size small --model_dir {tmp_path / 'weights'}" \
        in out.stderr


def test_checkpoint_for_another_architecture_is_a_clear_error(tmp_path):
    from model.sam2_build import build_video_predictor
    from model.checkpoints import CheckpointError

    bogus = tmp_path / "bogus.pt"
    torch.save({"model": {"not_a_sam2_key": torch.zeros(1)}}, bogus)
    with pytest.raises(CheckpointError, match="does not match this architecture"):
        build_video_predictor("tiny", str(bogus), image_size=256)
    torch.save({"weights": {}}, bogus)
    with pytest.raises(CheckpointError, match="no 'model' state dict"):
        build_video_predictor("tiny", str(bogus), image_size=256)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(checkpoint):
    """Serves the random-weight checkpoint (same size as the official tiny file) over HTTP."""
    folder = os.path.dirname(checkpoint)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=folder))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{os.path.basename(checkpoint)}"
    httpd.shutdown()


def test_download_checks_size_and_is_idempotent(tmp_path, checkpoint, file_server):
    target_dir = tmp_path / "models"
    out = run("download", "--model_size", "tiny", "--model_dir", str(target_dir),
              "--url", file_server)
    assert out.returncode == 0, out.stderr
    target = target_dir / "sam2.1_hiera_tiny.pt"
    assert out.stdout.strip() == str(target)
    assert "sam2.1_hiera_tiny.pt" in out.stderr and "100%" in out.stderr  # the progress bar
    digest = hashlib.sha256(open(checkpoint, "rb").read()).hexdigest()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    assert (target_dir / "sam2.1_hiera_tiny.pt.sha256").read_text().split()[0] == digest
    assert sorted(os.listdir(target_dir)) == ["sam2.1_hiera_tiny.pt", "sam2.1_hiera_tiny.pt.sha256"]

    again = run("download", "--model_size", "tiny", "--model_dir", str(target_dir),
                "--url", "http://127.0.0.1:9/unreachable")
    assert again.returncode == 0, again.stderr  # already there: no network needed

    wrong = run("download", "--model_size", "tiny", "--model_dir", str(tmp_path / "m2"),
                "--url", file_server, "--sha256", "0" * 64)
    assert wrong.returncode == 1 and "expected " + "0" * 64 in wrong.stderr
    assert os.listdir(tmp_path / "m2") == []  # no partial file left behind

    small = run("download", "--model_size", "large", "--model_dir", str(tmp_path / "m3"),
                "--url", file_server)
    assert small.returncode == 1 and "truncated or another model" in small.stderr
    assert os.listdir(tmp_path / "m3") == []


def test_download_without_network_says_what_to_do(tmp_path):
    out = run("download", "--model_size", "tiny", "--model_dir", str(tmp_path),
              "--url", "http://127.0.0.1:9/sam2.1_hiera_tiny.pt")
    assert out.returncode == 1
    assert "could not download" in out.stderr and str(tmp_path) in out.stderr
    assert os.listdir(tmp_path) == []


def test_readme_cli_example_against_the_real_server(server, video_dir, tmp_path):
    """The README's `sam2-tracker track` lines, verbatim, with the real server and SAM2."""
    import json
    import shutil

    import numpy as np
    from PIL import Image

    from support.readme import readme_block
    from support.videos import write_video
    from support.zipcheck import read_masks

    shutil.copy(write_video(os.path.join(video_dir, "readme", "video.mp4"), 12, 640, 360),
                tmp_path / "video.mp4")
    mask = np.zeros((360, 640), np.uint8)
    mask[40:120, 420:560] = 255
    Image.fromarray(mask).save(tmp_path / "mask3.png")
    block = readme_block("cli").replace("sam2-tracker track",
                                        f"sam2-tracker track --server {server.url}")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep +
               os.environ["PATH"])
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    masks, manifest = read_masks((tmp_path / "masks.zip").read_bytes())
    assert sorted(masks) == list(range(12)) and manifest["prompt"]["labels"] == [1, 0]
    lines = (tmp_path / "masks.ndjson").read_text().splitlines()
    assert len(lines) == 13 and "manifest" in json.loads(lines[-1])
    assert sorted(o["obj_id"] for o in json.loads(lines[0])["objects"]) == [1, 2]
    folder = tmp_path / "masks"
    assert sorted(os.listdir(folder / "masks")) == ["1", "3"]
    assert len(os.listdir(folder / "masks" / "3")) == 12
