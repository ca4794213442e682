"""Benchmark: several objects, the service against the plain SAM2 library, side by side.

    python bench/objects.py                 # CPU: tiny @512, 24 frames, 1/2/4/8 objects, 3 rounds;
                                            # then the service's peak RSS at 8 objects for 48,
                                            # 144 and 432 frames
    python bench/objects.py --memory-only   # only the peak RSS part (--skip-memory: only the table)
    python bench/objects.py --gpu           # the same table on a CUDA device @1024
    python bench/objects.py --concurrent    # CPU: each pair at the same time, one core and one
                                            # torch thread each (the low-noise comparison)

Both sides get the same video, checkpoint, image size and prompts (one click per object on frame
12, objects spread over the frame). The library runs as its README does (bench/library_job.py:
JPEG folder, init_state, add_new_points_or_box per object, forward and reverse, masks > 0, PNG
files per object), timed without building the model; the service is a `python -m model` process
timed from the upload's first byte to the ZIP's last byte. By default they never run at the
same time.

This machine's speed drifts by up to ~10 % between minutes (NOTES.md: ~30 % between runs), more
than the difference being measured, so each library run is paired with the service's run of the
same object count right beside it (library first in even rounds, service first in odd ones, so a
steady drift within a pair does not favour either side), and the table gives the median and the
geometric mean of those pairs' ratios over --repeat rounds, their range, and in how many pairs
the service was faster.

`--concurrent` takes the drift out instead: the library and the service of a pair run at the same
time, each pinned to its own core with one torch thread (OMP_NUM_THREADS=1), and they swap cores
every round. Both then see the same minutes of this machine. This machine's two cores do not slow
each other (two 1-thread GEMM loops, one per core: 95-99 GFLOP/s each, alone 90-98). It compares
the work each side does per frame, not how well torch's two threads scale, which is the part of
the default table that drifts most.
"""

import argparse
import json
import os
import statistics
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (bench/run.py: Service, library, checkpoint_for, make_video, machine)


