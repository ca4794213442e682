"""Benchmark: the service end to end against the plain SAM2 library, side by side.

    python bench/run.py                  # CPU: tiny @512, 24 and 96 frames, prompt on frame 12,
                                         # then 100 vs 2,000 frames @256 (service peak RSS)
    python bench/run.py --skip-long      # without the 2,000-frame run (~6 min less on 2 cores)
    python bench/run.py --gpu            # GPU: tiny and base_plus @1024, propagation-only FPS
                                         # (library, preloaded frames) vs end-to-end FPS (service)

Same video, model, image size and prompt for both sides; they never run at the same time.
(a) library: OpenCV decode -> JPEG folder -> init_state -> add_new_points_or_box -> forward +
    reverse -> masks > 0 -> PNG files, in its own process (bench/library_job.py); time excludes
    building the model.
(b) service: `python -m model` process; upload, streamed ZIP saved to disk; time from the first
    byte sent to the last byte received. Peak RSS is the server's VmHWM, reset before each request
    (/proc/PID/clear_refs), so it is that request's peak.
Weights: random (the real architecture, official file format) unless --checkpoint_dir holds the
official sam2.1_hiera_<size>.pt files; speed does not depend on the weights' values.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
# The tests' support package (videos, server process, /proc readers) is shared with the benchmark.
sys.path.insert(0, os.path.join(REPO, "tests"))

from model.checkpoints import MODEL_SIZES  # noqa: E402
from support.metrics import metric, status_kib  # noqa: E402
from support.server import free_port  # noqa: E402
from support.videos import write_video  # noqa: E402


def checkpoint_for(size: str, args) -> str:
    if args.checkpoint_dir:
        path = os.path.join(args.checkpoint_dir, f"sam2.1_hiera_{size}.pt")
        if os.path.isfile(path):
            return path
    from model.sam2_build import write_random_checkpoint

    path = os.path.join(args.out, f"random_{size}.pt")
    if not os.path.isfile(path):
        write_random_checkpoint(size, path)
    return path


def make_video(path: str, frames: int, width: int, height: int) -> str:
    if not os.path.isfile(path):
        write_video(path, frames, width, height)
    return path


class Service:
    def __init__(self, size, checkpoint, image_size, device, extra=()):
        self.port = free_port()
        self.spool = tempfile.mkdtemp(prefix="bench-spool-")
        self.log = open(os.path.join(tempfile.gettempdir(), f"bench-server-{self.port}.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "model", "--model_name", "sam2", "--model_size", size,
             "--checkpoint", checkpoint, "--image_size", str(image_size), "--device", device,
             "--http_port", str(self.port), "--grpc_port", str(free_port()),
             "--spool_dir", self.spool, "--max_frames", "100000",
             "--enable_latency_logging", "false", *extra],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, TQDM_DISABLE="1"))
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server died; see {self.log.name}"
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError("server did not become ready")

    def track(self, video: str, frame_idx: int, point: str, out_zip: str,
              params: dict = None) -> dict:
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        rss_before = status_kib(self.proc.pid, "VmRSS") / 1024
        with open(video, "rb") as f:
            data = f.read()
        t0 = time.perf_counter()
        params = params or {"frame_idx": frame_idx, "points": point}
        r = requests.post(self.url + "/track", params=params,
                          data=data, headers={"Content-Type": "application/octet-stream"},
                          stream=True, timeout=7200)
        r.raise_for_status()
        first = None
        with open(out_zip, "wb") as out:
            for chunk in r.iter_content(chunk_size=None):
                if first is None:
                    first = time.perf_counter() - t0
                out.write(chunk)
        total = time.perf_counter() - t0
        import zipfile

        with zipfile.ZipFile(out_zip) as z:
            manifest = json.loads(z.read("manifest.json"))
        return {"time_s": total, "first_byte_s": first, "frames": manifest["masks"]["count"],
                "peak_rss_mib": status_kib(self.proc.pid, "VmHWM") / 1024,
                "rss_before_mib": rss_before, "tracking_s": manifest["timings"]["tracking_s"]}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.log.close()


def library(video, checkpoint, size, image_size, frame_idx, point, device, extra=()) -> dict:
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "library_job.py"), "--video", video,
         "--checkpoint", checkpoint, "--config", MODEL_SIZES[size].config,
         "--image_size", str(image_size), "--frame_idx", str(frame_idx), "--point", point,
         "--device", device, *extra],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, TQDM_DISABLE="1"))
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_row(rows: list) -> dict:
    """Timings and peaks vary between identical runs here (NOTES: ~30 %): the median of
    --repeat runs, each number on its own."""
    import statistics

    return {k: statistics.median(r[k] for r in rows) for k in rows[0]
            if isinstance(rows[0][k], (int, float))}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} cores ({cpu}), {gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def cpu_mode(args):
    size, s, p, point, w, h = "tiny", 512, 12, "160,96", 320, 192
    ckpt = checkpoint_for(size, args)
    videos = {n: make_video(os.path.join(args.out, f"bench_{n}.mp4"), n, w, h) for n in (24, 96)}
    svc_runs = {n: [] for n in videos}
    lib_runs = {n: [] for n in videos}
    # Rounds alternate the two sides, so a slower minute of the machine hits both alike.
    for _ in range(args.repeat):
        svc = Service(size, ckpt, s, "cpu")
        try:
            # One request first: a long-running server is measured in its steady state.
            svc.track(videos[24], p, point, os.path.join(args.out, "warm.zip"))
            for n, v in videos.items():
                svc_runs[n].append(svc.track(v, p, point,
                                             os.path.join(args.out, f"service_{n}.zip")))
                print(f"service {n} frames: {svc_runs[n][-1]}", flush=True)
        finally:
            svc.stop()
        for n, v in videos.items():
            lib_runs[n].append(library(v, ckpt, size, s, p, point, "cpu"))
            print(f"library {n} frames: {lib_runs[n][-1]}", flush=True)
    svc_rows = {n: median_row(r) for n, r in svc_runs.items()}
    lib_rows = {n: median_row(r) for n, r in lib_runs.items()}

    lines = [f"Machine: {machine()}",
             f"hiera {size}, image_size {s}, {w}x{h} video, 1 click on frame {p}, forward + "
             f"reverse; median of {args.repeat} alternating rounds, service after one warm-up "
             f"request", "",
             "| frames | library work s | service s | service/library | first ZIP byte s "
             "(% of request) | library fps | service fps | library peak RSS MiB | service "
             "peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in videos:
        lib, svc_r = lib_rows[n], svc_rows[n]
        lines.append(
            f"| {n} | {lib['work_s']:.1f} | {svc_r['time_s']:.1f} | "
            f"{svc_r['time_s'] / lib['work_s']:.2f} | {svc_r['first_byte_s']:.2f} "
            f"({100 * svc_r['first_byte_s'] / svc_r['time_s']:.0f} %) | "
            f"{n / lib['work_s']:.2f} | {n / svc_r['time_s']:.2f} | {lib['peak_rss_mib']:.0f} | "
            f"{svc_r['peak_rss_mib']:.0f} |")
    a, b = sorted(videos)
    lib_slope = (lib_rows[b]["peak_rss_mib"] - lib_rows[a]["peak_rss_mib"]) / (b - a)
    svc_slope = (svc_rows[b]["peak_rss_mib"] - svc_rows[a]["peak_rss_mib"]) / (b - a)
    lines += ["", f"Peak RSS growth per extra frame ({a} -> {b} frames): library "
                  f"{lib_slope:.2f} MiB/frame, service {svc_slope:.2f} MiB/frame"]

    if not args.skip_long:
        long_rows = {}
        svc = Service(size, ckpt, 256, "cpu")
        try:
            svc.track(videos[24], p, point, os.path.join(args.out, "warm.zip"))
            for n in (100, 2000):
                v = make_video(os.path.join(args.out, f"bench_long_{n}.mp4"), n, w, h)
                long_rows[n] = svc.track(v, p, point, os.path.join(args.out, f"long_{n}.zip"))
                print(f"service {n} frames @256: {long_rows[n]}", flush=True)
        finally:
            svc.stop()
        lines += ["", "Service at image_size 256, long videos:", "",
                  "| frames | service s | fps | peak RSS MiB |", "|---|---|---|---|"]
        for n, r in long_rows.items():
            lines.append(f"| {n} | {r['time_s']:.1f} | {n / r['time_s']:.2f} | "
                         f"{r['peak_rss_mib']:.0f} |")
    return lines


def gpu_mode(args):
    lines = [f"Machine: {machine()}", "",
             "| model | frames | library propagation-only fps | service end-to-end fps | "
             "end-to-end / propagation | compile | service peak CUDA MiB |",
             "|---|---|---|---|---|---|---|"]
    n, p, point, w, h = args.gpu_frames, 0, "640,360", 1280, 720
    video = make_video(os.path.join(args.out, f"bench_gpu_{n}.mp4"), n, w, h)
    for size in ("tiny", "base_plus"):
        ckpt = checkpoint_for(size, args)
        extra = ["--compile"] if args.compile else []
        lib = library(video, ckpt, size, 1024, p, point, "cuda",
                      ["--propagate_only"] + (["--vos_optimized"] if args.compile else []))
        svc = Service(size, ckpt, 1024, "cuda", extra)
        try:
            svc.track(video, p, point, os.path.join(args.out, "warm.zip"))  # warm caches
            r = svc.track(video, p, point, os.path.join(args.out, f"gpu_{size}.zip"))
            metrics = requests.get(svc.url + "/metrics", timeout=5).text
        finally:
            svc.stop()
        peak = metric(metrics, "sam2_tracker_gpu_memory_bytes", kind="peak") / 2**20
        prop_fps = lib["masks"] / lib["propagate_s"]
        e2e_fps = n / r["time_s"]
        lines.append(f"| {size} | {n} | {prop_fps:.1f} | {e2e_fps:.1f} | "
                     f"{e2e_fps / prop_fps:.2f} | {args.compile} | {peak:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", "Published (A100, bf16, compiled, propagation only, 1 object): tiny 91.2 fps, "
                  "base_plus 64.1 fps."]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="GPU mode (CUDA, image_size 1024).")
    ap.add_argument("--compile", action="store_true", help="GPU mode: --compile / vos_optimized.")
    ap.add_argument("--gpu_frames", type=int, default=300, help="GPU mode: frames of 1280x720.")
    ap.add_argument("--skip-long", dest="skip_long", action="store_true",
                    help="CPU mode: skip the 100 vs 2,000-frame run.")
    ap.add_argument("--repeat", type=int, default=3, help="CPU mode: runs per measurement.")
    ap.add_argument("--checkpoint_dir", default=None,
                    help="Official checkpoints, if you have them.")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="Videos, weights, ZIPs.")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    lines = gpu_mode(args) if args.gpu else cpu_mode(args)
    print("\n".join(lines))
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
