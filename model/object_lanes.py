"""On a CPU, the objects of a frame tracked two at a time, each on half the threads, with the
library's numbers.

The library runs the objects of a frame one after another (`propagate_in_video` calls
`_run_single_frame_inference` per object), each op on all of torch's threads. On 2 cores that
scales 1.77x, not 2x (the same 24 frames at 2 objects: 45.8 s on 1 thread, 25.9 s on 2): small
ops, layer norms and the Python between ops leave a core idle. Two objects side by side, one
thread each, keep both cores busy. So when the library asks for the first object of a frame,
every object that still needs the frame is computed, in pairs on two lanes (the device thread
and one helper thread); an odd one out runs alone on all threads; the library's next calls for
that frame get their results.

Off by default (--object_lanes turns it on), because the gain is not shown through the server
yet. Measured on 2 cores, tiny @512, 2 objects: alternating frames in one process, 1.26 against
1.34 s per frame; whole 24-frame runs of `Tracker.track` alternating with lanes off, 0.81-0.99x
the time (median 0.92, 6 pairs); but two servers side by side, lanes on and off, 0.99-1.18x (4
pairs). Where the server loses it (its writer, decoder and event-loop threads beside two busy
lanes?) is the open question.

The numbers stay the library's, bit for bit: the objects of a frame are independent (each reads
only its own memory and the frame's cached features, computed before the lanes start), and an
op's result does not depend on its thread count, with three exceptions found by replaying every
op of a frame on one thread against two (tests/test_objects.py compares the masks with the
library's exactly with lanes on; tests/test_object_lanes.py checks the three fixes):

- 1x1 convolutions: with more than one thread torch picks oneDNN for inputs of more than 20480
  values, with one thread its own loop (`ConvParams::use_mkldnn` in ATen's Convolution.cpp).
  Those call oneDNN directly here, which gives the same numbers on any thread count, and what
  torch runs with 2 threads; smaller ones keep torch's loop, as torch does.
- the bilinear upscaling of the three low-res masks (`_forward_sam_heads`): its result depends on
  how the output is split between threads; it runs on the library's thread count.
- the object-pointer projections (`obj_ptr_proj`, `obj_ptr_tpos_proj`): matrices of 1 to 16
  rows, where MKL's kernel depends on the thread count; they run on the library's thread count.

Not used on CUDA (one stream of kernels), with --compile (one graph), or with fewer than 2
threads.
"""

import threading
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional

_lane = threading.local()  # lane_threads: this thread's count while it runs in a lane


def _in_lane() -> bool:
    return getattr(_lane, "threads", None) is not None


class _FullThreads:
    """Inside a lane: run this step on the library's thread count, then go back."""

    def __init__(self, torch, threads: int):
        self._torch, self._threads = torch, threads

    # No state of its own: both lanes use it at once.
    def __enter__(self):
        if _in_lane():
            self._torch.set_num_threads(self._threads)

    def __exit__(self, *exc):
        if _in_lane():
            self._torch.set_num_threads(_lane.threads)


