"""manifest.json: what was tracked, how, and how long it took. The last entry of every answer
(the last line of the NDJSON answer), so it can carry the timings."""

from typing import Optional

from ..request import TrackRequest

ORDER = {
    "both": "the first prompted frame to the last frame, then back to frame 0",
    "forward": "the first prompted frame to the last frame",
    "backward": "the first prompted frame back to frame 0",
}


def build_manifest(request: TrackRequest, video: dict, model: dict, frames: int,
                   tracked: Optional[list], fmt, timings: dict) -> dict:
    prompts = request.prompts
    tracking_s = timings.get("tracking_s") or 0.0
    manifest = {
        "video": video,
        "objects": prompts.objects(),
        "model": model,
        "masks": {
            "count": frames,
            "format": fmt.description,
            "names": fmt.names(),
            "order": ORDER[request.options.direction],
            "tracked_frames": tracked,  # [first, last] frame index with masks, or null
        },
        "options": request.options.as_dict(),
        "timings": {**timings,
                    "frames_per_second": round(frames / tracking_s, 3) if tracking_s else None},
        "request_id": request.request_id,
    }
    if prompts.long_form:
        manifest["prompts"] = [p.as_dict() for p in prompts.entries]
    else:
        manifest["prompt"] = prompts.entries[0].as_dict()
    return manifest
