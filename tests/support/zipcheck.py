"""Reading the service's answer: the ZIP of PNG masks and its manifest."""

import io
import json
import zipfile

import numpy as np
from PIL import Image


def read_masks(zip_bytes: bytes, long_form: bool = False):
    """({frame: uint8 HxW}, manifest), or ({obj_id: {frame: mask}}, manifest) for the long form.

    Asserts every mask entry is an 8-bit grayscale PNG of 0/255 and every CRC is right.
    """
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
        parts = name[len("masks/"):-len(".png")].split("/")
        if long_form:
            assert len(parts) == 2, name
            masks.setdefault(int(parts[0]), {})[int(parts[1])] = arr
        else:
            assert len(parts) == 1, name
            masks[int(parts[0])] = arr
    manifest = json.loads(zf.read("manifest.json"))
    return masks, manifest
