"""One run of the plain SAM2 library, as its README uses it; prints a JSON line of numbers.

    OpenCV decode -> JPEG folder -> init_state -> add_new_points_or_box -> forward + reverse
    -> masks > 0 -> PNG files

Runs in its own process so its peak RSS (VmHWM) is its own. `work_s` excludes building the
model, as the service's request time does.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np
import torch


def vm_hwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--config", default="configs/sam2.1/sam2.1_hiera_t.yaml")
    ap.add_argument("--image_size", type=int, default=1024)
    ap.add_argument("--frame_idx", type=int, default=0)
    ap.add_argument("--point", default="160,96")
    ap.add_argument("--prompts", default=None,
                    help="JSON list of {obj_id, frame_idx, points | box} (several objects); "
                         "overrides --point/--frame_idx.")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--propagate_only", action="store_true",
                    help="Time propagation alone (no mask copies or PNGs), after a warm-up run, "
                         "as SAM2's own benchmark.py does.")
    ap.add_argument("--vos_optimized", action="store_true", help="torch.compile (VOS) build.")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    from sam2.build_sam import build_sam2_video_predictor

    t0 = time.perf_counter()
    predictor = build_sam2_video_predictor(
        args.config, ckpt_path=args.checkpoint, device=args.device,
        hydra_overrides_extra=[f"++model.image_size={args.image_size}"],
        vos_optimized=args.vos_optimized)
    build_s = time.perf_counter() - t0
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if args.device == "cuda"
                else torch.autocast("cpu", enabled=False))
    x, y = (float(v) for v in args.point.split(","))
    prompts = json.loads(args.prompts) if args.prompts else [
        {"obj_id": 1, "frame_idx": args.frame_idx, "points": [[x, y]]}]
    with tempfile.TemporaryDirectory() as tmp:
        frames_dir, out_dir = os.path.join(tmp, "frames"), os.path.join(tmp, "masks")
        os.makedirs(frames_dir)
        os.makedirs(out_dir)
        t0 = time.perf_counter()
        cap = cv2.VideoCapture(args.video)
        n = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            cv2.imwrite(os.path.join(frames_dir, f"{n:05d}.jpg"), bgr,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            n += 1
        cap.release()
        with torch.inference_mode(), autocast:
            state = predictor.init_state(frames_dir)
            t_init = time.perf_counter()
            for p in prompts:
                kwargs = {}
                if p.get("points"):
                    kwargs = {"points": np.array(p["points"], np.float32),
                              "labels": np.ones(len(p["points"]), np.int32)}
                if p.get("box"):
                    kwargs["box"] = np.array(p["box"], np.float32)
                predictor.add_new_points_or_box(state, frame_idx=p["frame_idx"],
                                                obj_id=p["obj_id"], **kwargs)
            written = set()
            if args.propagate_only:
                for _ in predictor.propagate_in_video(state):  # warm-up (compiles with VOS)
                    pass
                if args.device == "cuda":
                    torch.cuda.synchronize()
            t_prop = time.perf_counter()
            for reverse in (False, True):
                for f, ids, logits in predictor.propagate_in_video(state, reverse=reverse):
                    written.add(f)
                    if args.propagate_only:
                        continue
                    for k, obj_id in enumerate(ids):
                        mask = ((logits[k, 0] > 0.0).cpu().numpy().astype(np.uint8) * 255)
                        cv2.imwrite(os.path.join(out_dir, f"{obj_id}_{f:05d}.png"), mask)
            if args.device == "cuda":
                torch.cuda.synchronize()
            t_end = time.perf_counter()
    print(json.dumps({
        "frames": n, "masks": len(written), "build_s": build_s, "work_s": t_end - t0,
        "init_s": t_init - t0, "propagate_s": t_end - t_prop, "peak_rss_mib": vm_hwm_mib(),
        "peak_cuda_mib": (torch.cuda.max_memory_allocated() / 2**20
                          if args.device == "cuda" else None),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
