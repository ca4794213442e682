"""The propagation engine around SAM2VideoPredictor, in memory that does not grow with the video.

It runs the library's own calls: `add_new_points_or_box` / `add_new_mask` for every prompt (each
prompted frame a conditioning frame of its object), then `propagate_in_video` forward from the
first prompted frame and in reverse, so masks are the library's. Two things differ from
`init_state`:

- frames come from a `FrameFeed` (feed.py) as the model asks for them, not all up front;
- after each frame, outputs the memory attention can no longer read are dropped. The library keeps
  every frame's outputs (~0.75 MiB per object per frame at 1024) but reads only: every
  conditioning frame of the object, the `memory_window` frames before the current one (after it,
  in reverse), and in the reverse pass the forward-pass frames just after the first prompted
  frame. Keeping exactly those (15 frames each way for every SAM2.1 config, plus the prompted
  frames) leaves the masks identical, whatever the number of objects and prompted frames.
"""

import contextlib
from collections import OrderedDict
from typing import Callable, Dict, Iterator, Optional

import numpy as np

from .feed import EndOfVideo, FrameFeed
from .video import FrameList
from .frames import ModelImages
from .outputs.frame import TrackedFrame
from .prompts import ObjectPrompt, Prompts
from .request import Options, TrackRequest
from .sam2_rules import (feed_plan, frame_plan, memory_window, padded_prompt,
                         upcast_memories)
from .shared_work import SharedWork


def _object_lanes(predictor):
    """Two objects at a time on a CPU (object_lanes.py); pointless on a single thread."""
    import torch

    from .object_lanes import ObjectLanes

    return ObjectLanes(predictor) if torch.get_num_threads() >= 2 else None