def prompts_for(k: int, frame: int, width: int, height: int) -> list:
    """k clicks on frame `frame`, spread over a grid so that the objects differ."""
    cols = min(k, 4)
    rows = (k + cols - 1) // cols
    out = []
    for i in range(k):
        x = int(width * (i % cols + 0.5) / cols)
        y = int(height * (i // cols + 0.5) / rows)
        out.append({"obj_id": i + 1, "frame_idx": frame, "points": [[x, y]]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--objects", default="1,2,4,8")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lengths", default="48,144,432",
                    help="video lengths (frames) for the peak-RSS part")
    ap.add_argument("--checkpoint_dir", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--memory-only", action="store_true", help="skip the timing table")
    ap.add_argument("--skip-memory", action="store_true", help="only the timing table")
    ap.add_argument("--concurrent", action="store_true",
                    help="each pair at once, one core and one torch thread each (CPU)")
    args = ap.parse_args()
    threads_env = os.environ.get("OMP_NUM_THREADS")
    if args.concurrent:
        if args.gpu or len(os.sched_getaffinity(0)) < 2:
            ap.error("--concurrent needs a CPU run and two cores")
        os.environ["OMP_NUM_THREADS"] = "1"  # both sides of the timing table inherit it
    os.makedirs(args.out, exist_ok=True)
    device, size = ("cuda", 1024) if args.gpu else ("cpu", 512)
    w, h, p, n = 320, 192, 12, 24
    ckpt = run.checkpoint_for("tiny", args)
    video = run.make_video(os.path.join(args.out, f"bench_{n}.mp4"), n, w, h)
    counts = [int(k) for k in args.objects.split(",")]
    lib, svc = {k: [] for k in counts}, {k: [] for k in counts}
    if not args.memory_only:
        service = run.Service("tiny", ckpt, size, device)
        try:
            service.track(video, p, "160,96", os.path.join(args.out, "warm.zip"))
            for _ in range(args.repeat):
                for k in counts:
                    prompts = json.dumps(prompts_for(k, p, w, h))

                    def library(k=k, prompts=prompts):
                        lib[k].append(run.library(video, ckpt, "tiny", size, p, "0,0", device,
                                                  ["--prompts", prompts]))

                    def service_run(k=k, prompts=prompts):
                        svc[k].append(service.track(
                            video, p, "", os.path.join(args.out, f"o{k}.zip"),
                            params={"prompts": prompts}))

                    if args.concurrent:
                        lib_core, svc_core = (0, 1) if len(lib[k]) % 2 == 0 else (1, 0)
                        _pin_process(service.proc.pid, svc_core)
                        side = threading.Thread(target=_on_core, args=(lib_core, library))
                        side.start()
                        service_run()
                        side.join()
                    else:
                        for one in ((library, service_run) if len(lib[k]) % 2 == 0
                                    else (service_run, library)):
                            one()
                    print(f"{k} objects: library {lib[k][-1]['work_s']:.1f} s, service "
                          f"{svc[k][-1]['time_s']:.1f} s", flush=True)
        finally:
            service.stop()
    lines = [f"Machine: {run.machine()}"]
    if not args.memory_only:
        lines += [
            f"hiera tiny, image_size {size}, {w}x{h}, {n} frames, one click per object on frame "
            f"{p}, forward + reverse; {args.repeat} rounds, each library run paired with the "
            + ("service's, at the same time, one core and one torch thread each (swapped every "
               "round)" if args.concurrent else "service's (alternating which goes first)"), "",
            "| objects | library s/frame | service s/frame | service / library: median of pairs "
            "| geometric mean | range | pairs the service won |",
            "|---|---|---|---|---|---|---|"]
    for k in counts if not args.memory_only else ():
        ratios = [s["time_s"] / r["work_s"] for r, s in zip(lib[k], svc[k])]
        lib_s = statistics.median(r["work_s"] for r in lib[k]) / n
        svc_s = statistics.median(r["time_s"] for r in svc[k]) / n
        lines.append(f"| {k} | {lib_s:.2f} | {svc_s:.2f} | {statistics.median(ratios):.3f} | "
                     f"{statistics.geometric_mean(ratios):.3f} | "
                     f"{min(ratios):.2f}-{max(ratios):.2f} | "
                     f"{sum(r < 1 for r in ratios)} of {len(ratios)} |")

    if args.skip_memory:
        return _report(lines, args.out)
    # Memory with video length at the largest object count: the server's peak RSS per request.
    # The click is on frame 12: every length runs forward well past the memory window (15 frames
    # per object, sam2_rules.memory_window), and the backward pass is the same 12 frames, so the
    # slope is what one more frame costs at steady state, not the window filling up. The peak of
    # one request swings by up to ~100 MiB (the allocator; memory.py), so the lengths are far
    # apart, the slope is a least-squares fit, and VmRSS is also sampled along each request.
    # The memory part runs the server as users do, whatever --concurrent set for the table.
    if threads_env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = threads_env
    k = max(counts)
    lengths = [int(f) for f in args.lengths.split(",")]
    videos = {f: run.make_video(os.path.join(args.out, f"bench_{f}.mp4"), f, w, h)
              for f in lengths}
    service = run.Service("tiny", ckpt, size, device)
    peaks, halves = {}, {}
    try:
        params = {"prompts": json.dumps(prompts_for(k, p, w, h))}
        service.track(video, p, "", os.path.join(args.out, "warm.zip"), params=params)
        for frames, v in videos.items():
            with RssSampler(service.proc.pid) as sampler:
                r = service.track(v, p, "", os.path.join(args.out, f"mem{frames}.zip"),
                                  params=params)
            peaks[frames] = r["peak_rss_mib"]
            halves[frames] = sampler.halves()
            print(f"service {k} objects, {frames} frames: {r}; sampled VmRSS max in the first / "
                  f"second half: {halves[frames]}", flush=True)
    finally:
        service.stop()
    slope = _fit_slope(peaks)
    lines += ["", f"Service peak RSS (VmHWM of the request) with {k} objects:", "",
              "| frames | peak RSS MiB | sampled VmRSS max, 1st half / 2nd half MiB |",
              "|---|---|---|"]
    lines += [f"| {f} | {peaks[f]:.0f} | {halves[f][0]:.0f} / {halves[f][1]:.0f} |"
              for f in lengths]
    lines += ["", f"Slope (least squares over the peaks): {slope:.2f} MiB per extra frame"]
    return _report(lines, args.out)


def _pin_process(pid: int, core: int) -> None:
    """Every thread of `pid` onto one core; threads it starts later inherit that."""
    cores = sorted(os.sched_getaffinity(0))
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cores[core]})
        except ProcessLookupError:
            pass  # a thread that just ended


def _on_core(core: int, fn) -> None:
    """Run fn in this thread pinned to one core; a process it starts inherits the pinning."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[core]})
    fn()


class RssSampler:
    """VmRSS of a process every 0.5 s while a request runs (a thread of this process)."""

    def __init__(self, pid: int, every: float = 0.5):
        self.pid, self.every, self.samples = pid, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.samples.append(run.status_kib(self.pid, "VmRSS") / 1024)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def halves(self):
        """Max VmRSS in the first and the second half of the request (flat memory: equal)."""
        mid = len(self.samples) // 2
        return (max(self.samples[:mid], default=float("nan")),
                max(self.samples[mid:], default=float("nan")))


def _fit_slope(peaks: dict) -> float:
    xs = list(peaks)
    mx, my = statistics.mean(xs), statistics.mean(peaks.values())
    return sum((x - mx) * (peaks[x] - my) for x in xs) / sum((x - mx) ** 2 for x in xs)


def _report(lines, out: str) -> int:
    print("\n".join(lines))
    with open(os.path.join(out, "objects.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
