"""Image format and size read from the first bytes of a file, without decoding it.

The service accepts only the formats whose size it can read here (JPEG, PNG, WebP, BMP): the
pixel limit must hold *before* the decoder allocates the image, or a 300 KB file that declares
16000x16000 pixels costs 768 MB. Every other format (TIFF, GIF, PPM, JPEG 2000, EXR, ...) is
refused, since OpenCV would decode it without telling us its size first.

The signatures are the ones OpenCV's decoders match on, so the format named here is the one
`cv2.imdecode` will use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

ACCEPTED_FORMATS = ("JPEG", "PNG", "WebP", "BMP")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the image size (C4, C8 and CC are other segments).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD9)}
# Real files have a few dozen segments before the frame header; a file of thousands of tiny ones
# would only make the (event-loop) header scan slow.
_JPEG_MAX_SEGMENTS = 512


# Image formats OpenCV may decode but whose size is not read here: recognised, to be refused by
# name (anything else is simply not an image).
_OTHER_SIGNATURES = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF8", "GIF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"v/1\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    *((f"P{i}".encode(), "PNM") for i in range(1, 8)),
    (b"PF", "PFM"),
    (b"Pf", "PFM"),
)


@dataclass(frozen=True)
class ImageHeader:
    format: str | None  # one of ACCEPTED_FORMATS, or None when the signature is not one of them
    width: int | None = None  # None when the header of an accepted format is cut short or broken
    height: int | None = None
    other: str | None = None  # with format None: the name of another image format it looks like

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.width is None or self.height is None else (self.width, self.height)


def read_header(data: bytes) -> ImageHeader:
    """The format and the declared width and height of encoded image bytes."""
    if data.startswith(_PNG_SIGNATURE):
        return ImageHeader("PNG", *_png_size(data))
    if data.startswith(b"\xff\xd8\xff"):
        return ImageHeader("JPEG", *_jpeg_size(data))
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageHeader("WebP", *_webp_size(data))
    if data.startswith(b"BM"):
        return ImageHeader("BMP", *_bmp_size(data))
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return ImageHeader(None, other="AVIF/HEIF")
    return ImageHeader(None, other=next((name for sig, name in _OTHER_SIGNATURES if data.startswith(sig)), None))


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared by the header of an accepted format, else None."""
    return read_header(data).size


_NO_SIZE = (None, None)


def _png_size(data: bytes) -> tuple[int | None, int | None]:
    if len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return _NO_SIZE


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    i = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        if i + 4 > len(data):
            break
        if data[i] != 0xFF:
            return _NO_SIZE
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return _NO_SIZE
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            # height 0 means "given later by a DNL marker": unknown before decoding
            return (width, height) if height else _NO_SIZE
        if marker == 0xDA:  # start of scan without a frame header: not a valid JPEG
            return _NO_SIZE
        i += 2 + length
    return _NO_SIZE


def _webp_size(data: bytes) -> tuple[int | None, int | None]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:  # extended: the canvas size, 24 bits each, minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:  # lossless: 14 bits each, minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return _NO_SIZE


def _bmp_size(data: bytes) -> tuple[int | None, int | None]:
    if len(data) < 26:
        return _NO_SIZE
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:  # OS/2 core header: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means rows stored top-down
