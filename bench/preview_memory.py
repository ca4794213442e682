"""Benchmark: preview=mp4 in memory that does not grow with the video, and what it costs a frame.

    python bench/preview_memory.py                 # both parts below (~10 min on 2 idle cores)
    python bench/preview_memory.py --part encode   # the preview code alone, no model (~1 min)
    python bench/preview_memory.py --part server   # the real server, 2,000 frames @256

encode: the service's Preview (outputs/preview.py) fed as a job feeds it, on synthetic videos at
    three sizes (2,000 frames; 500 at 1280x720) with a prompt in the middle: milliseconds per
    frame for the frames encoded while tracking runs (decode again + overlay + H.264) and for the
    part encoded at the end, and this process's RSS along the run.
server: `python -m model` (SAM2.1 tiny, random weights, --image_size 256, CPU), a 2,000-frame
    320x192 video, one click on frame 1000 (so half the preview is encoded as the masks come and
    half at the end), format=png&preview=mp4. The server's VmRSS is sampled every 2 s against the
    frames received so far (ZIP entry names in the stream); then a 100-frame request for the
    peak at a short video. Prints a table; nothing here is a test.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

from support.metrics import status_kib  # noqa: E402

MIB = 1024 * 1024


def rss_mib(pid="self") -> float:
    return status_kib(pid, "VmRSS") / 1024


def disc(i: int, n: int, width: int, height: int):
    """(centre, radius) of the red disc on frame i, as tests/support/videos.frames_of draws it."""
    return (int(width * 0.2 + i * (width * 0.6) / max(1, n - 1)), height // 2), max(8, height // 6)


def write_long_video(path: str, n: int, width: int, height: int, fps: int = 25) -> str:
    """frames_of's scene (a red disc over a noisy green field), drawn and encoded one frame at a
    time (frames_of keeps them all: 5 GiB for 2,000 frames at 720p)."""
    import av
    import cv2

    rng = np.random.default_rng(0)
    field = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    field[..., 1] += 80
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "g": "50"}
        for i in range(n):
            frame = field.copy()
            centre, radius = disc(i, n, width, height)
            cv2.circle(frame, centre, radius, (220, 30, 30), -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --- the preview code alone -----------------------------------------------------------------
def encode_part(sizes, workdir: str) -> None:
    import cv2

    from model.outputs.labels import label_map
    from model.outputs.preview import Preview, PreviewSource
    from model.video import VideoLimits, open_video

    print("\n## Preview alone: a prompt on the middle frame, one object (a disc), this "
          "process\n")
    print("| size | frames | forward ms/frame | end part ms/frame | finish s | preview MiB | "
          "label scratch KiB | RSS MiB at 10 % / 50 % / 100 % |")
    print("|---|---|---|---|---|---|---|---|")
    for width, height, frames in sizes:
        video = os.path.join(workdir, f"v{width}.mp4")
        if not os.path.isfile(video):
            write_long_video(video, frames, width, height)
        limits = VideoLimits(max_frames=frames + 1, max_pixels=width * height)
        with open_video(video, limits) as reader:
            info = reader.info
        preview = Preview(PreviewSource(video, info, limits, workdir))
        first = frames // 2
        order = [*range(first, frames), *range(first - 1, -1, -1)]
        samples, t_forward = [], 0.0
        for n, f in enumerate(order, 1):
            mask = np.zeros((height, width), np.uint8)
            centre, radius = disc(f, frames, width, height)
            cv2.circle(mask, centre, radius, 255, -1)
            labels = label_map({1: mask})
            t0 = time.perf_counter()
            preview.add(f, labels)
            if f >= first:
                t_forward += time.perf_counter() - t0
            if n in (frames // 10, frames // 2, frames):
                samples.append(rss_mib())
        path = preview.finish()
        described = preview.describe()
        size = os.path.getsize(path)
        preview.abort()
        forward_ms = 1000 * t_forward / (frames - first)
        end_ms = 1000 * described["finish_s"] / first
        print(f"| {width}x{height} | {frames} | {forward_ms:.1f} | {end_ms:.1f} | "
              f"{described['finish_s']:.1f} | {size / MIB:.1f} | "
              f"{described['scratch_label_bytes'] / 1024:.0f} | "
              f"{' / '.join(f'{s:.0f}' for s in samples)} |")


# --- the real server ------------------------------------------------------------------------
_ENTRY = re.compile(rb"PK\x03\x04.{26}masks/(\d{5})\.png", re.S)


def one_request(server, video: str, params: dict, label: str, rows: list,
                live: bool = False) -> dict:
    import requests

    pid = server.proc.pid
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM := current RSS: the peak of this request only
    state = {"frames": 0, "done": False}
    samples = []

    def sample():
        while not state["done"]:
            samples.append((state["frames"], rss_mib(pid)))
            if live and len(samples) % 15 == 1:  # every 30 s, for a run cut short
                print(f"  {label}: {time.monotonic() - t0:.0f} s, {samples[-1][0]} frames "
                      f"received, server VmRSS {samples[-1][1]:.0f} MiB", flush=True)
            time.sleep(2)

    sampler = threading.Thread(target=sample, daemon=True)
    t0 = time.monotonic()
    sampler.start()
    body, tail = bytearray(), b""
    with open(video, "rb") as f:
        r = requests.post(server.url + "/track", params=params, data=f, stream=True,
                          timeout=7200, headers={"Content-Type": "application/octet-stream"})
        r.raise_for_status()
        expected = r.headers.get("x-expected-frames")
        for chunk in r.iter_content(chunk_size=None):
            body += chunk
            window = tail + chunk
            state["frames"] += len(_ENTRY.findall(window))
            tail = window[-64:]  # an entry header cut between two chunks is counted once
            state["frames"] -= len(_ENTRY.findall(tail))
    state["frames"] += len(_ENTRY.findall(tail))
    state["done"] = True
    sampler.join()
    elapsed = time.monotonic() - t0
    import io
    import zipfile

    zf = zipfile.ZipFile(io.BytesIO(bytes(body)))
    manifest = json.loads(zf.read("manifest.json"))
    preview = manifest.get("preview", {})
    result = {"label": label, "elapsed": elapsed, "expected": expected,
              "peak": status_kib(pid, "VmHWM") / 1024, "samples": samples,
              "frames": manifest["masks"]["count"], "preview": preview,
              "mp4": zf.getinfo("preview.mp4").file_size if preview else 0}
    rows.append(result)
    return result


def server_part(workdir: str, frames: int) -> None:
    from model.sam2_build import write_random_checkpoint
    from support.server import ServerProcess

    checkpoint = os.path.join(workdir, "random_tiny.pt")
    if not os.path.isfile(checkpoint):
        write_random_checkpoint("tiny", checkpoint)
    long_video = os.path.join(workdir, f"preview-v{frames}.mp4")
    if not os.path.isfile(long_video):
        write_long_video(long_video, frames, 320, 192)
    short_video = os.path.join(workdir, "preview-v100.mp4")
    if not os.path.isfile(short_video):
        write_long_video(short_video, 100, 320, 192)
    server = ServerProcess(checkpoint, workdir, image_size=256).start()
    rows: list = []
    try:
        # The long request first (its RSS is printed as it goes), then the short ones.
        long = one_request(server, long_video, {"points": "120,96", "frame_idx": frames // 2,
                                                "preview": "mp4"}, f"{frames} frames", rows,
                           live=True)
        one_request(server, short_video, {"points": "120,96", "frame_idx": 50},
                    "100 frames, no preview", rows)
        one_request(server, short_video, {"points": "120,96", "frame_idx": 50,
                                          "preview": "mp4"}, "100 frames", rows)
    finally:
        server.stop()
    print("\n## Server: tiny @256 on CPU, 320x192, click on the middle frame, "
          "format=png&preview=mp4\n")
    print("| request | frames | s | fps | peak RSS MiB | preview encode s (of which at the end) "
          "| preview.mp4 MiB | label scratch KiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["preview"]
        encode = f"{p['encode_s']:.1f} ({p['finish_s']:.1f})" if p else "-"
        scratch = f"{p['scratch_label_bytes'] / 1024:.0f}" if p else "-"
        print(f"| {r['label']} | {r['frames']} | {r['elapsed']:.1f} | "
              f"{r['frames'] / r['elapsed']:.2f} | {r['peak']:.0f} | {encode} | "
              f"{r['mp4'] / MIB:.2f} | {scratch} |")
    print(f"\nServer RSS along the {frames}-frame request (frames received -> VmRSS MiB):")
    step = max(1, len(long["samples"]) // 12)
    print(", ".join(f"{n} -> {m:.0f}" for n, m in long["samples"][::step]))
    print(f"X-Expected-Frames: {long['expected']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["encode", "server", "both"], default="both")
    parser.add_argument("--frames", type=int, default=2000, help="frames of the long video")
    parser.add_argument("--out", default=os.path.join(HERE, "out"),
                        help="where videos and the random checkpoint are kept between runs")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import platform

    print(f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    if args.part in ("encode", "both"):
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            encode_part([(320, 192, args.frames), (640, 360, args.frames),
                         (1280, 720, args.frames // 4)], tmp)
    if args.part in ("server", "both"):
        server_part(args.out, args.frames)


if __name__ == "__main__":
    main()
