"""Frames kept compactly while a video is tracked, turned into model input one at a time.

SAM2's `init_state` decodes every frame up front into float32 3 x S x S tensors (12 MiB per frame
at S=1024, on the GPU) and keeps them all for the whole run. Here a decoder thread turns each frame
into uint8 S x S x 3 (3 MiB at 1024, 0.75 MiB at 512) and:

- frames before the prompt frame, which the reverse pass reads last-to-first, go to a spill file
  (pread/pwrite: the page cache holds them, the process's RSS does not grow with their number);
- frames from the prompt frame on, which the forward pass reads once and in order, go through a
  bounded queue, so decoding runs ahead of the model by at most `prefetch` frames.

`ModelImages` is what the library finds in `inference_state["images"]`: frame i becomes a
normalized float tensor on the device only when the model asks for it.
"""

import os
import queue
import tempfile
import threading
from typing import Callable, Iterator, Optional

import numpy as np

from .errors import BadInput


class EndOfVideo(IndexError):
    """The model asked for the frame after the last one: the forward pass is complete."""


class FeedStopped(Exception):
    """The job was cancelled while the feed was waiting."""


class FrameFeed:
    def __init__(self, frames: Iterator[np.ndarray], resize: Callable[[np.ndarray], np.ndarray],
                 image_size: int, prompt_frame: int, spool_dir: Optional[str] = None,
                 prefetch: int = 17, cancelled: Optional[threading.Event] = None):
        self._frames = frames
        self._resize = resize
        self._size = image_size
        self._p = prompt_frame
        self._frame_bytes = image_size * image_size * 3
        # The forward pass reads frames in order from the queue. It must hold at least
        # max_obj_ptrs_in_encoder (16) frames: the tracker waits to know whether the video has 16
        # frames before it starts (see Tracker.track).
        self._queue: "queue.Queue" = queue.Queue(maxsize=max(prefetch, 17))
        self._cancelled = cancelled or threading.Event()
        self._cond = threading.Condition()
        self._decoded = 0
        self._done = False
        self._error: Optional[BaseException] = None
        self._last: Optional[tuple] = None  # (index, frame) most recently taken from the queue
        self._next_from_queue = prompt_frame
        self._spill_fd: Optional[int] = None
        if prompt_frame > 0:
            fd, path = tempfile.mkstemp(prefix="sam2-frames-", suffix=".u8", dir=spool_dir)
            os.unlink(path)  # the open descriptor keeps it; nothing is left behind on a crash
            self._spill_fd = fd
        self._thread = threading.Thread(target=self._decode, name="frame-decoder", daemon=True)

    # --- decoder thread -------------------------------------------------------------------
    def start(self) -> "FrameFeed":
        self._thread.start()
        return self

    def _decode(self) -> None:
        try:
            for i, rgb in enumerate(self._frames):
                if self._cancelled.is_set():
                    break
                small = np.ascontiguousarray(self._resize(rgb), dtype=np.uint8)
                if i < self._p:
                    os.pwrite(self._spill_fd, small.data, i * self._frame_bytes)
                else:
                    self._put(i, small)
                with self._cond:
                    self._decoded = i + 1
                    self._cond.notify_all()
        except FeedStopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _put(self, i: int, frame: np.ndarray) -> None:
        while True:
            try:
                self._queue.put((i, frame), timeout=0.2)
                return
            except queue.Full:
                if self._cancelled.is_set():
                    raise FeedStopped() from None

    # --- consumer side --------------------------------------------------------------------
    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def wait_for_count(self, count: int, timeout: Optional[float] = None) -> int:
        """Block until `count` frames are decoded or the video ended; returns frames decoded."""
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
        """The decoded frame count once decoding has finished, else None."""
        with self._cond:
            return self._decoded if self._done and self._error is None else None

    def wait_done(self) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._done)
            self._raise_error()
            return self._decoded

    def get(self, i: int) -> np.ndarray:
        """Frame i as uint8 S x S x 3. Frames >= the prompt frame must be asked for in order."""
        if i < self._p:
            frame = np.empty((self._size, self._size, 3), dtype=np.uint8)
            if os.preadv(self._spill_fd, [frame.data], i * self._frame_bytes) != self._frame_bytes:
                raise RuntimeError(f"frame {i} is missing from the spill file")
            return frame
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        if i != self._next_from_queue:
            raise RuntimeError(f"frame {i} asked for out of order (next is "
                               f"{self._next_from_queue})")
        while True:
            try:
                idx, frame = self._queue.get(timeout=0.2)
                break
            except queue.Empty:
                if self._cancelled.is_set():
                    raise FeedStopped()
                with self._cond:
                    if self._done and self._queue.empty():
                        self._raise_error()
                        raise EndOfVideo(i)
        self._next_from_queue = idx + 1
        self._last = (idx, frame)
        return frame

    def close(self) -> None:
        """Stop the decoder and free the spill file. Safe to call more than once."""
        self._cancelled.set()
        while True:  # unblock a decoder waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        fd, self._spill_fd = self._spill_fd, None
        if fd is not None:
            os.close(fd)


class ModelImages:
    """`inference_state["images"]` for SAM2: frame i as a normalized (3, S, S) float tensor.

    Normalization uses a 256-entry table per channel holding exactly what the library computes
    for each uint8 value, `(float32(x / 255.0) - mean) / std` in float32, so the tensors are
    bit-identical to `init_state`'s for the same frames; the frame crosses to the GPU as uint8.
    """

    def __init__(self, feed: FrameFeed, device, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), length: int = 0):
        import torch

        self._feed = feed
        self._device = device
        values = torch.from_numpy(np.arange(256, dtype=np.float64) / 255.0).float()
        m = torch.tensor(mean, dtype=torch.float32)[:, None]
        s = torch.tensor(std, dtype=torch.float32)[:, None]
        self._lut = ((values[None, :] - m) / s).to(device)  # (3, 256)
        self._channels = torch.arange(3, device=device)[:, None, None]
        self.length = length

    def __getitem__(self, i: int):
        import torch

        frame = torch.from_numpy(self._feed.get(int(i))).to(self._device, non_blocking=True)
        return self._lut[self._channels, frame.permute(2, 0, 1).long()]

    def __len__(self) -> int:
        return self.length


def check_prompt_frame(feed: FrameFeed, prompt) -> int:
    """Wait until the prompt frame is decoded; 400 when the video ends before it."""
    decoded = feed.wait_for_count(prompt.frame_idx + 1)
    if decoded == 0:
        raise BadInput("the video has no decodable frames")
    prompt.check_frame(decoded)
    return decoded
