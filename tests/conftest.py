"""Shared fixtures: a random-weight SAM2.1 checkpoint, test videos, the real server process."""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional

import pytest
import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

IMAGE_SIZE = 256  # fast on 2 CPU cores (~0.16 s per frame for hiera tiny)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> str:
    """The real SAM2.1 tiny architecture with random weights, in the official file format."""
    from model.checkpoints import write_random_checkpoint

    path = tmp_path_factory.mktemp("weights") / "sam2.1_hiera_tiny.pt"
    return write_random_checkpoint("tiny", str(path), seed=0)


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("videos"))


class ServerProcess:
    """`python -m model` on loopback, as a user starts it."""

    def __init__(self, checkpoint: str, workdir: str, extra: Optional[List[str]] = None):
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.spool_dir = os.path.join(workdir, "spool")
        os.makedirs(self.spool_dir, exist_ok=True)
        self.log_path = os.path.join(workdir, f"server-{self.http_port}.log")
        self.args = [sys.executable, "-m", "model", "--model_name", "sam2", "--model_size", "tiny",
                     "--checkpoint", checkpoint, "--image_size", str(IMAGE_SIZE),
                     "--device", "cpu", "--http_port", str(self.http_port),
                     "--grpc_port", str(self.grpc_port), "--spool_dir", self.spool_dir,
                     *(extra or [])]
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 180) -> "ServerProcess":
        env = dict(os.environ, TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-6000:]

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def spool_files(self) -> list:
        return sorted(os.listdir(self.spool_dir))

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._log.close()


@pytest.fixture(scope="session")
def server(checkpoint, tmp_path_factory):
    """One server for the suite's ordinary requests (default limits)."""
    srv = ServerProcess(checkpoint, str(tmp_path_factory.mktemp("server"))).start()
    yield srv
    srv.stop()


@pytest.fixture
def make_server(checkpoint, tmp_path):
    """A server with its own flags, stopped at the end of the test."""
    started = []

    def _make(*extra: str, start: bool = True) -> ServerProcess:
        srv = ServerProcess(checkpoint, str(tmp_path / f"s{len(started)}"), list(extra))
        started.append(srv)
        return srv.start() if start else srv

    yield _make
    for srv in started:
        srv.stop()
