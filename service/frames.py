"""Incoming frame bytes -> BGR image, within the service's byte and pixel limits.

The pixel limit is checked on the image header *before* decoding, so a small file that claims
a huge image (a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import struct

import numpy as np

from engine.errors import InvalidFrameError
from engine.frames import decode_image
from service.errors import ApiError, frame_too_large

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the image size (C4, C8 and CC are other segments).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD9)}


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, or None when the header does not say."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in _JPEG_STANDALONE:
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker in _JPEG_SOF and i + 9 <= len(data):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            if marker == 0xDA:  # start of scan: no size before the image data
                return None
            i += 2 + length
    return None


def check_frame_bytes(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ApiError(400, "invalid_frame", "the frame is empty (0 bytes); send JPEG or PNG bytes")
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


def decode_frame(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Check the limits, then decode. Raises ApiError (400 invalid_frame, 413 frame_too_large)."""
    check_frame_bytes(data, max_bytes)
    size = image_size(data)
    if size is not None:
        _check_pixels(*size, max_pixels)
    try:
        image = decode_image(data)
    except InvalidFrameError as exc:
        raise ApiError(400, "invalid_frame", str(exc)) from exc
    # Formats whose header we do not read are checked after decoding.
    _check_pixels(image.shape[1], image.shape[0], max_pixels)
    return image
