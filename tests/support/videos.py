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


INDEX_BITS = 8  # frames 0..255 carry their index as a row of black/white blocks along the top


def indexed_frames(n: int, width: int = 256, height: int = 160):
    """The moving shapes, each frame with its own index drawn on it: a top row of INDEX_BITS
    blocks (white = 1, most significant first) that survives JPEG and H.264, and the number as
    text for people."""
    assert n <= 2 ** INDEX_BITS
    out = []
    block = width // INDEX_BITS
    for i, f in enumerate(frames_of(n, width, height)):
        f[:24] = 0
        for b in range(INDEX_BITS):
            if i >> (INDEX_BITS - 1 - b) & 1:
                f[2:22, b * block + 2:(b + 1) * block - 2] = 255
        cv2.putText(f, str(i), (6, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        out.append(f)
    return out


def read_index(rgb: np.ndarray) -> int:
    """The index indexed_frames drew on a frame (any scale)."""
    h, w = rgb.shape[:2]
    y = round(12 * h / 160)
    value = 0
    for b in range(INDEX_BITS):
        x = round((b + 0.5) * w / INDEX_BITS)
        value = value << 1 | int(rgb[y, x].mean() > 128)
    return value


def write_vfr_video(path: str, n: int, width: int = 256, height: int = 160) -> str:
    """indexed_frames as H.264 (with B-frames) at a variable frame rate: frame durations cycle
    40, 120, 40, 200 ms, so time / nominal fps names the wrong frame after a few frames."""
    from fractions import Fraction

    import av

    os.makedirs(os.path.dirname(path), exist_ok=True)
    durations = (40, 120, 40, 200)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"bf": "2", "g": "12"}
        pts = 0
        for i, f in enumerate(indexed_frames(n, width, height)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[..., ::-1]), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += durations[i % len(durations)]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