class Tracker:
    """Owns the model; `track` runs one video. One call at a time (the scheduler ensures it)."""

    def __init__(self, predictor, device, pad_points: bool = False, object_lanes: bool = False):
        self.predictor = predictor
        self.device = device
        self.pad_points = pad_points
        self.window = memory_window(predictor)
        if device.type != "cuda" and not pad_points:
            upcast_memories(predictor)
        # Once per frame what the library computes once per object (shared_work.py); not with
        # --compile (pad_points), whose compiled forward is one graph.
        self.shared = SharedWork(predictor) if not pad_points else None
        self.lanes = _object_lanes(predictor) \
            if object_lanes and device.type == "cpu" and not pad_points else None

    def _forget_frame_work(self) -> None:
        if self.shared is not None:
            self.shared.clear()
        if self.lanes is not None:
            self.lanes.clear()

    @property
    def image_size(self) -> int:
        return int(self.predictor.image_size)

    @property
    def dtype_name(self) -> str:
        return "bfloat16" if self.device.type == "cuda" else "float32"

    def device_context(self):
        """inference_mode always; bfloat16 autocast on CUDA only, as SAM2's own demo runs."""
        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.device.type == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        return stack

    # --- what a request will get -------------------------------------------------------------
    @staticmethod
    def _known_frames(feed: FrameFeed) -> int:
        return feed.num_frames or feed.decoded

    def expected_frames(self, feed: FrameFeed, request: TrackRequest) -> int:
        forward, backward = frame_plan(self._known_frames(feed), request.prompts.frames[0],
                                       request.options)
        return len(forward) + len(backward)

    def tracked_range(self, feed: FrameFeed, request: TrackRequest) -> Optional[list]:
        forward, backward = frame_plan(self._known_frames(feed), request.prompts.frames[0],
                                       request.options)
        frames = [*forward, *backward]
        return [min(frames), max(frames)] if frames else None

    # --- one video ----------------------------------------------------------------------------
    def _new_state(self, images: ModelImages, width: int, height: int) -> dict:
        """The dict `init_state` builds, minus decoding every frame and the frame-0 warm-up."""
        return {
            "images": images,
            "num_frames": len(images),
            "offload_video_to_cpu": False,
            "offload_state_to_cpu": False,
            "video_height": height,
            "video_width": width,
            "device": self.device,
            "storage_device": self.device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }

    def _add_prompt(self, state: dict, prompt: ObjectPrompt, masks: Dict[str, np.ndarray]):
        """The library's call for this prompt; returns what it returns: (frame, obj_ids, masks
        of every object on that frame at the video's size)."""
        if prompt.mask is not None:
            return self.predictor.add_new_mask(state, frame_idx=prompt.frame_idx,
                                               obj_id=prompt.obj_id, mask=masks[prompt.mask])
        points, labels = list(prompt.points), list(prompt.labels)
        if self.pad_points:
            points, labels = padded_prompt(points, labels, prompt.box is not None)
        return self.predictor.add_new_points_or_box(
            state,
            frame_idx=prompt.frame_idx,
            obj_id=prompt.obj_id,
            points=np.asarray(points, dtype=np.float32).reshape(-1, 2) if points else None,
            labels=np.asarray(labels, dtype=np.int32) if points else None,
            box=np.asarray(prompt.box, dtype=np.float32) if prompt.box is not None else None,
        )

    def _forget(self, state: dict, frame_idx: int) -> None:
        for obj_idx, out in state["output_dict_per_obj"].items():
            out["non_cond_frame_outputs"].pop(frame_idx, None)
            state["frames_tracked_per_obj"][obj_idx].pop(frame_idx, None)

    def _frame(self, state: dict, frame_idx: int, obj_ids, video_res_masks) -> TrackedFrame:
        # (objects, 1, H, W) logits at the video's size; the library's README binarises at 0.
        binary = (video_res_masks[:, 0] > 0).to("cpu").numpy().astype(np.uint8) * np.uint8(255)
        masks = {int(o): binary[i] for i, o in enumerate(obj_ids)}
        return TrackedFrame(frame_idx, masks, _scores(state, frame_idx, obj_ids))

    def track(self, feed: FrameFeed, prompts: Prompts, masks: Dict[str, np.ndarray], width: int,
              height: int, options: Options, max_frames: int,
              observe: Optional[Callable[[dict], None]] = None) -> Iterator[TrackedFrame]:
        """Yield a TrackedFrame per frame, in the library's order (sam2_rules.frame_plan).

        Call inside `device_context()`. Closing the generator stops the job after this frame.
        `observe(state)` is called after each frame's pruning (tests check what is kept).
        """
        try:
            yield from self._track(feed, prompts, masks, width, height, options, max_frames,
                                   observe or (lambda state: None))
        finally:
            self._forget_frame_work()

    def _track(self, feed, prompts, masks, width, height, options, max_frames, observe):
        model, w = self.predictor, self.window
        first = prompts.frames[0]
        # `num_frames` matters to the model only through min(num_frames, max_obj_ptrs_in_encoder)
        # (the scale of the object pointers' temporal encoding) and the loop's range. So once 16
        # frames are known to exist, a cap (the --max_frames limit) is as good as the true count,
        # and tracking starts while the rest of the video is still decoding; EndOfVideo ends it.
        feed.wait_for_count(max(prompts.frames[-1] + 1, model.max_obj_ptrs_in_encoder))
        images = ModelImages(feed, self.device, length=feed.num_frames or max_frames)
        state = self._new_state(images, width, height)
        for prompt in prompts.entries:
            self._add_prompt(state, prompt, masks)
        n = options.max_frames_to_track
        forward_first = options.direction != "backward" or first == 0
        if options.direction == "backward" and first == 0:
            n = 0  # the prompted frame's own mask (the library's reverse pass yields nothing)

        if forward_first:
            last = first
            try:
                for f, ids, logits in model.propagate_in_video(
                        state, start_frame_idx=first, max_frame_num_to_track=n, reverse=False):
                    feed.release_prompt_frames(passed=f, keep=first)
                    yield self._frame(state, f, ids, logits)
                    last = f
                    # The next frame reads back to f + 1 - w; the reverse pass p + 1 .. p + w.
                    if f - w > first + w:
                        self._forget(state, f - w)
                    observe(state)
            except EndOfVideo:
                pass
            for f in range(max(first + w + 1, last - w), last + 1):
                self._forget(state, f)
            if options.direction != "both" or first == 0:
                return

        state["num_frames"] = images.length = feed.wait_done()
        for f, ids, logits in model.propagate_in_video(
                state, start_frame_idx=first, max_frame_num_to_track=n, reverse=True):
            if f == first and forward_first:
                # The forward pass yielded this frame already. The library runs the model on it
                # again here for objects not prompted on it (the reverse pass reads that), so it
                # yields it twice; the answer keeps the first, as it streams in order.
                continue
            feed.release_prompt_frames()
            yield self._frame(state, f, ids, logits)
            self._forget(state, f + w)
            observe(state)

    def segment(self, image: np.ndarray, prompts: Prompts, masks: Dict[str, np.ndarray],
                width: int, height: int) -> TrackedFrame:
        """The masks the prompts give on their one frame, without tracking: what the web page
        shows after a click. `image` is that frame at the model's size (frames.py)."""
        frame_idx = prompts.frames[0]
        images = ModelImages(_OneFrame(frame_idx, image), self.device, length=frame_idx + 1)
        state = self._new_state(images, width, height)
        with self.device_context():
            try:
                for prompt in prompts.entries:
                    f, ids, logits = self._add_prompt(state, prompt, masks)
            finally:
                self._forget_frame_work()
            binary = (logits[:, 0] > 0).to("cpu").numpy().astype(np.uint8) * np.uint8(255)
        return TrackedFrame(frame_idx, {int(o): binary[i] for i, o in enumerate(ids)},
                            {int(o): 0.0 for o in ids})

    def warm_up(self, make_feed) -> int:
        """Run a real (synthetic) 4-frame video forward and back, so the first request is fast.

        With --compile this is where the compiled kernels are built, for one click and for the
        first padded bucket (2-8 clicks). Returns the number of masks produced.
        """
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8) for _ in range(4)]
        prompts = [ObjectPrompt(frame_idx=1, points=((64.0, 48.0),), labels=(1,))]
        if self.pad_points:
            prompts.append(ObjectPrompt(frame_idx=1, points=((64.0, 48.0), (10.0, 10.0)),
                                        labels=(1, 0)))
        produced = 0
        with self.device_context():
            for prompt in prompts:
                request = Prompts((prompt,))
                feed = make_feed(FrameList(frames), feed_plan(request, Options())).start()
                try:
                    for _ in self.track(feed, request, {}, 128, 96, Options(),
                                        max_frames=len(frames)):
                        produced += 1
                finally:
                    feed.close()
        return produced


