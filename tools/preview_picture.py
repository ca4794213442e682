"""Make docs/preview-frame.png: one frame of a preview.mp4 made by the service's own preview code
from a synthetic video, so the README shows what `preview=mp4` gives.

    .venv/bin/python tools/preview_picture.py [--out docs/preview-frame.png] [--frame 20]

The video (48 frames, 480x270, 24 fps) has three objects whose masks are known exactly (they are
drawn): a ball (obj_id 1) rolling in front of a box (obj_id 3), and a square (obj_id 2) sliding
the other way. The "prompt" is on frame 36, so the picture's frame comes from the part encoded at
the end (frames before the prompt) and the join is exercised too. No model is involved: the point
is the drawing (each object's DAVIS colour blended in at half strength and outlined; where the
ball covers the box, the smaller obj_id wins).
"""

import argparse
import os
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

W, H, N, FPS, PROMPTED = 480, 270, 48, 24, 36


def scene(i: int):
    """(RGB frame, {obj_id: 0/255 mask}) of frame i."""
    import cv2

    yy, xx = np.mgrid[0:H, 0:W]
    frame = np.stack([60 + xx * 80 // W, 90 + yy * 60 // H, 120 + 0 * xx], -1).astype(np.uint8)
    cv2.rectangle(frame, (0, H * 3 // 4), (W, H), (95, 85, 70), -1)  # a floor
    masks = {}
    box = np.zeros((H, W), np.uint8)
    cv2.rectangle(box, (200, 110), (310, 205), 255, -1)
    masks[3] = box
    square = np.zeros((H, W), np.uint8)
    sx = 400 - i * 4
    cv2.rectangle(square, (sx, 40), (sx + 50, 90), 255, -1)
    masks[2] = square
    ball = np.zeros((H, W), np.uint8)
    cx = 60 + i * 6
    cv2.circle(ball, (cx, 175), 38, 255, -1)
    masks[1] = ball
    frame[box > 0] = (170, 120, 70)
    frame[square > 0] = (230, 230, 235)
    frame[ball > 0] = (240, 200, 40)
    cv2.circle(frame, (cx - 12, 163), 9, (255, 245, 200), -1)  # a highlight on the ball
    return frame, masks


def write_video(path: str) -> None:
    import av

    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "12"}
        for i in range(N):
            for p in s.encode(av.VideoFrame.from_ndarray(scene(i)[0], format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def make_preview(video: str, workdir: str) -> str:
    """The service's Preview fed as a tracking job feeds it: PROMPTED..end, then back to 0."""
    from model.outputs.labels import label_map
    from model.outputs.preview import Preview, PreviewSource
    from model.video import VideoLimits, open_video

    with open_video(video, VideoLimits(max_frames=1000, max_pixels=W * H)) as reader:
        info = reader.info
    preview = Preview(PreviewSource(video, info, VideoLimits(1000, W * H), workdir))
    order = [*range(PROMPTED, N), *range(PROMPTED - 1, -1, -1)]
    for i in order:
        preview.add(i, label_map(scene(i)[1]))
    path = preview.finish()
    kept = os.path.join(workdir, "preview.mp4")
    os.replace(path, kept)
    preview.abort()
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "preview-frame.png"),
                        help="where to write the PNG")
    parser.add_argument("--frame", type=int, default=28, help="which preview frame to show")
    parser.add_argument("--keep", help="also copy preview.mp4 here")
    args = parser.parse_args()
    import av
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        video = os.path.join(tmp, "scene.mp4")
        write_video(video)
        mp4 = make_preview(video, tmp)
        with av.open(mp4) as c:
            for i, frame in enumerate(c.decode(c.streams.video[0])):
                if i == args.frame:
                    Image.fromarray(frame.to_ndarray(format="rgb24")).save(args.out,
                                                                           optimize=True)
                    break
        if args.keep:
            os.replace(mp4, args.keep)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes), frame {args.frame} of {N}")


if __name__ == "__main__":
    main()
