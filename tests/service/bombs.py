"""Decompression bombs: small files whose headers declare a huge image, one per format the service
is likely to meet. They are real, decodable images (OpenCV decodes each to width x height pixels),
so a server that decodes before checking the size pays the full allocation."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

SIDE = 16000  # 16000 x 16000 = 256 M pixels: 768 MB as a BGR frame

FORMATS = ("png", "jpeg", "webp", "bmp", "tiff")


def png_bomb(width: int = SIDE, height: int = SIDE) -> bytes:
    """A black grey-scale PNG, deflated row by row (no full image in memory): about 250 KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    deflate = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0 and black pixels
    data = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def bmp_bomb(width: int = SIDE, height: int = SIDE) -> bytes:
    """An 8-bit run-length-encoded BMP whose only code is "end of bitmap": about 1 KB."""
    palette = bytes(4 * 256)
    data = b"\x00\x01"
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    offset = 14 + len(dib) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + dib + palette + data


def _encoded(ext: str, params: list[int], width: int, height: int) -> bytes:
    ok, buffer = cv2.imencode(ext, np.zeros((height, width), np.uint8), params)
    assert ok, ext
    return buffer.tobytes()


def make_bomb(fmt: str, width: int = SIDE, height: int = SIDE) -> bytes:
    if fmt == "png":
        return png_bomb(width, height)
    if fmt == "bmp":
        return bmp_bomb(width, height)
    if fmt == "jpeg":  # about 3 MB
        return _encoded(".jpg", [cv2.IMWRITE_JPEG_QUALITY, 10], width, height)
    if fmt == "webp":  # lossy, about 450 KB (slow to encode: cached by `bombs`)
        return _encoded(".webp", [cv2.IMWRITE_WEBP_QUALITY, 1], width, height)
    if fmt == "tiff":  # deflate, about 700 KB
        return _encoded(".tiff", [cv2.IMWRITE_TIFF_COMPRESSION, 8], width, height)
    raise ValueError(fmt)


def bombs(cache_dir: Path) -> dict[str, bytes]:
    """One 16000x16000 bomb per format, made once and kept in `cache_dir`."""
    out = {}
    for fmt in FORMATS:
        path = cache_dir / f"bomb-{SIDE}.{fmt}"
        if not path.exists():
            path.write_bytes(make_bomb(fmt))
        out[fmt] = path.read_bytes()
    return out


def bomb_headers(width: int = SIDE, height: int = SIDE) -> dict[str, bytes]:
    """Small images whose headers were rewritten to declare width x height (quick to make; the
    data does not match, so only a check on the header refuses them for the right reason)."""
    small = np.zeros((8, 8, 3), np.uint8)
    png = bytearray(cv2.imencode(".png", small)[1].tobytes())
    png[16:24] = struct.pack(">II", width, height)
    jpeg = bytearray(cv2.imencode(".jpg", small)[1].tobytes())
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    webp = (
        b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00"
        + bytes(4)
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    return {
        "png": bytes(png),
        "jpeg": bytes(jpeg),
        "webp": webp,
        "bmp": bmp_bomb(width, height),
        "tiff": _encoded(".tiff", [], 8, 8),
    }
