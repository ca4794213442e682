"""Frames for one job, at the model's size, in the orders the engine reads them, in memory and
disk that do not grow with the video.

SAM2's `init_state` decodes every frame up front into float32 3 x S x S tensors (12 MiB per frame
at S=1024) and keeps them all. The engine reads far less at a time:

- the prompted frames, once, when the prompts are added (kept until then);
- the forward pass: the first prompted frame to the end, in order, once;
- the reverse pass: the frames before the first prompted frame, last to first, once.

A decoder thread scans the video from frame 0 (S x S x 3 uint8 per frame, frames.py's recipe) and
feeds the forward pass through a bounded queue. Frames the engine will read again later are not
kept: the reverse pass decodes the spooled upload again, chunk by chunk from the keyframe before
each chunk (video.py), so the job's scratch disk is the upload itself. Only a stream whose
timestamps cannot be sought (rare: raw elementary streams) spills those frames to an unlinked
file instead, after checking that the disk has room (507 otherwise).
"""

import queue
import threading
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .cancellation import FeedStopped
from .frames import to_model_frame
from .rewind import Rewinder
from .spill import Spill

# The forward queue: decoding runs at most this far ahead of the model. It must hold at least
# max_obj_ptrs_in_encoder (16) frames: the engine waits to know whether the video has 16 frames
# before it starts (tracking.py).
PREFETCH = 17


class EndOfVideo(IndexError):
    """The model asked for the frame after the last one: the forward pass is complete."""


@dataclass(frozen=True)
class FeedPlan:
    first: int  # the first prompted frame: the forward pass starts here, the reverse pass below
    prompted: Tuple[int, ...]  # frames whose images the prompts need
    forward_last: Optional[int] = None  # last frame of the forward pass (None: to the end)
    forward: bool = True
    backward: bool = True

    @property
    def last_needed(self) -> Optional[int]:
        """Past this frame nothing is read: decoding can stop (None: decode to the end). At
        least 16 frames are decoded, if there are so many: the model's object pointers depend
        on min(frame count, 16) (tracking.py)."""
        top = max(self.prompted)
        if not self.forward:
            return max(top, 15)
        return None if self.forward_last is None else max(top, self.forward_last, 15)


class _Once:
    """The model-size frame, made at most once, only if something keeps it."""

    def __init__(self, resize, rgb):
        self._resize, self._rgb, self._small = resize, rgb, None

    def __call__(self) -> np.ndarray:
        if self._small is None:
            self._small = self._resize(self._rgb)
        return self._small