class _OneFrame:
    """A feed of one frame, for `segment`."""

    def __init__(self, frame_idx: int, image: np.ndarray):
        self._i, self._image = frame_idx, image

    def get(self, i: int) -> np.ndarray:
        if i != self._i:
            raise RuntimeError(f"frame {i} asked for; only {self._i} is here")
        return self._image


def _scores(state: dict, frame_idx: int, obj_ids) -> Dict[int, float]:
    """The object-presence logit of each object on this frame, from the library's stored outputs
    (cond outputs for prompted frames, non-cond otherwise); what the rle format reports."""
    scores = {}
    for obj_id in obj_ids:
        out = state["output_dict_per_obj"][state["obj_id_to_idx"][obj_id]]
        entry = out["cond_frame_outputs"].get(frame_idx) or \
            out["non_cond_frame_outputs"].get(frame_idx)
        logit = entry.get("object_score_logits") if entry else None
        scores[int(obj_id)] = float(logit.reshape(-1)[0]) if logit is not None else 0.0
    return scores


def describe_memory(state: dict) -> dict:
    """How many per-frame outputs a state holds (for tests and debugging)."""
    return {
        obj: {k: sorted(v[k]) for k in ("cond_frame_outputs", "non_cond_frame_outputs")}
        for obj, v in state["output_dict_per_obj"].items()
    }
