"""Decode an untrusted video file with FFmpeg (PyAV), lazily, within limits, and seek back in it.

Frame i is the i-th frame the decoder outputs (presentation order), 0-based; the frame count is
what decodes, not what the container claims (a truncated file simply has fewer frames). Nothing
is decoded before the frame size has been checked against --max_pixels, so a small file that
claims 100k x 100k frames costs nothing. PyAV's rgb24 conversion gives the same pixels as
OpenCV's (checked for mp4v, H.264, MJPG, XVID, VP8 and FFV1, odd sizes included).

Seeking: while decoding forward, each frame's timestamp is recorded with its index, and which
frames are keyframes. `frames_between(a, b)` later seeks to the last keyframe at or before frame
a and decodes forward, recognising frames by timestamp, so any range can be decoded again
without keeping frames around. A stream without unique timestamps cannot be sought this way;
`seekable` says so and the caller keeps its frames instead.
"""

import bisect
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from .errors import BadInput, TooLarge, UnsupportedMedia

# Signatures of things people send by mistake. FFmpeg happily "decodes" a JPEG or PNG as a
# one-frame video and follows playlists (HLS, ffconcat) to other files or URLs, so these are
# refused before FFmpeg sees them.
_NOT_VIDEO_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
)
# FFmpeg may open only the local file it was given: no http, no pipes, no playlists that fetch.
_FFMPEG_OPTIONS = {"protocol_whitelist": "file"}
# A corrupt packet is skipped, as FFmpeg players do; this many in a row ends the video.
_MAX_BAD_PACKETS = 32


def harden_ffmpeg() -> None:
    """OpenCV, where anything still uses it, reads this when it opens a capture."""
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "protocol_whitelist;file")


@dataclass(frozen=True)
class VideoLimits:
    max_frames: int
    max_pixels: int


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    claimed_frames: int  # what the container says; informative only
    codec: str


def _sniff(path: str) -> None:
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise BadInput("the video is empty (0 bytes); send the file's bytes as the body or in "
                       "the multipart field 'video'")
    for magic, what in _NOT_VIDEO_SIGNATURES:
        if head.startswith(magic):
            raise UnsupportedMedia(f"the body is {what}, not a video; send a video file "
                                   f"(mp4, webm, avi, mov, mkv)")
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return
        # Text: a playlist, JSON, a form, an error page. No video container is plain text.
        raise UnsupportedMedia("the body is text, not a video; send the video file's bytes")


