"""preview=mp4: the video with the masks over it, as H.264 in an mp4, in memory that does not grow
with the video.

Masks arrive in tracking order: the first prompted frame `s` to the end, then back from s - 1 to
frame 0. An mp4 wants its frames in order, and holding the whole video to reorder it is what we
may not do. So the preview is made of two H.264 segments, each from its own encoder with the same
settings (so the same SPS/PPS, checked), each starting on a keyframe:

    A: s .. end   encoded as the masks come (the writer thread): the frame is decoded from the
                  spooled upload by a reader of our own, overlaid and encoded at once
    B: 0 .. s-1   the masks of the backward pass are kept meanwhile as zlib-compressed label maps
                  in a scratch file under --spool_dir (a few KiB a frame); at the end this part of
                  the video is decoded again (video.VideoReader.frames_between: the same frames,
                  bit for bit, as the tracker saw), overlaid and encoded

and `finish` copies B's packets, then A's (timestamps shifted by B's length), into one mp4
(`+faststart`: the index first, so a browser plays it while it loads). The preview covers the
tracked frames (all of them unless max_frames_to_track was given); the manifest says which.
Memory: one decoded frame, the encoder's look-ahead and an index of offsets; disk: the label maps
of frames 0..s-1 and the mp4 (three copies at the peak). The last step costs B's encoding, so a
prompt late in a long video makes the end of the answer wait for it (see bench/).
"""

import os
import shutil
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import Cancelled
from ..video import VideoInfo, VideoLimits, VideoReader
from .overlay import even_size, outline_thickness, overlay, pad_even

# veryfast: ~2-3 ms a 640x360 frame on one core; crf 23: x264's default quality; no B-frames, so
# that decode order is display order and the two segments join without reordering delays.
X264_OPTIONS = {"preset": "veryfast", "crf": "23", "bf": "0", "threads": "4"}
FALLBACK_FPS = Fraction(25)


@dataclass(frozen=True)
class PreviewSource:
    """What the preview reads besides the masks: the spooled upload, checked as the job's was."""

    path: str
    info: VideoInfo
    limits: VideoLimits
    spool_dir: str
    cancelled: Optional[threading.Event] = None  # the request's: stops the last step early


class LabelStore:
    """Label maps of frames that cannot be encoded yet, compressed, in a scratch file."""

    def __init__(self, path: str):
        self._file = open(path, "w+b")
        self._index: Dict[int, Tuple[int, int]] = {}  # frame -> (offset, length)
        self.bytes = 0

    def put(self, frame_idx: int, labels: np.ndarray) -> None:
        data = zlib.compress(np.ascontiguousarray(labels).tobytes(), 1)
        self._file.seek(0, os.SEEK_END)
        self._index[frame_idx] = (self._file.tell(), len(data))
        self._file.write(data)
        self.bytes += len(data)

    def __contains__(self, frame_idx: int) -> bool:
        return frame_idx in self._index

    def get(self, frame_idx: int, shape: Tuple[int, int]) -> np.ndarray:
        offset, length = self._index[frame_idx]
        self._file.seek(offset)
        return np.frombuffer(zlib.decompress(self._file.read(length)), np.uint8).reshape(shape)

    def close(self) -> None:
        self._file.close()


