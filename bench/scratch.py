"""Benchmark: scratch disk and memory for a long video clicked on its last frame.

    python bench/scratch.py                  # 2,000 frames, 320x192, image_size 256, CPU
    python bench/scratch.py --frames 500 --image_size 512

The worst case for scratch space: every frame before the click is read again by the reverse
pass. The service keeps none of them (it decodes the spooled upload again, chunk by chunk from
keyframes), so its scratch disk is the upload; the previous design spilled every earlier frame
at S x S x 3 bytes (3 MiB a frame at 1024). A sampler reads the spool dir's size and the
server's RSS every 0.2 s while the request runs.
"""

import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402


def dir_bytes(path: str) -> int:
    total = 0
    for name in os.listdir(path):
        try:
            total += os.stat(os.path.join(path, name)).st_blocks * 512
        except FileNotFoundError:
            pass
    return total


def open_unlinked_bytes(pid: int, spool: str) -> int:
    """Deleted files the server still holds open in the spool dir (a spill file is unlinked)."""
    total = 0
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
            if target.startswith(spool) and target.endswith("(deleted)"):
                total += os.stat(os.path.join(fd_dir, fd)).st_blocks * 512
        except OSError:
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--image_size", type=int, default=256)
    ap.add_argument("--checkpoint_dir", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    w, h, n = 320, 192, args.frames
    ckpt = run.checkpoint_for("tiny", args)
    video = run.make_video(os.path.join(args.out, f"bench_long_{n}.mp4"), n, w, h)
    service = run.Service("tiny", ckpt, args.image_size, "cpu")
    peak = {"disk": 0, "rss_kib": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            disk = dir_bytes(service.spool) + open_unlinked_bytes(service.proc.pid, service.spool)
            peak["disk"] = max(peak["disk"], disk)
            peak["rss_kib"] = max(peak["rss_kib"], run.status_kib(service.proc.pid, "VmRSS"))
            time.sleep(0.2)

    try:
        service.track(video, 0, "160,96", os.path.join(args.out, "warm.zip"),
                      params={"frame_idx": 0, "points": "160,96", "max_frames_to_track": 4})
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        r = service.track(video, n - 1, "160,96", os.path.join(args.out, "scratch.zip"))
        done.set()
        sampler.join()
    finally:
        service.stop()
    upload = os.path.getsize(video)
    spill = (n - 1) * args.image_size ** 2 * 3
    lines = [f"Machine: {run.machine()}",
             f"hiera tiny, image_size {args.image_size}, {w}x{h}, {n} frames, click on the last "
             f"frame (the reverse pass reads all {n - 1} earlier frames)", "",
             "| | value |", "|---|---|",
             f"| request time | {r['time_s']:.0f} s ({n / r['time_s']:.2f} fps) |",
             f"| masks | {r['frames']} |",
             f"| upload (the spooled file) | {upload / 2**20:.1f} MiB |",
             f"| peak scratch disk in --spool_dir (files + unlinked open files) | "
             f"{peak['disk'] / 2**20:.1f} MiB |",
             f"| what a frame spill would have taken at image_size {args.image_size} | "
             f"{spill / 2**20:.0f} MiB |",
             f"| ... at image_size 1024 | {(n - 1) * 1024 ** 2 * 3 / 2**30:.1f} GiB |",
             f"| server peak RSS during the request (sampled) | {peak['rss_kib'] / 1024:.0f} MiB |",
             f"| server peak RSS (VmHWM, reset before the request) | "
             f"{r['peak_rss_mib']:.0f} MiB |"]
    print("\n".join(lines))
    with open(os.path.join(args.out, "scratch.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