class FrameFeed:
    def __init__(self, source, image_size: int, plan: FeedPlan, spool_dir: Optional[str] = None,
                 cancelled: Optional[threading.Event] = None):
        self._source = source  # video.VideoReader, or anything with frames()/frames_between()
        self._size = image_size
        self._plan = plan
        self._spool_dir = spool_dir
        self._frame_bytes = image_size * image_size * 3
        # Prompted frames within the queue's reach of the first one are fed straight through;
        # otherwise the forward pass decodes the range again after the scan has passed them.
        self._direct = max(plan.prompted) - plan.first < PREFETCH - 1 or not plan.forward
        self._queue: "queue.Queue" = queue.Queue(maxsize=PREFETCH)
        self._cancelled = cancelled or threading.Event()
        self._cond = threading.Condition()
        self._decoded = 0
        self._done = False
        self._complete = True  # False when decoding stopped before the end (nothing needed)
        self._error: Optional[BaseException] = None
        self._prompt_frames: Dict[int, np.ndarray] = {}
        self._spill: Optional[Spill] = None
        self._last: Optional[tuple] = None  # (index, frame) most recently handed out
        self._next_forward = plan.first
        self._rewinder: Optional[Rewinder] = None
        self._next_reverse = plan.first - 1
        self._threads = [threading.Thread(target=self._decode, name="frame-decoder",
                                          daemon=True)]

    # --- the decoder thread -------------------------------------------------------------------
    def start(self) -> "FrameFeed":
        self._threads[0].start()
        return self

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(to_model_frame(rgb, self._size), dtype=np.uint8)

    def _keep_for_later(self, i: int, frame_fn) -> None:
        """A frame read again later: decoded again by seeking, or spilled if it cannot be."""
        if getattr(self._source, "seekable", False):
            return
        if self._spill is None:
            later = self._plan.first if self._direct else max(self._plan.prompted) + 1
            self._spill = Spill(self._spool_dir, self._frame_bytes, later)
        self._spill.put(i, frame_fn())

    def _decode(self) -> None:
        plan, last_needed = self._plan, self._plan.last_needed
        top = max(plan.prompted)
        replay = plan.forward and not self._direct  # two-pass: the forward frames come again
        try:
            for i, rgb in enumerate(self._source.frames()):
                if self._cancelled.is_set():
                    break
                if last_needed is not None and i > last_needed:
                    self._complete = False
                    break
                model_frame = _Once(self._resize, rgb)
                if i in plan.prompted:
                    self._prompt_frames[i] = model_frame()
                if i < plan.first:
                    if plan.backward:
                        self._keep_for_later(i, model_frame)
                elif plan.forward and (self._direct or i > top):
                    if replay:
                        self._replay(i)
                        replay = False
                    self._put(i, model_frame())
                elif plan.forward:
                    self._keep_for_later(i, model_frame)
                self._count(i + 1)
            if replay and not self._cancelled.is_set():
                self._replay(self._decoded)  # decoding stopped before the frame after `top`
        except FeedStopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _count(self, n: int) -> None:
        with self._cond:
            self._decoded = n
            self._cond.notify_all()

    def _replay(self, end: int) -> None:
        """Two-pass mode: the forward frames first .. end-1, which the scan did not queue."""
        first = self._plan.first
        end = min(end, (self._plan.forward_last or end) + 1)
        if end <= first:
            return
        if self._spill is not None and first in self._spill.held:
            for i in range(first, end):
                self._put(i, self._spill.get(i, self._size))
            return
        for i, rgb in self._source.frames_between(first, end):
            self._put(i, self._resize(rgb))

    def _put(self, i: int, frame: np.ndarray) -> None:
        while True:
            try:
                self._queue.put((i, frame), timeout=0.2)
                return
            except queue.Full:
                if self._cancelled.is_set():
                    raise FeedStopped() from None

    # --- what the engine asks -----------------------------------------------------------------
    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def wait_for_count(self, count: int, timeout: Optional[float] = None) -> int:
        """Block until `count` frames are decoded or decoding stopped; returns frames decoded."""
        with self._cond:
            self._cond.wait_for(lambda: self._decoded >= count or self._done
                                or self._cancelled.is_set(), timeout=timeout)
            self._raise_error()
            return self._decoded

    @property
    def decoded(self) -> int:
        return self._decoded

    @property
    def num_frames(self) -> Optional[int]:
        """The decoded frame count once the whole video has decoded, else None."""
        with self._cond:
            done = self._done and self._error is None and self._complete
            return self._decoded if done else None

    def wait_done(self) -> int:
        """Wait until decoding stopped; the frames decoded (the count, if it reached the end)."""
        with self._cond:
            self._cond.wait_for(lambda: self._done)
            self._raise_error()
            return self._decoded

    def release_prompt_frames(self, passed: Optional[int] = None,
                              keep: Optional[int] = None) -> None:
        """Propagation has passed frame `passed` (None: all of them): prompted frames up to it
        are not read again, except `keep`: the reverse pass starts on the first prompted frame
        and runs the model there again for objects not prompted on it."""
        for i in [i for i in self._prompt_frames
                  if i != keep and (passed is None or i <= passed)]:
            del self._prompt_frames[i]

    def get(self, i: int) -> np.ndarray:
        """Frame i as uint8 S x S x 3, in one of the orders the engine reads."""
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        if i in self._prompt_frames:
            # A prompt reads its frame before propagation (then the forward pass once more).
            frame = self._prompt_frames[i]
            if self._plan.forward and i == self._next_forward:
                self._get_forward(i)  # keep the forward queue in step
        elif self._plan.forward and i == self._next_forward:
            frame = self._get_forward(i)
        elif i < self._plan.first:
            frame = self._get_reverse(i)
        else:
            raise RuntimeError(f"frame {i} asked for out of order (next is {self._next_forward})")
        self._last = (i, frame)
        return frame

    def _get_forward(self, i: int) -> np.ndarray:
        while True:
            try:
                idx, frame = self._queue.get(timeout=0.2)
                break
            except queue.Empty:
                if self._cancelled.is_set():
                    raise FeedStopped() from None
                with self._cond:
                    if self._done and self._queue.empty():
                        self._raise_error()
                        raise EndOfVideo(i) from None
        self._next_forward = idx + 1
        return frame

    def _get_reverse(self, i: int) -> np.ndarray:
        if i != self._next_reverse:
            raise RuntimeError(f"frame {i} asked for out of order (next back is "
                               f"{self._next_reverse})")
        if self._rewinder is None:
            self._rewinder = Rewinder(self._source, self._spill, self._resize, self._size,
                                      self._plan.first, self._cancelled, PREFETCH).start()
        idx, frame = self._rewinder.get()
        self._next_reverse = idx - 1
        return frame

    def close(self) -> None:
        """Stop the decoders and free what they hold. Safe to call more than once."""
        self._cancelled.set()
        while True:  # unblock a decoder waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._rewinder is not None:
            self._rewinder.close()
        for thread in self._threads:
            if thread.is_alive() and threading.current_thread() is not thread:
                thread.join(timeout=10)
        self._prompt_frames.clear()
        spill, self._spill = self._spill, None
        if spill is not None:
            spill.close()
