"""What SAM2's video predictor reads, and in which order: the facts the engine is built on.

Read from `sam2/sam2_video_predictor.py` and `sam2/modeling/sam2_base.py` (sam2 1.1.0, the same
code as facebookresearch/sam2 at 2b90b9f); each function says where.
"""

from typing import List, Tuple

from .feed import FeedPlan


def memory_window(model) -> int:
    """How many frames back (or ahead, in reverse) the memory attention reads, conservatively.

    `SAM2Base._prepare_memory_conditioned_features`: mask memories of t_rel = 1 (the adjacent
    frame) up to (num_maskmem - 2) * stride + 1 frames away; object pointers of up to
    max_obj_ptrs_in_encoder - 1 frames away. Conditioning frames (every prompted frame of the
    object, `max_cond_frames_in_attn` = -1) are read whatever their distance. 15 for SAM2.1.
    """
    stride = max(1, int(model.memory_temporal_stride_for_eval))
    mask_reach = (model.num_maskmem - 1) * stride + 1
    ptr_reach = model.max_obj_ptrs_in_encoder - 1 if model.use_obj_ptrs_in_encoder else 0
    return max(mask_reach, ptr_reach)


def frame_plan(num_frames: int, first: int, options) -> Tuple[range, range]:
    """The frames each pass yields, as `propagate_in_video` computes them from
    `start_frame_idx` (the first prompted frame), `reverse` and `max_frame_num_to_track`.

    Forward: first .. min(first + N, last). Backward: down to max(first - N, 0), without `first`
    when the forward pass already yielded it. One difference: backward-only from frame 0 yields
    frame 0 (its mask is the prompt's), where the library's reverse pass yields nothing.
    """
    n = options.max_frames_to_track if options.max_frames_to_track is not None else num_frames
    forward = range(first, min(first + n, num_frames - 1) + 1)
    if options.direction == "backward":
        forward = range(0)
    back_top = first - 1 if forward else first
    backward = range(back_top, max(first - n, 0) - 1, -1)
    if options.direction == "forward":
        backward = range(0)
    return forward, backward


def feed_plan(prompts, options) -> FeedPlan:
    """Which frames the engine will read for a request, so the feed decodes nothing more."""
    first = prompts.frames[0]
    n = options.max_frames_to_track
    return FeedPlan(first=first, prompted=tuple(prompts.frames),
                    forward_last=None if n is None else first + n,
                    forward=options.direction != "backward",
                    backward=options.direction != "forward" and first > 0)


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


def upcast_memories(predictor) -> None:
    """Give the memory attention float32 memories when the model runs in float32 (the CPU).

    The predictor stores mask memories in bfloat16 (`_run_memory_encoder`) and concatenates them
    with the object pointers (float32), which promotes them to float32. On a frame where there is
    no object pointer yet (an object whose first prompt lies after the frame propagation starts
    from: tracked backwards in time from its future prompt), nothing promotes them, and on a CPU
    the attention fails with "mat1 and mat2 must have the same dtype, but got BFloat16 and Float"
    (on CUDA, autocast hides it). Upcasting there is exact (bf16 -> fp32) and is what the usual
    promotion does; on every other frame it changes nothing.
    """
    import torch

    def hook(module, args, kwargs):
        memory, curr = kwargs.get("memory"), kwargs.get("curr")
        if memory is None or curr is None:
            return None
        target = torch.promote_types(memory.dtype, curr[0].dtype)
        if memory.dtype == target:
            return None
        return args, {**kwargs, "memory": memory.to(target)}

    predictor.memory_attention.register_forward_pre_hook(hook, with_kwargs=True)
