"""Output formats: one module per format, each with `add(TrackedFrame)` and `close(manifest)`.

    png       zip_png.PngZip      a ZIP of 0/255 PNGs (per object in the long form)
    palette   palette.PaletteZip  a ZIP of indexed PNGs, pixel = obj_id (DAVIS)
    rle       rle.RleLines        NDJSON, a line per frame with COCO RLE
    preview   preview.Preview     preview.mp4 inside either ZIP
"""

from typing import Callable, Optional

from ..errors import BadInput
from .palette import PaletteZip
from .preview import Preview, PreviewSource
from .rle import RleLines
from .zip_png import PngZip


def open_format(options, long_form: bool, emit: Callable[[bytes], None],
                source: Optional[PreviewSource] = None):
    """The format object for a request's options (`format=`, `preview=`). `source` (the spooled
    upload, its VideoInfo, the limits and the spool dir) is what a preview reads."""
    preview = None
    if options.preview == "mp4":
        if options.format == "rle" or source is None:
            raise BadInput("preview=mp4 goes into the ZIP answer: use it with format=png or "
                           "format=palette")
        preview = Preview(source)
    if options.format == "png":
        return PngZip(emit, long_form, preview)
    if options.format == "palette":
        return PaletteZip(emit, preview)
    if options.format == "rle":
        return RleLines(emit)
    raise BadInput(f"format={options.format} is not available")
