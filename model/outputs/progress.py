"""How many frames an answer will hold, for a client's progress bar (the /track header).

The 200 goes out once the first mask exists, often before the video has finished decoding (the
tracker starts after 16 frames). Then the count comes from the container's claimed frame count
(VideoInfo.claimed_frames), or the frames decoded so far when that is smaller or missing, put
through the same frame plan the tracker follows (sam2_rules.frame_plan: prompted frame, direction,
max_frames_to_track). When decoding has finished it is exact. The basis says which.

    X-Expected-Frames: 240
    X-Expected-Frames-Basis: decoded | container | decoded-so-far
"""

from typing import Tuple

from ..sam2_rules import frame_plan

HEADER = "X-Expected-Frames"
BASIS_HEADER = "X-Expected-Frames-Basis"


def expected_frames(feed, info, request) -> Tuple[int, str]:
    """(frames the answer will hold, basis) from what is known now."""
    known = feed.num_frames
    if known is not None:
        count, basis = known, "decoded"
    elif info.claimed_frames >= feed.decoded and info.claimed_frames > 0:
        count, basis = info.claimed_frames, "container"
    else:
        count, basis = feed.decoded, "decoded-so-far"
    forward, backward = frame_plan(count, request.prompts.frames[0], request.options)
    return len(forward) + len(backward), basis


def progress_headers(job) -> dict:
    count, basis = expected_frames(job.feed, job.reader.info, job.request)
    return {HEADER: str(count), BASIS_HEADER: basis}
