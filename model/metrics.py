"""The product's Prometheus metrics, served by KServe's /metrics beside its own histograms.

Defined once per process on the default registry (which KServe's /metrics exposes).
"""

from prometheus_client import Counter, Gauge, Histogram, Info

_SECONDS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)

REQUESTS = Counter(
    "sam2_tracker_requests",
    "Tracking requests by door (track, v2) and outcome (ok, bad_request, too_large, "
    "unsupported_media, busy, unavailable, cancelled, timeout, error).",
    ["door", "outcome"],
)
REJECTED = Counter(
    "sam2_tracker_rejected_requests",
    "Requests turned away with 503 before any work: queue full (busy), shutting down "
    "(draining) or model not loaded (not_ready).",
    ["reason"],
)
FRAMES = Counter("sam2_tracker_frames_tracked", "Masks produced (one per frame per request).")
TRACKING_SECONDS = Histogram(
    "sam2_tracker_tracking_seconds",
    "Wall time of a tracking job on the device, from start to last mask.",
    buckets=_SECONDS,
)
QUEUE_SECONDS = Histogram(
    "sam2_tracker_queue_wait_seconds", "Time a job waited for the device.", buckets=_SECONDS
)
FIRST_MASK_SECONDS = Histogram(
    "sam2_tracker_time_to_first_mask_seconds",
    "From the request being accepted to its first mask being ready.",
    buckets=_SECONDS,
)
FPS = Histogram(
    "sam2_tracker_frames_per_second",
    "Frames per second of each completed job (masks / tracking seconds).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160),
)
LAST_FPS = Gauge("sam2_tracker_last_job_frames_per_second", "Frames per second of the last job.")
QUEUE_DEPTH = Gauge("sam2_tracker_queue_depth", "Jobs admitted and waiting for the device.")
IN_FLIGHT = Gauge("sam2_tracker_jobs_in_flight", "Jobs running on the device (0 or 1).")
VIDEO_FRAMES = Histogram(
    "sam2_tracker_video_frames",
    "Decoded frames per tracked video.",
    buckets=(1, 10, 30, 100, 300, 1000, 3000, 10000, 30000),
)
VIDEO_PIXELS = Histogram(
    "sam2_tracker_video_pixels",
    "Pixels per frame of tracked videos.",
    buckets=(320 * 240, 640 * 360, 1280 * 720, 1920 * 1080, 2560 * 1440, 3840 * 2160),
)
GPU_MEMORY = Gauge(
    "sam2_tracker_gpu_memory_bytes",
    "CUDA memory after the last job: allocated, reserved, and the job's peak allocation.",
    ["kind"],
)
MODEL_READY = Gauge("sam2_tracker_model_ready", "1 when the model is loaded, warm and serving.")
MODEL_INFO = Info("sam2_tracker_model", "The loaded model: size, image size, device, dtype.")


def observe_gpu_memory() -> None:
    import torch

    if not torch.cuda.is_available():
        return
    GPU_MEMORY.labels("allocated").set(torch.cuda.memory_allocated())
    GPU_MEMORY.labels("reserved").set(torch.cuda.memory_reserved())
    GPU_MEMORY.labels("peak").set(torch.cuda.max_memory_allocated())
    torch.cuda.reset_peak_memory_stats()
