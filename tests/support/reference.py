"""The plain SAM2 library, used the way its README does, as the reference for the service.

    init_state -> add_new_points_or_box -> propagate_in_video (forward) -> (reverse=True)
    masks = logits > 0

Everything here is the library's own code (its builder, its checkpoint loader, its predictor);
nothing from the `model` package is imported.
"""

import os
import tempfile

import numpy as np
import torch
from PIL import Image

CONFIGS = {"tiny": "configs/sam2.1/sam2.1_hiera_t.yaml"}


def build_library_predictor(checkpoint: str, image_size: int, size: str = "tiny"):
    from sam2.build_sam import build_sam2_video_predictor

    return build_sam2_video_predictor(
        CONFIGS[size], ckpt_path=checkpoint, device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}"])


def write_jpeg_folder(frames_rgb, folder: str) -> str:
    """The README's way in: one JPEG per frame, <index>.jpg (as `ffmpeg -q:v 2` would)."""
    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames_rgb):
        Image.fromarray(f).save(os.path.join(folder, f"{i:05d}.jpg"), quality=95)
    return folder


def library_frame_tensors(frames_rgb, image_size: int) -> torch.Tensor:
    """What `load_video_frames_from_jpg_images` computes, from frames instead of JPEG files:
    PIL resize to S x S, / 255.0, then (x - mean) / std in float32."""
    images = torch.zeros(len(frames_rgb), 3, image_size, image_size, dtype=torch.float32)
    for n, f in enumerate(frames_rgb):
        img_np = np.array(Image.fromarray(f).convert("RGB").resize((image_size, image_size)))
        images[n] = torch.from_numpy(img_np / 255.0).permute(2, 0, 1)
    mean = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32)[:, None, None]
    std = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float32)[:, None, None]
    images -= mean
    images /= std
    return images


def track_with_library(predictor, frames_rgb, frame_idx, points=None, labels=None, box=None,
                       same_tensors: bool = True):
    """Masks {frame: uint8 0/255 HxW} from the plain library on these frames.

    same_tensors=True feeds the library exactly the frames the video decodes to (its own JPEG
    loader is bypassed only for the final tensor, built with its own arithmetic); False goes
    through a JPEG folder as the library's README does (a lossy round trip).
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_jpeg_folder(frames_rgb, os.path.join(tmp, "frames"))
        with torch.inference_mode():
            state = predictor.init_state(folder)
            if same_tensors:
                state["images"] = library_frame_tensors(frames_rgb, predictor.image_size)
                state["cached_features"] = {}
            kwargs = {}
            if points is not None and len(points):
                kwargs["points"] = np.asarray(points, dtype=np.float32)
                kwargs["labels"] = np.asarray(labels if labels is not None else [1] * len(points),
                                              dtype=np.int32)
            if box is not None:
                kwargs["box"] = np.asarray(box, dtype=np.float32)
            predictor.add_new_points_or_box(state, frame_idx=frame_idx, obj_id=1, **kwargs)
            masks = {}
            for reverse in (False, True):
                for f, _, logits in predictor.propagate_in_video(state, reverse=reverse):
                    masks[f] = ((logits[0, 0] > 0.0).numpy().astype(np.uint8) * 255)
    return masks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
