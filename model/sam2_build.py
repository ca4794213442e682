"""Build Meta's SAM2VideoPredictor from a model size and a checkpoint file.

Kept apart from running it (as `sam2/build_sam.py` is): nothing here touches a video.
"""

import logging
import os
import threading
from typing import Optional

from .checkpoints import MODEL_SIZES, CheckpointError

logger = logging.getLogger(__name__)

_hydra_lock = threading.Lock()


def _ensure_sam2_hydra(config: str) -> None:
    """`import sam2` initialises Hydra globally with sam2's config module, once per process.

    If something else initialised Hydra first, sam2's configs are not found; then we clear it
    and initialise it for "sam2" again (NOTES: measured pitfall).
    """
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import sam2  # noqa: F401  (initialises Hydra on first import)

    gh = GlobalHydra.instance()
    if gh.is_initialized():
        if gh.config_loader().repository.config_exists(config):
            return
        gh.clear()
    initialize_config_module("sam2", version_base="1.2")


def _hydra_overrides(image_size: Optional[int]) -> list:
    if image_size is None:
        return []
    if image_size % 32 or not 128 <= image_size <= 2048:
        raise ValueError(f"--image_size must be a multiple of 32 in 128..2048, got {image_size}")
    return [f"++model.image_size={image_size}"]


def _load_state_dict(model, checkpoint: str) -> None:
    """Safe, strict loading: weights_only=True and every key matched.

    The library's own `_load_checkpoint` raises a bare RuntimeError() on a key mismatch; this
    names the file and the first keys that differ, which is what an operator needs.
    """
    import torch

    try:
        blob = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same start-up error
        raise CheckpointError(f"cannot read checkpoint {checkpoint}: {exc}") from exc
    if not isinstance(blob, dict) or "model" not in blob:
        raise CheckpointError(f"{checkpoint} is not a SAM2 checkpoint (no 'model' state dict)")
    result = model.load_state_dict(blob["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{checkpoint} does not match this architecture: "
            f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:3]}); "
            f"is --model_size right?"
        )


def build_video_predictor(size: str, checkpoint: Optional[str], device: str = "cpu",
                          image_size: Optional[int] = None, compile_model: bool = False):
    """SAM2VideoPredictor (or the torch.compile'd VOS variant) in eval mode on `device`."""
    from sam2.build_sam import build_sam2_video_predictor

    spec = MODEL_SIZES[size]
    with _hydra_lock:
        _ensure_sam2_hydra(spec.config)
        # Build on the CPU without weights, load ours strictly, then move: one copy on the device.
        model = build_sam2_video_predictor(
            spec.config,
            ckpt_path=None,
            device="cpu",
            hydra_overrides_extra=_hydra_overrides(image_size),
            vos_optimized=compile_model,
        )
    if checkpoint is not None:
        _load_state_dict(model, checkpoint)
    model = model.to(device)
    model.eval()
    return model


def write_random_checkpoint(size: str, out: str, seed: int = 0) -> str:
    """The real architecture with random weights, saved in the official format ({"model": sd}):
    the mirror of `_load_state_dict`, for tests, benchmarks and air-gapped trials."""
    import torch

    torch.manual_seed(seed)
    predictor = build_video_predictor(size, checkpoint=None, device="cpu")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.save({"model": predictor.state_dict()}, out)
    return out


def log_extension_status(device) -> bool:
    """Say once whether sam2's compiled extension (`sam2._C`, the hole-filling step of its mask
    post-processing) runs here. Without it the library skips that step with a warning per job; an
    image built for other GPU architectures fails the same way, silently. Returns True if it ran.
    """
    import torch

    try:
        from sam2 import _C  # noqa: F401

        from sam2.utils.misc import get_connected_components

        probe = torch.zeros(1, 1, 8, 8, dtype=torch.uint8, device=device)
        get_connected_components(probe)
    except Exception as exc:  # noqa: BLE001 - any failure means the step is skipped
        logger.warning("sam2._C is not usable on %s (%s: %s): masks skip the library's "
                       "hole-filling post-processing step", device, type(exc).__name__, exc)
        return False
    logger.info("sam2._C works on %s: the library's mask post-processing is on", device)
    return True
