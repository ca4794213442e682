"""object_lanes.py: the objects of a frame two at a time, each on half the threads, handed back to
the library's loop in its order. A stand-in predictor records where and on how many threads each
object ran; tests/test_objects.py checks on the real model that the masks stay the library's."""

import threading

import pytest
import torch
import torch.nn.functional as F

from model.object_lanes import ObjectLanes

THREADS = 2


class Predictor(torch.nn.Module):
    """What the lanes touch of SAM2VideoPredictor, recording each call."""

    def __init__(self, fail_on=None):
        super().__init__()
        self.obj_ptr_proj = torch.nn.Linear(4, 4)
        self.obj_ptr_tpos_proj = torch.nn.Linear(4, 4)
        self.calls, self.features, self.fail_on = [], [], fail_on
        self._lock = threading.Lock()

    def _get_image_feature(self, state, frame_idx, batch_size):
        self.features.append((frame_idx, threading.current_thread().name))

    def _run_single_frame_inference(self, inference_state, output_dict, frame_idx, batch_size,
                                    is_init_cond_frame, point_inputs, mask_inputs, reverse,
                                    run_mem_encoder, prev_sam_mask_logits=None):
        threads = torch.get_num_threads()
        self.obj_ptr_proj(torch.zeros(1, 4))
        after = torch.get_num_threads()
        with self._lock:
            self.calls.append({"obj": output_dict["name"], "frame": frame_idx,
                               "thread": threading.current_thread().name, "threads": threads,
                               "after_pointer": after,
                               "inference": torch.is_inference_mode_enabled()})
        if output_dict["name"] == self.fail_on:
            raise RuntimeError(f"object {self.fail_on} failed")
        return {"obj": output_dict["name"], "frame": frame_idx}, output_dict["name"]


def state_with(n, cond=None):
    """An inference_state of n objects; `cond` maps object -> its conditioning frames."""
    cond = cond or {}
    return {"output_dict_per_obj": {
        i: {"name": i, "cond_frame_outputs": {f: {} for f in cond.get(i, ())},
            "non_cond_frame_outputs": {}} for i in range(n)}}


def library_loop(predictor, state, frame_idx, reverse=False):
    """The body of SAM2's propagate_in_video for one frame (sam2_video_predictor.py)."""
    got = []
    for obj_idx in range(len(state["output_dict_per_obj"])):
        d = state["output_dict_per_obj"][obj_idx]
        if frame_idx in d["cond_frame_outputs"]:
            continue
        out, mask = predictor._run_single_frame_inference(
            inference_state=state, output_dict=d, frame_idx=frame_idx, batch_size=1,
            is_init_cond_frame=False, point_inputs=None, mask_inputs=None, reverse=reverse,
            run_mem_encoder=True)
        d["non_cond_frame_outputs"][frame_idx] = out
        got.append((out, mask))
    return got


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def lanes_on(threads):
    made = []

    def make(predictor):
        lanes = ObjectLanes(predictor, threads=THREADS)
        made.append(lanes)
        return lanes
    yield make
    for lanes in made:
        lanes.close()


def test_objects_run_in_pairs_on_one_thread_each_and_come_back_in_order(lanes_on):
    predictor = Predictor()
    lanes = lanes_on(predictor)
    state = state_with(3)
    with torch.inference_mode():
        got = library_loop(predictor, state, 7)
    # The library gets each object's own result, in its order.
    assert got == [({"obj": i, "frame": 7}, i) for i in range(3)]
    calls = {c["obj"]: c for c in predictor.calls}
    # Objects 0 and 1 side by side: two threads, one torch thread each; the odd one out alone
    # on the device thread with all of them.
    assert {calls[0]["thread"], calls[1]["thread"]} == {
        threading.current_thread().name, "sam2-lane_0"}
    assert calls[0]["threads"] == calls[1]["threads"] == 1
    assert calls[2]["thread"] == threading.current_thread().name and calls[2]["threads"] == 2
    assert all(c["inference"] for c in predictor.calls)
    # The frame's features once, before the lanes read them.
    assert predictor.features == [(7, threading.current_thread().name)]
    assert lanes.paired == 2 and lanes._pending == {}
    assert torch.get_num_threads() == THREADS


