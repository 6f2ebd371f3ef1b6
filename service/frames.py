"""Incoming frame bytes -> BGR image, within the service's byte and pixel limits.

`check_frame` runs before any decoding (on the event loop, it only reads a header): a frame over
the byte limit, in a format whose size cannot be read from its header, or whose header declares
more pixels than allowed (a decompression bomb) is refused without allocating the image.
"""

from __future__ import annotations

import numpy as np

from blurtrack.engine.errors import InvalidFrameError
from blurtrack.engine.frames import decode_image
from blurtrack.service.errors import ApiError, frame_too_large
from blurtrack.service.image_header import ACCEPTED_FORMATS, ImageHeader, image_size, read_header

__all__ = ["check_frame", "check_frame_bytes", "decode_frame", "image_size"]

_FORMATS = ", ".join(ACCEPTED_FORMATS[:-1]) + " or " + ACCEPTED_FORMATS[-1]


def check_frame_bytes(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ApiError(400, "invalid_frame", f"the frame is empty (0 bytes); send {_FORMATS} bytes")
    if len(data) > max_bytes:
        raise frame_too_large(
            f"the frame is {len(data)} bytes, more than this server's limit of {max_bytes} "
            "(BLURTRACK_MAX_FRAME_BYTES): send a smaller or more compressed image"
        )


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise frame_too_large(
            f"the frame is {width}x{height} = {width * height} pixels, more than this server's limit of "
            f"{max_pixels} (BLURTRACK_MAX_FRAME_PIXELS): downscale it before sending"
        )


def check_frame(data: bytes, max_bytes: int, max_pixels: int) -> ImageHeader:
    """Every limit that holds before decoding. Raises ApiError: 400 invalid_frame, 413
    frame_too_large, 415 unsupported_format."""
    check_frame_bytes(data, max_bytes)
    header = read_header(data)
    if header.format is None and header.other is not None:
        raise ApiError(
            415,
            "unsupported_format",
            f"the frame is {header.other}: send {_FORMATS} (other formats are refused because their size "
            "cannot be checked before decoding)",
        )
    if header.format is None:
        raise ApiError(
            400,
            "invalid_frame",
            f"could not decode the frame ({len(data)} bytes): its first bytes are not those of a {_FORMATS} image",
        )
    if header.size is None:
        raise ApiError(
            400,
            "invalid_frame",
            f"could not decode the frame: its {header.format} header is cut short or broken ({len(data)} bytes); "
            "send a complete image",
        )
    width, height = header.size
    if width == 0 or height == 0:
        raise ApiError(
            400, "invalid_frame", f"the {header.format} header declares a {width}x{height} image: send one with pixels"
        )
    _check_pixels(width, height, max_pixels)
    return header


def decode_frame(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Check the limits, then decode. Raises ApiError (see check_frame)."""
    header = check_frame(data, max_bytes, max_pixels)
    try:
        image = decode_image(data)
    except InvalidFrameError as exc:
        raise ApiError(400, "invalid_frame", str(exc)) from exc
    # The decoder follows the header it was given; this only guards against a disagreement.
    if image.shape[1] * image.shape[0] > max_pixels:
        raise ApiError(400, "invalid_frame", f"the {header.format} data does not match its header: send a valid image")
    return image
