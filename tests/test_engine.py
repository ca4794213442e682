"""The bounded-memory engine gives exactly the plain library's masks, and keeps a fixed window.

In-process: our Tracker (frames fed one at a time, outputs pruned) against the library's own
init_state + propagate_in_video on the same frame tensors and the same checkpoint.
"""

import os

import numpy as np
import pytest

from support import IMAGE_SIZE
from support.reference import build_library_predictor, iou, track_with_library
from support.videos import decode_rgb, write_video

pytestmark = pytest.mark.slow  # real SAM2 (random weights) against the plain library


@pytest.fixture(scope="module")
def frames64(video_dir):
    return decode_rgb(write_video(os.path.join(video_dir, "v64.mp4"), 64))


@pytest.fixture(scope="module")
def tracker(checkpoint):
    from model.sam2_build import build_video_predictor
    from model.tracking import Tracker
    import torch

    predictor = build_video_predictor("tiny", checkpoint, "cpu", image_size=IMAGE_SIZE)
    return Tracker(predictor, torch.device("cpu"))


def run_engine(tracker, frames, prompt, tmp_path):
    from model.feed import FrameFeed
    from model.prompts import Prompts
    from model.request import Options
    from model.sam2_rules import feed_plan
    from model.tracking import describe_memory
    from model.video import FrameList

    feed = FrameFeed(FrameList(frames), IMAGE_SIZE, feed_plan(Prompts((prompt,)), Options()),
                     spool_dir=str(tmp_path)).start()
    kept = []

    def observe(state):
        mem = describe_memory(state)[0]
        kept.append(len(mem["non_cond_frame_outputs"]) + len(mem["cond_frame_outputs"]))

    masks, order = {}, []
    try:
        with tracker.device_context():
            for frame in tracker.track(feed, Prompts((prompt,)), {}, frames[0].shape[1],
                                       frames[0].shape[0], Options(), max_frames=10_000,
                                       observe=observe):
                masks[frame.frame_idx] = frame.masks[1]
                order.append(frame.frame_idx)
    finally:
        feed.close()
    return masks, order, kept


@pytest.mark.parametrize("frame_idx", [32, 5])
def test_identical_to_library_on_64_frames(tracker, checkpoint, frames64, frame_idx, tmp_path):
    from model.prompts import ObjectPrompt

    prompt = ObjectPrompt(frame_idx=frame_idx, points=((160.0, 96.0),), labels=(1,))
    masks, order, kept = run_engine(tracker, frames64, prompt, tmp_path)
    library = build_library_predictor(checkpoint, IMAGE_SIZE)
    ref = track_with_library(library, frames64, frame_idx, points=[(160, 96)])

    assert order == list(range(frame_idx, 64)) + list(range(frame_idx - 1, -1, -1))
    for f in range(64):
        assert np.array_equal(masks[f], ref[f]), f"frame {f}: IoU {iou(masks[f], ref[f]):.4f}"
    # Memory: never more than the reverse pass's window after the prompt, the running window
    # and the prompt frame, whatever the video's length (w = 15 for every SAM2.1 config).
    w = tracker.window
    assert w == 15
    assert max(kept) <= 2 * w + 1, max(kept)
    assert os.listdir(tmp_path) == []  # the spill file is gone


def test_outputs_do_not_grow_with_video_length(tracker, video_dir, tmp_path):
    """80 frames keep no more outputs than 40 do (both past the 2 x 15-frame window)."""
    from model.prompts import ObjectPrompt

    peaks = []
    for n in (40, 80):
        frames = decode_rgb(write_video(os.path.join(video_dir, f"len{n}.mp4"), n, 96, 64))
        prompt = ObjectPrompt(frame_idx=2, points=((40.0, 32.0),), labels=(1,))
        _, order, kept = run_engine(tracker, frames, prompt, tmp_path)
        assert len(order) == n
        peaks.append(max(kept))
    assert peaks[1] == peaks[0], peaks


def test_padded_prompt_buckets():
    from model.tracking import padded_prompt

    one = padded_prompt([(1.0, 2.0)], [1], has_box=False)
    assert one == ([(1.0, 2.0)], [1])  # one click keeps SAM's multi-mask choice
    pts, lbls = padded_prompt([(1.0, 2.0), (3.0, 4.0)], [1, 0], has_box=False)
    assert len(pts) == 8 and lbls == [1, 0] + [-1] * 6
    pts, lbls = padded_prompt([(1.0, 2.0)] * 7, [1] * 7, has_box=True)  # 7 + 2 box corners
    assert len(pts) + 2 == 16
    assert padded_prompt([], [], has_box=True) == ([(0.0, 0.0)] * 6, [-1] * 6)
