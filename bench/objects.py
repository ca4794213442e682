"""Benchmark: several objects, the service against the plain SAM2 library, side by side.

    python bench/objects.py                 # CPU: tiny @512, 24 frames, 1/2/4/8 objects;
                                            # then the service's peak RSS at 8 objects, 48 vs 144
    python bench/objects.py --memory-only   # only the peak RSS part (--skip-memory: only the table)
    python bench/objects.py --gpu           # the same table on a CUDA device @1024

Both sides get the same video, checkpoint, image size and prompts (one click per object on frame
12, objects spread over the frame), never at the same time. The library runs as its README does
(bench/library_job.py: JPEG folder, init_state, add_new_points_or_box per object, forward and
reverse, masks > 0, PNG files per object), timed without building the model; the service is a
`python -m model` process timed from the upload's first byte to the ZIP's last byte.
"""

import argparse
import json
import os
import statistics
import sys

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
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--checkpoint_dir", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--memory-only", action="store_true", help="skip the timing table")
    ap.add_argument("--skip-memory", action="store_true", help="only the timing table")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    device, size = ("cuda", 1024) if args.gpu else ("cpu", 512)
    w, h, p, n = 320, 192, 12, 24
    ckpt = run.checkpoint_for("tiny", args)
    video = run.make_video(os.path.join(args.out, f"bench_{n}.mp4"), n, w, h)
    counts = [int(k) for k in args.objects.split(",")]
    lib, svc = {k: [] for k in counts}, {k: [] for k in counts}
    for _ in range(0 if args.memory_only else args.repeat):
        for k in counts:
            lib[k].append(run.library(video, ckpt, "tiny", size, p, "0,0", device,
                                      ["--prompts", json.dumps(prompts_for(k, p, w, h))]))
            print(f"library {k} objects: {lib[k][-1]}", flush=True)
        service = run.Service("tiny", ckpt, size, device)
        try:
            service.track(video, p, "160,96", os.path.join(args.out, "warm.zip"))
            for k in counts:
                params = {"prompts": json.dumps(prompts_for(k, p, w, h))}
                svc[k].append(service.track(video, p, "", os.path.join(args.out, f"o{k}.zip"),
                                            params=params))
                print(f"service {k} objects: {svc[k][-1]}", flush=True)
        finally:
            service.stop()
    lines = [f"Machine: {run.machine()}",
             f"hiera tiny, image_size {size}, {w}x{h}, {n} frames, one click per object on frame "
             f"{p}, forward + reverse; median of {args.repeat}", "",
             "| objects | library s/frame | service s/frame | service / library |",
             "|---|---|---|---|"]
    for k in counts if not args.memory_only else ():
        lib_s = statistics.median(r["work_s"] for r in lib[k]) / n
        svc_s = statistics.median(r["time_s"] for r in svc[k]) / n
        lines.append(f"| {k} | {lib_s:.2f} | {svc_s:.2f} | {svc_s / lib_s:.2f} |")

    if args.skip_memory:
        return _report(lines, args.out)
    # Memory with video length at the largest object count: the server's peak RSS per request.
    # The click is on frame 12: both lengths run forward well past the memory window (15 frames
    # per object, sam2_rules.memory_window), and the backward pass is the same 12 frames, so the
    # slope is what one more frame costs at steady state (the compact frame store and the
    # answer's side), not the window filling up.
    k = max(counts)
    short, long = 48, 144
    videos = {f: run.make_video(os.path.join(args.out, f"bench_{f}.mp4"), f, w, h)
              for f in (short, long)}
    service = run.Service("tiny", ckpt, size, device)
    try:
        params = {"prompts": json.dumps(prompts_for(k, p, w, h))}
        service.track(video, p, "", os.path.join(args.out, "warm.zip"), params=params)
        peaks = {}
        for frames, v in videos.items():
            r = service.track(v, p, "", os.path.join(args.out, f"mem{frames}.zip"), params=params)
            peaks[frames] = r["peak_rss_mib"]
            print(f"service {k} objects, {frames} frames: {r}", flush=True)
    finally:
        service.stop()
    slope = (peaks[long] - peaks[short]) / (long - short)
    lines += ["", f"Service peak RSS with {k} objects: {peaks[short]:.0f} MiB at {short} frames, "
                  f"{peaks[long]:.0f} MiB at {long} frames: {slope:.2f} MiB per extra frame"]
    return _report(lines, args.out)


def _report(lines, out: str) -> int:
    print("\n".join(lines))
    with open(os.path.join(out, "objects.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
