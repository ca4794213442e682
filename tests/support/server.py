"""`python -m model` on loopback, as a user starts it."""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional

import requests

from . import IMAGE_SIZE, REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, checkpoint: str, workdir: str, extra: Optional[List[str]] = None,
                 image_size: int = IMAGE_SIZE):
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.spool_dir = os.path.join(workdir, "spool")
        os.makedirs(self.spool_dir, exist_ok=True)
        self.log_path = os.path.join(workdir, f"server-{self.http_port}.log")
        self.args = [sys.executable, "-m", "model", "--model_name", "sam2", "--model_size", "tiny",
                     "--checkpoint", checkpoint, "--image_size", str(image_size),
                     "--device", "cpu", "--http_port", str(self.http_port),
                     "--grpc_port", str(self.grpc_port), "--spool_dir", self.spool_dir,
                     *(extra or [])]
        self.proc: Optional[subprocess.Popen] = None
        self._log = None

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

    def track(self, video: str, params, timeout: float = 600, **kw) -> requests.Response:
        """POST the file as the raw body."""
        with open(video, "rb") as f:
            return requests.post(self.url + "/track", params=params, data=f, timeout=timeout,
                                 headers={"Content-Type": "application/octet-stream"}, **kw)

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
