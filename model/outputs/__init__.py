"""Output formats: one module per format, each with `add(TrackedFrame)` and `close(manifest)`."""

from typing import Callable

from ..errors import BadInput
from .zip_png import PngZip


def open_format(options, long_form: bool, emit: Callable[[bytes], None]):
    """The format object for a request's options (`format=`, `preview=`)."""
    if options.format == "png" and not options.preview:
        return PngZip(emit, long_form)
    raise BadInput(f"format={options.format} preview={options.preview} is not available yet")
