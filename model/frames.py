"""SAM2's input recipe, in one place: resize as its frame loader does, normalise as it does.

`to_model_frame` is the resize (PIL, S x S, bicubic: `sam2/utils/misc.py`'s `_load_img_as_tensor`);
`ModelImages` is what the library finds in `inference_state["images"]`: frame i becomes a
normalized float tensor on the device only when the model asks for it.
"""

import numpy as np


def to_model_frame(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """RGB HxWx3 -> RGB SxSx3 uint8, resized exactly as SAM2's own frame loader does.

    The library opens each JPEG with PIL and calls `.resize((S, S))` (bicubic by default); we do
    the same so the model sees the same pixels as `init_state` on the same frames.
    """
    from PIL import Image

    return np.array(Image.fromarray(rgb).resize((image_size, image_size)))


class ModelImages:
    """`inference_state["images"]` for SAM2: frame i as a normalized (3, S, S) float tensor.

    Normalization uses a 256-entry table per channel holding exactly what the library computes
    for each uint8 value, `(float32(x / 255.0) - mean) / std` in float32, so the tensors are
    bit-identical to `init_state`'s for the same frames; the frame crosses to the GPU as uint8.
    """

    def __init__(self, feed, device, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), length: int = 0):
        import torch

        self._feed = feed
        self._device = device
        values = torch.from_numpy(np.arange(256, dtype=np.float64) / 255.0).float()
        m = torch.tensor(mean, dtype=torch.float32)[:, None]
        s = torch.tensor(std, dtype=torch.float32)[:, None]
        self._lut = ((values[None, :] - m) / s).to(device)  # (3, 256)
        self._channels = torch.arange(3, device=device)[:, None, None]
        self.length = length

    def __getitem__(self, i: int):
        import torch

        frame = torch.from_numpy(self._feed.get(int(i))).to(self._device, non_blocking=True)
        return self._lut[self._channels, frame.permute(2, 0, 1).long()]

    def __len__(self) -> int:
        return self.length
