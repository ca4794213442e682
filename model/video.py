"""Decode a video file into RGB frames with OpenCV, lazily, within limits.

Frame i is the i-th frame in decode order; the frame count is what decodes, not what the
container claims (a truncated file simply has fewer frames). Nothing is allocated for a frame
before its size has been checked against --max_pixels, so a small file that claims 100k x 100k
frames costs nothing.
"""

import logging
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from .errors import BadInput, TooLarge, UnsupportedMedia

logger = logging.getLogger("sam2_tracker")

# Signatures of things people send by mistake. OpenCV's FFmpeg backend happily "decodes" a JPEG
# or PNG as a one-frame video and follows playlists (HLS, ffconcat) to other files or URLs, so
# these are refused before FFmpeg sees them.
_NOT_VIDEO_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
)


def harden_ffmpeg() -> None:
    """Let FFmpeg read only local files: no http, no pipes, no playlists that fetch URLs.

    OpenCV reads OPENCV_FFMPEG_CAPTURE_OPTIONS when it opens a capture; called once at start-up.
    """
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "protocol_whitelist;file")


@dataclass(frozen=True)
class VideoLimits:
    max_frames: int = 20000
    max_pixels: int = 3840 * 2160


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


def _fourcc(cap) -> str:
    import cv2

    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    chars = [chr((code >> (8 * i)) & 0xFF) for i in range(4)]
    return "".join(c for c in chars if c.isprintable()).strip() or "unknown"


class VideoReader:
    """One pass over a video file: `info` at once, then `frames()` in decode order."""

    def __init__(self, path: str, limits: VideoLimits):
        import cv2

        _sniff(path)
        self._limits = limits
        # CAP_FFMPEG only: the image-sequence backend would treat "%d" in a path as a pattern.
        self._cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            self._cap.release()
            raise BadInput("the body is not a video OpenCV/FFmpeg can open (corrupt, truncated "
                           "before the first frame, or an unknown container); send an mp4, "
                           "webm, avi, mov or mkv file")
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        claimed = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if width <= 0 or height <= 0:
            self.close()
            raise BadInput("the video has no decodable picture stream (width/height unknown)")
        self._check_pixels(width, height)
        if claimed > limits.max_frames:
            self.close()
            raise TooLarge(f"the video claims {claimed} frames; this server accepts at most "
                           f"{limits.max_frames} (--max_frames)")
        self.info = VideoInfo(width=width, height=height,
                              fps=fps if np.isfinite(fps) and fps > 0 else 0.0,
                              claimed_frames=max(claimed, 0), codec=_fourcc(self._cap))

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self._limits.max_pixels:
            self.close()
            raise TooLarge(f"frames are {width}x{height} = {width * height} pixels; this server "
                           f"accepts at most {self._limits.max_pixels} pixels per frame "
                           f"(--max_pixels)")

    def frames(self) -> Iterator[np.ndarray]:
        """RGB uint8 HxWx3 frames until the stream ends or stops decoding.

        Raises TooLarge past --max_frames (the container's claimed count can lie).
        """
        import cv2

        n = 0
        while True:
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                return
            if bgr.shape[0] != self.info.height or bgr.shape[1] != self.info.width:
                # Resolution changes mid-stream (rare, legal in some codecs): masks must all have
                # the video's size, so resize to the first frame's.
                self._check_pixels(bgr.shape[1], bgr.shape[0])
                bgr = cv2.resize(bgr, (self.info.width, self.info.height),
                                 interpolation=cv2.INTER_AREA)
            n += 1
            if n > self._limits.max_frames:
                raise TooLarge(f"the video has more than {self._limits.max_frames} frames "
                               f"(--max_frames)")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        cap, self._cap = getattr(self, "_cap", None), None
        if cap is not None:
            cap.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def to_model_frame(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """RGB HxWx3 -> RGB SxSx3 uint8, resized exactly as SAM2's own frame loader does.

    The library opens each JPEG with PIL and calls `.resize((S, S))` (bicubic by default); we do
    the same so the model sees the same pixels as `init_state` on the same frames.
    """
    from PIL import Image

    return np.array(Image.fromarray(rgb).resize((image_size, image_size)))


def open_video(path: Optional[str], limits: VideoLimits) -> VideoReader:
    if path is None:
        raise BadInput("no video was sent")
    return VideoReader(path, limits)
