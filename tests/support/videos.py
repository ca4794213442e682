"""Real video files made by the tests: moving textured shapes, written with OpenCV."""

import os

import cv2
import numpy as np


def frames_of(n: int, width: int = 320, height: int = 192, seed: int = 0):
    """A red disc and a blue square drifting over a noisy green field."""
    rng = np.random.default_rng(seed)
    field = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    field[..., 1] += 80
    out = []
    for i in range(n):
        f = field.copy()
        cx = int(width * 0.2 + i * (width * 0.6) / max(1, n - 1))
        cv2.circle(f, (cx, height // 2), max(8, height // 6), (30, 30, 220), -1)
        sx = int(width * 0.75 - i * (width * 0.4) / max(1, n - 1))
        cv2.rectangle(f, (sx, height // 8), (sx + width // 8, height // 8 + height // 5),
                      (200, 60, 20), -1)
        out.append(f)
    return out


def write_video(path: str, n: int, width: int = 320, height: int = 192, fps: float = 12.0,
                fourcc: str = "mp4v", seed: int = 0) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for f in frames_of(n, width, height, seed):
        writer.write(f)
    writer.release()
    return path


def decode_rgb(path: str):
    """Every frame of a video, RGB, decoded independently of the service's code."""
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def write_av_video(path: str, n: int, width: int = 160, height: int = 96, fps: int = 12,
                   codec: str = "libx264", gop: int = 12, bframes: int = 2, seed: int = 0) -> str:
    """The same moving shapes encoded with PyAV (H.264 with B-frames, MPEG-4, MJPEG...), for
    what OpenCV cannot write: real GOPs and reordered frames."""
    import av

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.gop_size = gop
        if codec == "libx264":
            stream.options = {"bf": str(bframes), "g": str(gop), "keyint_min": str(gop)}
        elif bframes:
            stream.codec_context.max_b_frames = bframes
        for f in frames_of(n, width, height, seed):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[..., ::-1]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
