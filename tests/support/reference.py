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


def upcast_memories(predictor) -> None:
    """The one fix the library needs on a CPU for objects first prompted after the start frame:
    its bfloat16 memories reach the attention un-promoted when there is no object pointer yet
    ("mat1 and mat2 must have the same dtype"). Upcast them as torch.cat's promotion would."""
    import torch

    def hook(module, args, kwargs):
        memory, curr = kwargs["memory"], kwargs["curr"]
        target = torch.promote_types(memory.dtype, curr[0].dtype)
        return None if memory.dtype == target else (args, {**kwargs, "memory": memory.to(target)})

    predictor.memory_attention.register_forward_pre_hook(hook, with_kwargs=True)


def track_objects_with_library(predictor, frames_rgb, prompts, masks=None, direction="both",
                               max_frames=None):
    """{obj_id: {frame: uint8 0/255}} from the plain library: init_state, then each prompt in
    order (add_new_points_or_box or add_new_mask on its frame), then propagate_in_video forward
    from the first prompted frame and in reverse, as its README and notebooks do. A frame both
    passes yield (the first prompted one) keeps its first mask, as the service's stream does.

    prompts: [{"obj_id", "frame_idx", "points"?, "labels"?, "box"?, "mask"?}]; masks: name ->
    bool HxW array for mask prompts.
    """
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_jpeg_folder(frames_rgb, os.path.join(tmp, "frames"))
        with torch.inference_mode():
            state = predictor.init_state(folder)
            state["images"] = library_frame_tensors(frames_rgb, predictor.image_size)
            state["cached_features"] = {}
            for p in prompts:
                if p.get("mask") is not None:
                    predictor.add_new_mask(state, frame_idx=p["frame_idx"], obj_id=p["obj_id"],
                                           mask=masks[p["mask"]])
                    continue
                kwargs = {}
                if p.get("points"):
                    kwargs["points"] = np.asarray(p["points"], dtype=np.float32)
                    kwargs["labels"] = np.asarray(p.get("labels") or [1] * len(p["points"]),
                                                  dtype=np.int32)
                if p.get("box") is not None:
                    kwargs["box"] = np.asarray(p["box"], dtype=np.float32)
                predictor.add_new_points_or_box(state, frame_idx=p["frame_idx"],
                                                obj_id=p["obj_id"], **kwargs)
            passes = {"both": (False, True), "forward": (False,), "backward": (True,)}[direction]
            for reverse in passes:
                for f, ids, logits in predictor.propagate_in_video(
                        state, reverse=reverse, max_frame_num_to_track=max_frames):
                    for k, obj_id in enumerate(ids):
                        out.setdefault(obj_id, {}).setdefault(
                            f, (logits[k, 0] > 0.0).numpy().astype(np.uint8) * 255)
    return out
