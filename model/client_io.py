"""The CLI's conversation with the server: a streamed upload with a progress bar, 503 retries
after Retry-After, the answer streamed to a temporary file with a progress bar, checked whole,
then renamed (or extracted) into place. An answer cut short never lands under the final name."""

import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from typing import Dict, List, Optional, Tuple

import requests

CHUNK = 256 * 1024


class ClientError(Exception):
    """Anything that ends the command with exit code 1."""


class Refused(ClientError):
    """A 4xx: the request itself is wrong; retrying would not help."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _bar(total: Optional[float], desc: str, unit: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B",
                unit_divisor=1024, disable=not enabled, leave=True, dynamic_ncols=True)


class _Body:
    """A request body read in pieces (bytes and files), with a length and a progress bar."""

    def __init__(self, parts: List, bar):
        self._parts, self._bar = list(parts), bar
        self._len = sum(os.path.getsize(p) if isinstance(p, str) else len(p) for p in parts)
        self._open = None

    def __len__(self) -> int:
        return self._len

    def read(self, n: int = -1) -> bytes:
        while self._parts or self._open:
            if self._open is None:
                part = self._parts.pop(0)
                if isinstance(part, bytes):
                    self._bar.update(len(part))
                    return part
                self._open = open(part, "rb")
            data = self._open.read(CHUNK if n is None or n < 0 else min(n, CHUNK))
            if data:
                self._bar.update(len(data))
                return data
            self._open.close()
            self._open = None
        return b""


def _request(video: str, prompts, files: Dict[str, str], bar) -> Tuple[dict, _Body]:
    """(headers, body): the raw file, or multipart when mask PNGs go along."""
    if not files:
        return {"Content-Type": "application/octet-stream"}, _Body([video], bar)
    boundary = "sam2tracker" + os.urandom(8).hex()

    def head(name: str, filename: Optional[str] = None, ctype: str = "application/octet-stream"):
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        return (f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: {ctype}"
                f"\r\n\r\n").encode()

    parts = [head("video", os.path.basename(video)), video, b"\r\n",
             head("prompts", None, "application/json"), json.dumps(prompts).encode(), b"\r\n"]
    for name, path in files.items():
        parts += [head(name, os.path.basename(path), "image/png"), path, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, _Body(parts, bar)


class _Frames:
    """Counts the frames in an answer as its bytes stream by (ZIP entry names, NDJSON lines)."""

    def __init__(self, fmt: str):
        self.rle, self.frames, self._tail = fmt == "rle", set(), b""

    def feed(self, data: bytes) -> int:
        buf, before = self._tail + data, len(self.frames)
        if self.rle:
            *lines, self._tail = buf.split(b"\n")
            for line in lines:
                if line.startswith(b'{"frame_idx":'):
                    self.frames.add(int(line[13:line.index(b",")]))
            return len(self.frames) - before
        start = 0
        while (k := buf.find(b"PK\x03\x04", start)) >= 0 and k + 30 <= len(buf):
            n = int.from_bytes(buf[k + 26:k + 28], "little")
            if k + 30 + n > len(buf):
                break
            name = buf[k + 30:k + 30 + n].decode("utf-8", "replace")
            if name.startswith("masks/") and name.endswith(".png"):
                self.frames.add(name.rsplit("/", 1)[1][:-4])
            start = k + 30 + n
        self._tail = buf[max(start, len(buf) - 4096):]
        return len(self.frames) - before


def _check_whole(path: str, fmt: str) -> dict:
    """The manifest of a complete answer; ClientError for one cut short."""
    try:
        if fmt == "rle":
            with open(path, "rb") as f:
                last = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
            return json.loads(last)["manifest"]
        with zipfile.ZipFile(path) as zf:
            if zf.testzip() is not None:
                raise zipfile.BadZipFile("a CRC does not match")
            return json.loads(zf.read("manifest.json"))
    except (ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ClientError(f"the answer is incomplete ({exc}); nothing was written") from None


def _place(tmp: str, output: str, fmt: str) -> str:
    is_dir = output.endswith(os.sep) or os.path.isdir(output)
    if not is_dir:
        os.replace(tmp, output)
        return output
    os.makedirs(output, exist_ok=True)
    if fmt == "rle":
        target = os.path.join(output, "masks.ndjson")
        os.replace(tmp, target)
        return target
    staging = tempfile.mkdtemp(prefix=".sam2-extract-", dir=output)
    try:
        with zipfile.ZipFile(tmp) as zf:
            zf.extractall(staging)
            names = {n.split("/", 1)[0] for n in zf.namelist()}
        for name in names:
            dest = os.path.join(output, name)
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            os.replace(os.path.join(staging, name), dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.unlink(tmp)
    return output


def _receive(resp, output: str, fmt: str, progress: bool) -> Tuple[str, dict, float]:
    expected = resp.headers.get("X-Expected-Frames")
    parent = os.path.dirname(os.path.abspath(output.rstrip(os.sep))) or "."
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sam2-partial-", dir=parent)
    counter, got = _Frames(fmt), 0
    t0 = time.monotonic()
    try:
        with os.fdopen(fd, "wb") as out, _bar(int(expected) if expected else None, "tracking",
                                              "frame", progress) as bar:
            try:
                for chunk in resp.iter_content(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(counter.feed(chunk))
            except requests.RequestException as exc:
                raise ClientError(f"the answer was cut off after {got} bytes ({exc}); "
                                  f"nothing was written to {output}") from None
        manifest = _check_whole(tmp, fmt)
        return _place(tmp, output, fmt), manifest, time.monotonic() - t0
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _message(resp) -> str:
    try:
        return resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return resp.text[:500] or resp.reason


def track(server: str, video: str, prompts: Optional[list], params: dict, output: str,
          retries: int = 8, max_wait: float = 600, timeout: float = 3600,
          progress: bool = False) -> str:
    """POST the video and prompts; write the checked answer to `output`. Returns a summary."""
    if not os.path.isfile(video):
        raise ClientError(f"no such video file: {video}")
    files: Dict[str, str] = {}
    if prompts is not None:
        prompts = [dict(p) for p in prompts]
        for i, p in enumerate(prompts):
            if p.get("mask"):
                files[f"mask{i}"] = p["mask"]
                p["mask"] = f"mask{i}"
        if not files:
            params = {**params, "prompts": json.dumps(prompts)}
    url = server.rstrip("/") + "/track"
    for attempt in range(retries + 1):
        with _bar(None, "upload", "B", progress) as bar:
            headers, body = _request(video, prompts, files, bar)
            bar.total = len(body)
            try:
                resp = requests.post(url, params=params, data=body, headers=headers,
                                     stream=True, timeout=(30, timeout))
            except requests.ConnectionError as exc:
                raise ClientError(f"cannot reach {server}: {exc}") from None
        with resp:
            if resp.status_code == 503 and attempt < retries:
                wait = min(float(resp.headers.get("Retry-After") or 5), max_wait)
                print(f"server busy ({_message(resp)}): retrying in {wait:.0f} s "
                      f"(attempt {attempt + 1} of {retries})", file=sys.stderr, flush=True)
                time.sleep(wait)
                continue
            if resp.status_code == 503:
                raise ClientError(f"the server was still busy after {retries} retries: "
                                  f"{_message(resp)}")
            if 400 <= resp.status_code < 500:
                raise Refused(resp.status_code, _message(resp))
            if resp.status_code != 200:
                raise ClientError(f"the server answered {resp.status_code}: {_message(resp)}")
            fmt = "rle" if "ndjson" in resp.headers.get("Content-Type", "") else "zip"
            path, manifest, seconds = _receive(resp, output, fmt, progress)
        frames = manifest.get("masks", {}).get("count", 0)
        objects = len(manifest.get("objects", [])) or 1
        return (f"{path}: {frames} frames, {objects} object(s), {seconds:.1f} s, request "
                f"{manifest.get('request_id')}")
    raise AssertionError("unreachable: every attempt returns or raises")