class Segment:
    """One H.264 stream from one encoder, frames in display order, in its own mp4 file."""

    def __init__(self, path: str, width: int, height: int, rate: Fraction):
        import av

        self.path = path
        self._container = av.open(path, "w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = dict(X264_OPTIONS)
        self._time_base = 1 / rate
        self.frames = 0
        self.extradata: Optional[bytes] = None

    def encode(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = self.frames, self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self.extradata = bytes(self._stream.codec_context.extradata or b"")
        finally:
            self._container.close()
            self._container = None

    def discard(self) -> None:
        """Stop without flushing (the job stopped); the file is removed with its folder."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - cleaning up after an earlier error
                pass


def join(segments, path: str, rate: Fraction) -> None:
    """The segments' packets, one after the other, in one mp4 with its index first."""
    import av

    inputs = [av.open(s.path) for s in segments]
    try:
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream_from_template(inputs[-1].streams.video[0])
            shift = Fraction(0)  # seconds before this segment
            for segment, source in zip(segments, inputs):
                src = source.streams.video[0]
                offset = int(round(shift / src.time_base))
                for packet in source.demux(src):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = stream
                    out.mux(packet)
                shift += segment.frames / rate
    finally:
        for source in inputs:
            source.close()


class Preview:
    """Takes (frame_idx, label map) in tracking order; `finish` returns the mp4's path."""

    def __init__(self, source: PreviewSource):
        self._source = source
        info = source.info
        self._shape = (info.height, info.width)
        self.width, self.height = even_size(info.width, info.height)
        self.rate = Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else FALLBACK_FPS
        self._thickness = outline_thickness(info.width, info.height)
        self._dir: Optional[str] = None
        self._reader: Optional[VideoReader] = None
        self._frames = None  # our reader's forward iterator
        self._decoded = 0  # frames that iterator has passed
        self._store: Optional[LabelStore] = None
        self._forward: Optional[Segment] = None
        self._start: Optional[int] = None  # the first frame that came: segment A starts there
        self._next = 0  # the next frame segment A wants
        self._range: Optional[Tuple[int, int]] = None
        self.seconds = 0.0  # decoding, drawing and encoding, all together
        self.finish_seconds: Optional[float] = None  # of which the last step

    # --- while tracking (the writer thread) ---------------------------------------------------
    def _open(self, frame_idx: int) -> None:
        self._dir = tempfile.mkdtemp(prefix="preview-", dir=self._source.spool_dir)
        self._store = LabelStore(os.path.join(self._dir, "labels.bin"))
        self._reader = VideoReader(self._source.path, self._source.limits)
        self._frames = self._reader.frames()
        self._forward = Segment(os.path.join(self._dir, "a.mp4"), self.width, self.height,
                                self.rate)
        self._start = self._next = frame_idx

    def _decode(self, frame_idx: int) -> np.ndarray:
        """Frame `frame_idx` from our forward reader (frames before the first are passed over)."""
        while True:
            try:
                rgb = next(self._frames)
            except StopIteration:
                raise RuntimeError(f"preview: the video ended before frame {frame_idx} on a "
                                   f"second read") from None
            self._decoded += 1
            if self._decoded - 1 == frame_idx:
                return rgb

    def _draw(self, rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return pad_even(overlay(rgb, labels, self._thickness))

    def add(self, frame_idx: int, labels: np.ndarray) -> None:
        t0 = time.perf_counter()
        if self._start is None:
            self._open(frame_idx)
        lo, hi = self._range or (frame_idx, frame_idx)
        self._range = (min(lo, frame_idx), max(hi, frame_idx))
        if frame_idx == self._next:
            self._forward.encode(self._draw(self._decode(frame_idx), labels))
            self._next += 1
        else:
            self._store.put(frame_idx, labels)
        self.seconds += time.perf_counter() - t0

    # --- at the end (the device thread, after the last mask) ----------------------------------
    def finish(self) -> str:
        t0 = time.perf_counter()
        if self._range is None:
            raise RuntimeError("preview: no frame was tracked")
        lo, hi = self._range
        missing = [i for i in range(lo, self._start) if i not in self._store]
        if self._next != hi + 1 or missing:
            raise RuntimeError(f"preview: frames came out of order (segment A stopped at "
                               f"{self._next - 1} of {hi}; {len(missing)} earlier frames missing)")
        self._forward.close()
        segments = [self._forward]
        if lo < self._start:
            backward = Segment(os.path.join(self._dir, "b.mp4"), self.width, self.height,
                               self.rate)
            try:
                for i, rgb in self._reader.frames_between(lo, self._start):
                    if self._source.cancelled is not None and self._source.cancelled.is_set():
                        raise Cancelled("the request stopped while the preview was finished")
                    backward.encode(self._draw(rgb, self._store.get(i, self._shape)))
            finally:
                backward.close()
            if backward.extradata != self._forward.extradata:
                raise RuntimeError("preview: the two H.264 segments have different parameter "
                                   "sets and cannot be joined")
            segments.insert(0, backward)
        path = os.path.join(self._dir, "preview.mp4")
        join(segments, path, self.rate)
        self.seconds += time.perf_counter() - t0
        self.finish_seconds = round(time.perf_counter() - t0, 3)
        return path

    def describe(self) -> dict:
        lo, hi = self._range
        return {"name": "preview.mp4", "codec": "h264", "pix_fmt": "yuv420p",
                "width": self.width, "height": self.height, "fps": float(self.rate),
                "first_frame": lo, "frames": hi - lo + 1,
                "padded": (self.width, self.height) != self._shape[::-1],
                "encode_s": round(self.seconds, 3),
                "finish_s": self.finish_seconds,
                "scratch_label_bytes": self._store.bytes if self._store else 0}

    def abort(self) -> None:
        """Close and remove everything the preview made (safe to call more than once)."""
        if self._forward is not None:
            self._forward.discard()
        if self._store is not None:
            self._store.close()
        if self._frames is not None:
            self._frames.close()
        if self._reader is not None:
            self._reader.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