def test_pointer_projections_run_on_all_threads_inside_a_lane(lanes_on):
    predictor = Predictor()
    seen = []
    lanes_on(predictor)
    predictor.obj_ptr_proj.register_forward_pre_hook(
        lambda module, args: seen.append(torch.get_num_threads()))
    library_loop(predictor, state_with(2), 3)
    assert seen == [2, 2]  # on the library's thread count, even in a lane...
    assert [c["after_pointer"] for c in predictor.calls] == [1, 1]  # ...and back to one after


def test_conditioning_frames_are_skipped_and_a_lone_object_runs_as_the_library_does(lanes_on):
    predictor = Predictor()
    lanes = lanes_on(predictor)
    state = state_with(2, cond={0: [5]})
    got = library_loop(predictor, state, 5)
    assert got == [({"obj": 1, "frame": 5}, 1)]
    assert predictor.calls[0]["threads"] == 2 and lanes.paired == 0
    assert predictor.features == []  # the library's own call fetches them


def test_prompt_calls_pass_straight_through(lanes_on):
    predictor = Predictor()
    lanes = lanes_on(predictor)
    state = state_with(3)
    out, _ = predictor._run_single_frame_inference(
        inference_state=state, output_dict=state["output_dict_per_obj"][0], frame_idx=2,
        batch_size=1, is_init_cond_frame=True, point_inputs={"point_coords": None},
        mask_inputs=None, reverse=False, run_mem_encoder=False)
    assert out == {"obj": 0, "frame": 2}
    assert len(predictor.calls) == 1 and lanes.paired == 0


def test_reverse_pass_and_next_frame_are_new_frames(lanes_on):
    predictor = Predictor()
    lanes_on(predictor)
    state = state_with(2)
    library_loop(predictor, state, 4)
    library_loop(predictor, state, 4, reverse=True)  # the same frame again in the reverse pass
    library_loop(predictor, state, 5)
    assert [(c["obj"], c["frame"]) for c in predictor.calls if c["obj"] == 1] == \
        [(1, 4), (1, 4), (1, 5)]
    assert [f for f, _ in predictor.features] == [4, 4, 5]


def test_an_error_in_a_lane_reaches_the_caller_and_nothing_stays_behind(lanes_on):
    predictor = Predictor(fail_on=1)
    lanes = lanes_on(predictor)
    state = state_with(2)
    with pytest.raises(RuntimeError, match="object 1 failed"):
        library_loop(predictor, state, 3)
    assert lanes._pending == {}
    assert torch.get_num_threads() == THREADS
    predictor.fail_on = None
    assert [m for _, m in library_loop(predictor, state, 4)] == [0, 1]


def test_1x1_convolutions_follow_torchs_choice_on_every_thread_count(lanes_on):
    conv = torch.nn.Conv2d(256, 64, 1)

    class WithConv(Predictor):
        def __init__(self):
            super().__init__()
            self.conv = conv

    torch.manual_seed(0)
    big, small = torch.randn(1, 256, 16, 16), torch.randn(1, 256, 8, 8)  # 65536 / 16384 values
    with torch.inference_mode():
        reference = {"big": F.conv2d(big, conv.weight, conv.bias),
                     "small": F.conv2d(small, conv.weight, conv.bias)}
        lanes_on(WithConv())
        got = {}

        def one_thread():
            torch.set_num_threads(1)
            with torch.inference_mode():
                got["big"], got["small"] = conv(big), conv(small)

        worker = threading.Thread(target=one_thread)
        worker.start()
        worker.join()
        # What torch computes on 2 threads, from a thread that has one.
        assert torch.equal(got["big"], reference["big"])
        assert torch.equal(got["small"], reference["small"])
        assert torch.equal(conv(big), reference["big"])