class ObjectLanes:
    """Installs the lanes on a SAM2 video predictor (CPU, float32). `close()` stops the helper."""

    def __init__(self, predictor, threads: Optional[int] = None):
        import torch

        self._torch = torch
        self.threads = threads or torch.get_num_threads()
        self.lane_threads = max(1, self.threads // 2)
        self._full = _FullThreads(torch, self.threads)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pending: Dict[int, tuple] = {}  # id(output_dict) -> (current_out, pred_masks)
        self._pending_frame: Optional[tuple] = None
        self.paired = 0  # objects computed in a lane beside another (tests and the bench read it)
        self._install(predictor)

    # --- the frame ---------------------------------------------------------------------------
    def _install(self, predictor) -> None:
        one_object = predictor._run_single_frame_inference

        def run(inference_state, output_dict, frame_idx, batch_size, is_init_cond_frame,
                point_inputs, mask_inputs, reverse, run_mem_encoder, prev_sam_mask_logits=None):
            args = dict(frame_idx=frame_idx, batch_size=batch_size,
                        is_init_cond_frame=is_init_cond_frame, point_inputs=point_inputs,
                        mask_inputs=mask_inputs, reverse=reverse,
                        run_mem_encoder=run_mem_encoder, prev_sam_mask_logits=prev_sam_mask_logits)
            key = (id(inference_state), frame_idx, reverse)
            if self._pending_frame == key and id(output_dict) in self._pending:
                return self._pending.pop(id(output_dict))
            self._pending, self._pending_frame = {}, None
            # Only propagation's calls: one object, no prompt, memory encoded.
            tracking = (batch_size == 1 and not is_init_cond_frame and point_inputs is None
                        and mask_inputs is None and run_mem_encoder
                        and prev_sam_mask_logits is None)
            waiting = [d for d in inference_state["output_dict_per_obj"].values()
                       if frame_idx not in d["cond_frame_outputs"]] if tracking else []
            if len(waiting) < 2 or waiting[0] is not output_dict:
                return one_object(inference_state=inference_state, output_dict=output_dict,
                                  **args)
            # The frame's features, once, before the lanes read them (the library's own cache).
            predictor._get_image_feature(inference_state, frame_idx, 1)
            results = self._run_all(
                lambda d: one_object(inference_state=inference_state, output_dict=d, **args),
                waiting)
            self._pending = {id(d): r for d, r in zip(waiting[1:], results[1:])}
            self._pending_frame = key
            return results[0]

        predictor._run_single_frame_inference = run
        self._fix_thread_dependent_ops(predictor)

    def _run_all(self, one, dicts) -> list:
        results = [None] * len(dicts)
        pairs = len(dicts) // 2 * 2
        for i in range(0, pairs, 2):
            other = self._helper().submit(self._in_lane, one, dicts[i + 1])
            try:
                results[i] = self._in_lane(one, dicts[i])
            finally:
                results[i + 1] = other.result()  # waits even when ours failed
            self.paired += 2
        if pairs < len(dicts):
            results[-1] = one(dicts[-1])
        return results

    def _in_lane(self, one, output_dict):
        torch = self._torch
        _lane.threads = self.lane_threads
        torch.set_num_threads(self.lane_threads)
        try:
            with torch.inference_mode():
                return one(output_dict)
        finally:
            _lane.threads = None
            torch.set_num_threads(self.threads)

    def _helper(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sam2-lane")
        return self._pool

    def clear(self) -> None:
        """After a video: nothing of it stays referenced."""
        self._pending, self._pending_frame = {}, None

    def close(self) -> None:
        self.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # --- ops whose numbers depend on the thread count ----------------------------------------
    def _fix_thread_dependent_ops(self, predictor) -> None:
        torch = self._torch
        for module in predictor.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1) and \
                    module.stride == (1, 1) and module.dilation == (1, 1) and \
                    module.groups == 1 and module.padding in ((0, 0), 0, "valid") and \
                    module.padding_mode == "zeros":
                module.forward = types.MethodType(_onednn_conv1x1(torch), module)
        full = self._full

        def enter(module, args):
            full.__enter__()

        def leave(module, args, output):
            full.__exit__()

        for module in (predictor.obj_ptr_proj, predictor.obj_ptr_tpos_proj):
            module.register_forward_pre_hook(enter)
            module.register_forward_hook(leave)
        _install_interpolate(full)


def _onednn_conv1x1(torch):
    plain = torch.nn.Conv2d.forward

    def forward(self, x):
        # torch's own rule with more than one thread: oneDNN for a batch above 1 or more than
        # 20480 input values, its native loop otherwise (the same on any thread count).
        if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4 or \
                not torch.backends.mkldnn.is_available() or \
                (x.shape[0] == 1 and x.numel() <= 20480):
            return plain(self, x)
        return torch.ops.aten.mkldnn_convolution(x, self.weight, self.bias, [0, 0], [1, 1],
                                                 [1, 1], 1)
    return forward


class _Functional(types.ModuleType):
    """torch.nn.functional as seen by sam2_base, with `interpolate` on the library's threads."""

    def __init__(self, functional, full):
        super().__init__(functional.__name__)
        self._functional, self._fullthreads = functional, full

    def __getattr__(self, name):
        return getattr(self._functional, name)

    def interpolate(self, *args, **kwargs):
        with self._fullthreads:
            return self._functional.interpolate(*args, **kwargs)


def _install_interpolate(full) -> None:
    import sam2.modeling.sam2_base as sam2_base

    current = sam2_base.F
    functional = getattr(current, "_functional", current)
    sam2_base.F = _Functional(functional, full)
