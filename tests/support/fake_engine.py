"""A stand-in for the SAM2 engine, for the fast tier: same interface as tracking.Tracker.

It reads its frames through the real FrameFeed (so the feed's order, spill and end-of-video are
exercised), visits them in the library's order (tracking.frame_plan), takes `delay` seconds per
frame, and derives each object's mask from the frame itself: pixels whose red channel is over
128 (the red disc of the test videos), shifted right by obj_id - 1 pixels so objects differ.
Never used in the slow tier.
"""

import contextlib
import time

import numpy as np
from PIL import Image

from model.feed import EndOfVideo
from model.outputs.frame import TrackedFrame
from model.sam2_rules import frame_plan


class FakeEngine:
    window = 15
    dtype_name = "float32"

    def __init__(self, image_size: int = 64, delay: float = 0.0):
        self.image_size = image_size
        self.delay = delay
        self.calls = []

    def device_context(self):
        return contextlib.nullcontext()

    def warm_up(self, make_feed) -> int:
        return 0

    def expected_frames(self, feed, request) -> int:
        forward, backward = frame_plan(feed.num_frames or feed.decoded,
                                       request.prompts.frames[0], request.options)
        return len(forward) + len(backward)

    def tracked_range(self, feed, request):
        forward, backward = frame_plan(feed.num_frames or feed.decoded,
                                       request.prompts.frames[0], request.options)
        frames = [*forward, *backward]
        return [min(frames), max(frames)] if frames else None

    def _frame(self, feed, f, obj_ids, width, height) -> TrackedFrame:
        small = feed.get(f)
        big = np.asarray(Image.fromarray(small).resize((width, height), Image.NEAREST))
        red = (big[..., 0] > 128).astype(np.uint8) * 255
        masks = {o: np.roll(red, o - 1, axis=1) for o in obj_ids}
        if self.delay:
            time.sleep(self.delay)
        return TrackedFrame(f, masks, {o: float(f) for o in obj_ids})

    def segment(self, image, prompts, masks, width, height) -> TrackedFrame:
        class One:
            def get(self, i):
                return image

        self.calls.append(("segment", prompts))
        return self._frame(One(), prompts.frames[0], prompts.obj_ids, width, height)

    def track(self, feed, prompts, masks, width, height, options, max_frames, observe=None):
        self.calls.append((prompts, sorted(masks), options))
        first = prompts.frames[0]
        ids = prompts.obj_ids
        feed.wait_for_count(max(prompts.frames[-1] + 1, 16))
        for f in prompts.frames:  # the prompts read their frames first, as the library does
            feed.get(f)
        forward, _ = frame_plan(feed.num_frames or max_frames, first, options)
        try:
            for f in forward:
                yield self._frame(feed, f, ids, width, height)
                feed.release_prompt_frames(passed=f, keep=first)
        except EndOfVideo:
            pass
        _, backward = frame_plan(feed.wait_done(), first, options)
        for f in backward:
            yield self._frame(feed, f, ids, width, height)
            feed.release_prompt_frames()
