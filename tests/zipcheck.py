"""Reading the service's answer: the ZIP of PNG masks and its manifest."""

import io
import json
import zipfile

import numpy as np
from PIL import Image


def read_masks(zip_bytes: bytes):
    """({frame: uint8 HxW}, manifest); asserts every entry is an 8-bit grayscale PNG of 0/255."""
    zf = zipfile.ZipFile(io.BytesIO(zip_bytes))
    assert zf.testzip() is None, "a ZIP entry fails its CRC"
    masks = {}
    for name in zf.namelist():
        if not name.startswith("masks/"):
            continue
        img = Image.open(io.BytesIO(zf.read(name)))
        assert img.format == "PNG" and img.mode == "L", (name, img.format, img.mode)
        arr = np.asarray(img)
        assert set(np.unique(arr)) <= {0, 255}, f"{name} has values other than 0 and 255"
        masks[int(name[len("masks/"):-len(".png")])] = arr
    manifest = json.loads(zf.read("manifest.json"))
    return masks, manifest