def _open(path: str):
    import av

    try:
        container = av.open(path, options=_FFMPEG_OPTIONS)
    except (av.error.FFmpegError, ValueError, OSError):
        raise BadInput("the body is not a video FFmpeg can open (corrupt, truncated before the "
                       "first frame, or an unknown container); send an mp4, webm, avi, mov or "
                       "mkv file") from None
    if not container.streams.video:
        container.close()
        raise BadInput("the file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame threads: same pixels, several cores
    return container, stream


class VideoReader:
    """One video file: `info` at once; `frames()` decodes forward; `frames_between` seeks."""

    def __init__(self, path: str, limits: VideoLimits):
        _sniff(path)
        self.path = path
        self._limits = limits
        self._container, self._stream = _open(path)
        cc = self._stream.codec_context
        width, height = int(cc.width or 0), int(cc.height or 0)
        if width <= 0 or height <= 0:
            self.close()
            raise BadInput("the video has no decodable picture stream (width/height unknown)")
        self._check_pixels(width, height)
        claimed = int(self._stream.frames or 0)
        if claimed > limits.max_frames:
            self.close()
            raise TooLarge(f"the video claims {claimed} frames; this server accepts at most "
                           f"{limits.max_frames} (--max_frames)")
        rate = self._stream.average_rate or self._stream.guessed_rate or Fraction(0)
        self.info = VideoInfo(width=width, height=height, fps=round(float(rate), 3),
                              claimed_frames=max(claimed, 0), codec=cc.name or "unknown")
        # What forward decoding has seen: frame index -> timestamp, and the keyframes.
        self._pts: List[Optional[int]] = []
        self._pts_index: Dict[int, int] = {}
        self._keyframes: List[int] = []
        self.seekable = True

    @property
    def frames_seen(self) -> int:
        """Frames `frames()` has decoded so far (each can be decoded again by index)."""
        return len(self._pts)

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self._limits.max_pixels:
            self.close()
            raise TooLarge(f"frames are {width}x{height} = {width * height} pixels; this server "
                           f"accepts at most {self._limits.max_pixels} pixels per frame "
                           f"(--max_pixels)")

    def _decoded(self, container, stream) -> Iterator:
        """Every decodable frame, skipping corrupt packets (as players do) up to a limit."""
        import av

        bad = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
                bad = 0
            except av.error.InvalidDataError:
                bad += 1
                if bad > _MAX_BAD_PACKETS:
                    return
                continue
            except av.error.FFmpegError:
                return
            yield from frames

    def _rgb(self, frame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        if rgb.shape[0] != self.info.height or rgb.shape[1] != self.info.width:
            # Resolution changes mid-stream (rare, legal in some codecs): masks must all have
            # the video's size, so resize to the first frame's.
            from PIL import Image

            self._check_pixels(rgb.shape[1], rgb.shape[0])
            rgb = np.asarray(Image.fromarray(rgb).resize((self.info.width, self.info.height),
                                                         Image.BILINEAR))
        return rgb

    def frames(self, rgb: bool = True) -> Iterator[Optional[np.ndarray]]:
        """RGB uint8 HxWx3 frames in order, recording each one's timestamp for seeking
        (`rgb=False`: only that, yielding None, for an index of the video).

        Raises TooLarge past --max_frames (the container's claimed count can lie).
        """
        for frame in self._decoded(self._container, self._stream):
            i = len(self._pts)
            if i >= self._limits.max_frames:
                raise TooLarge(f"the video has more than {self._limits.max_frames} frames "
                               f"(--max_frames)")
            self._record(i, frame)
            yield self._rgb(frame) if rgb else None

    def _record(self, i: int, frame) -> None:
        pts = frame.pts
        self._pts.append(pts)
        if pts is None or pts in self._pts_index or (i and self._pts[i - 1] is not None
                                                     and pts < self._pts[i - 1]):
            self.seekable = False  # no timestamp, a repeated one, or out of order
        else:
            self._pts_index[pts] = i
        if frame.key_frame:
            self._keyframes.append(i)

    def keyframe_at_or_before(self, i: int) -> int:
        k = bisect.bisect_right(self._keyframes, i) - 1
        return self._keyframes[k] if k >= 0 else 0

    def frames_between(self, start: int, end: int) -> Iterator[Tuple[int, np.ndarray]]:
        """(index, RGB) for start <= index < end, decoded again in a second demuxer: from the
        keyframe before `start`, or, for a stream whose timestamps cannot be sought, from the
        beginning, counting frames. Only for frames `frames()` has already passed."""
        if end > len(self._pts):
            raise RuntimeError(f"frames {start}..{end - 1} have not been decoded yet")
        container, stream = _open(self.path)
        try:
            if not self.seekable:
                for i, frame in enumerate(self._decoded(container, stream)):
                    if i >= start:
                        yield i, self._rgb(frame)
                    if i + 1 >= end:
                        return
                raise RuntimeError(f"the video ended before frame {end - 1} on a second read")
            key = self.keyframe_at_or_before(start)
            if key > 0:
                container.seek(self._pts[key], stream=stream, backward=True, any_frame=False)
            expected = start
            for frame in self._decoded(container, stream):
                i = self._pts_index.get(frame.pts)
                if i is None or i < start:
                    continue  # frames before the range (or leading frames of an open GOP)
                if i != expected:
                    break
                yield i, self._rgb(frame)
                expected += 1
                if expected == end:
                    return
        finally:
            container.close()
        raise RuntimeError(f"seeking did not reproduce frame {expected} (frames {start}.."
                           f"{end - 1}): the file's timestamps are not reliable")

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video(path: str, limits: VideoLimits) -> VideoReader:
    return VideoReader(path, limits)


class FrameList:
    """Frames in memory with VideoReader's interface (the warm-up, tests)."""

    seekable = True

    def __init__(self, frames):
        self._frames = list(frames)

    def frames(self) -> Iterator[np.ndarray]:
        return iter(self._frames)

    def keyframe_at_or_before(self, i: int) -> int:
        return i

    def frames_between(self, start: int, end: int) -> Iterator[Tuple[int, np.ndarray]]:
        return ((i, self._frames[i]) for i in range(start, end))
