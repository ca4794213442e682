"""The propagation engine around SAM2VideoPredictor, in memory that does not grow with the video.

It runs the library's own `add_new_points_or_box` and `propagate_in_video` (forward from the
prompt frame, then reverse), so masks are the library's. Two things differ from `init_state`:

- frames come from a `FrameFeed` one at a time (see frames.py) instead of all up front;
- after each frame, outputs the memory attention can no longer read are dropped. The library keeps
  every frame's outputs (~0.75 MiB per object per frame at 1024) but reads only: the conditioning
  frame, the previous `num_maskmem - 1` frames' memories (every `memory_temporal_stride_for_eval`
  frames), object pointers of the previous `max_obj_ptrs_in_encoder - 1` frames, and, in the
  reverse pass, the forward-pass frames just after the prompt frame. Keeping exactly a window of
  that reach (15 frames for every SAM2.1 config) leaves the masks identical.
"""

import contextlib
import logging
from collections import OrderedDict
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

from .frames import EndOfVideo, FrameFeed, ModelImages
from .prompts import Prompt

logger = logging.getLogger("sam2_tracker")

OBJ_ID = 1


def memory_window(model) -> int:
    """How many frames back (or ahead, in reverse) the memory attention reads, conservatively.

    Mask memories: t_rel = 1 is the adjacent frame; t_rel >= 2 is at most
    (num_maskmem - 2) * stride + 1 frames away (see SAM2Base._prepare_memory_conditioned_features).
    Object pointers: up to max_obj_ptrs_in_encoder - 1 frames away.
    """
    stride = max(1, int(model.memory_temporal_stride_for_eval))
    mask_reach = (model.num_maskmem - 1) * stride + 1
    ptr_reach = model.max_obj_ptrs_in_encoder - 1 if model.use_obj_ptrs_in_encoder else 0
    return max(mask_reach, ptr_reach)


def padded_prompt(points: List[Tuple[float, float]], labels: List[int], has_box: bool
                  ) -> Tuple[List[Tuple[float, float]], List[int]]:
    """With torch.compile (`--compile`), pad the click count into buckets of 8, 16, 32, 64...

    The compiled prompt encoder and mask decoder are specialised on the number of points
    (`dynamic=False`: the library saw accuracy regressions with dynamic shapes), so each new count
    recompiles (minutes). Padding uses label -1, the library's own "not a point" token. A single
    click is never padded: one point selects SAM's multi-mask output (multimask_max_pt_num = 1),
    and padding it would change which mask is chosen.
    """
    total = len(points) + (2 if has_box else 0)
    if total < 2:
        return points, labels
    bucket = 8
    while bucket < total:
        bucket *= 2
    extra = bucket - total
    return points + [(0.0, 0.0)] * extra, labels + [-1] * extra


class Tracker:
    """Owns the model; `track` runs one video. One call at a time (the scheduler ensures it)."""

    def __init__(self, predictor, device, pad_points: bool = False):
        self.predictor = predictor
        self.device = device
        self.pad_points = pad_points
        self.window = memory_window(predictor)

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

    def _add_prompt(self, state: dict, prompt: Prompt) -> None:
        points, labels = list(prompt.points), list(prompt.labels)
        if self.pad_points:
            points, labels = padded_prompt(points, labels, prompt.box is not None)
        self.predictor.add_new_points_or_box(
            state,
            frame_idx=prompt.frame_idx,
            obj_id=OBJ_ID,
            points=np.asarray(points, dtype=np.float32).reshape(-1, 2) if points else None,
            labels=np.asarray(labels, dtype=np.int32) if points else None,
            box=np.asarray(prompt.box, dtype=np.float32) if prompt.box is not None else None,
        )

    def _forget(self, state: dict, frame_idx: int) -> None:
        for obj_idx, out in state["output_dict_per_obj"].items():
            out["non_cond_frame_outputs"].pop(frame_idx, None)
            state["frames_tracked_per_obj"][obj_idx].pop(frame_idx, None)

    def _mask(self, video_res_masks) -> np.ndarray:
        # (objects, 1, H, W) logits at the video's size; the library's README binarises at 0.
        return (video_res_masks[0, 0] > 0).to("cpu").numpy().astype(np.uint8) * np.uint8(255)

    def track(self, feed: FrameFeed, prompt: Prompt, width: int, height: int,
              max_frames: int, observe: Optional[Callable[[dict], None]] = None
              ) -> Iterator[Tuple[int, np.ndarray]]:
        """Yield (frame index, uint8 0/255 HxW mask): prompt frame to the end, then back to 0.

        Call inside `device_context()`. Closing the generator stops the job after this frame.
        `observe(state)` is called after each frame's pruning (tests check what is kept).
        """
        observe = observe or (lambda state: None)
        p = prompt.frame_idx
        model = self.predictor
        # `num_frames` matters to the model only through min(num_frames, max_obj_ptrs_in_encoder)
        # (the scale of the object pointers' temporal encoding) and the loop's range. So once 16
        # frames are known to exist, a cap (the --max_frames limit) is as good as the true count,
        # and tracking starts while the rest of the video is still decoding; EndOfVideo ends it.
        feed.wait_for_count(max(p + 1, model.max_obj_ptrs_in_encoder))
        images = ModelImages(feed, self.device, length=feed.num_frames or max_frames)
        state = self._new_state(images, width, height)
        self._add_prompt(state, prompt)

        w = self.window
        last_forward = p
        try:
            for f, _, masks in model.propagate_in_video(state, start_frame_idx=p, reverse=False):
                yield f, self._mask(masks)
                last_forward = f
                # The next frame reads back to f + 1 - w; the reverse pass reads p + 1 .. p + w.
                if f - w > p + w:
                    self._forget(state, f - w)
                observe(state)
        except EndOfVideo:
            pass
        for f in range(max(p + w + 1, last_forward - w), last_forward + 1):
            self._forget(state, f)

        if p == 0:
            return
        state["num_frames"] = images.length = feed.wait_done()
        for f, _, masks in model.propagate_in_video(state, start_frame_idx=p, reverse=True):
            if f == p:
                continue  # the prompt frame was yielded by the forward pass already
            yield f, self._mask(masks)
            self._forget(state, f + w)
            observe(state)

    def warm_up(self, make_feed) -> int:
        """Run a real (synthetic) 4-frame video forward and back, so the first request is fast.

        With --compile this is where the compiled kernels are built, for one click and for the
        first padded bucket (2-8 clicks). Returns the number of masks produced.
        """
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8) for _ in range(4)]
        prompts = [Prompt(frame_idx=1, points=((64.0, 48.0),), labels=(1,))]
        if self.pad_points:
            prompts.append(Prompt(frame_idx=1, points=((64.0, 48.0), (10.0, 10.0)), labels=(1, 0)))
        produced = 0
        with self.device_context():
            for prompt in prompts:
                feed = make_feed(iter(frames), prompt.frame_idx).start()
                try:
                    for _ in self.track(feed, prompt, 128, 96, max_frames=len(frames)):
                        produced += 1
                finally:
                    feed.close()
        return produced


def describe_memory(state: dict) -> dict:
    """How many per-frame outputs a state holds (for tests and debugging)."""
    return {
        obj: {k: sorted(v[k]) for k in ("cond_frame_outputs", "non_cond_frame_outputs")}
        for obj, v in state["output_dict_per_obj"].items()
    }
