"""What the engine yields for one frame, and every output format consumes."""

from dataclasses import dataclass
from typing import Dict

import numpy as np


@dataclass(frozen=True)
class TrackedFrame:
    frame_idx: int
    masks: Dict[int, np.ndarray]  # obj_id -> uint8 HxW, 0 / 255, the video's size
    scores: Dict[int, float]  # obj_id -> the model's object-presence logit
