"""Radiance HDR (``.hdr``, RGBE) images as linear float RGB, for previews.

Pillow cannot read Radiance HDR, which Blender and POV-Ray both write. The format
is a text header (``#?RADIANCE``, ``FORMAT=32-bit_rle_rgbe``, a blank line), a
resolution line (``-Y height +X width``: rows top to bottom) and the pixels as
4 bytes each (red, green, blue mantissas and a shared exponent), each scanline
either flat or run-length encoded channel by channel ("new" RLE, widths 8 to
32767). A byte triple ``c`` with exponent ``e`` is ``(c + 0.5) * 2**(e - 136)``,
as Radiance and Blender decode it; exponent 0 is black. ``EXPOSURE`` is not
applied (Blender ignores it too), XYZE files and other orientations are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FloatImage", "HdrError", "read_hdr"]

FloatImage = np.ndarray[Any, np.dtype[np.float32]]
_MAX_HEADER = 64 * 1024
_MAX_PIXELS = 1 << 28


class HdrError(ValueError):
    """The file is not a Radiance HDR image this reader understands."""


def read_hdr(path: Path) -> FloatImage:
    """The image in ``path`` as linear float32 RGB, shape (height, width, 3), top row first."""
    data = path.read_bytes()
    width, height, pos = _header(data, path.name)
    rgbe = np.empty((height, width, 4), dtype=np.uint8)
    for row in range(height):
        pos = _scanline(data, pos, rgbe[row], path.name)
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent == 0, 0.0, np.ldexp(1.0, exponent - 136)).astype(np.float32)
    return ((rgbe[..., :3].astype(np.float32) + 0.5) * scale[..., None]).astype(np.float32)


def _header(data: bytes, name: str) -> tuple[int, int, int]:
    """(width, height, offset of the first pixel)."""
    if not data.startswith((b"#?RADIANCE", b"#?RGBE")):
        raise HdrError(f"{name} is not a Radiance HDR file")
    end = data.find(b"\n\n", 0, _MAX_HEADER)
    if end < 0:
        raise HdrError(f"{name}: the header does not end")
    for line in data[:end].split(b"\n"):
        if line.startswith(b"FORMAT=") and line.strip() != b"FORMAT=32-bit_rle_rgbe":
            raise HdrError(f"{name}: {line.decode(errors='replace')} is not supported")
    size_end = data.find(b"\n", end + 2)
    words = data[end + 2 : size_end].split()
    if size_end < 0 or len(words) != 4 or (words[0], words[2]) != (b"-Y", b"+X"):
        raise HdrError(f"{name}: unsupported resolution line {data[end + 2 : size_end]!r}")
    try:
        height, width = int(words[1]), int(words[3])
    except ValueError:
        raise HdrError(f"{name}: bad resolution {words!r}") from None
    if width <= 0 or height <= 0 or width * height > _MAX_PIXELS:
        raise HdrError(f"{name}: bad size {width}x{height}")
    return width, height, size_end + 1


def _scanline(data: bytes, pos: int, out: np.ndarray[Any, Any], name: str) -> int:
    """Decode one scanline into ``out`` (width x 4 bytes); the offset after it."""
    width = int(out.shape[0])
    head = data[pos : pos + 4]
    if not (8 <= width <= 0x7FFF and len(head) == 4 and head[0] == 2 and head[1] == 2):
        flat = data[pos : pos + 4 * width]
        if len(flat) != 4 * width:
            raise HdrError(f"{name}: the pixels end early")
        out[:] = np.frombuffer(flat, dtype=np.uint8).reshape(width, 4)
        return pos + 4 * width
    if (head[2] << 8) | head[3] != width:
        raise HdrError(f"{name}: a run-length scanline has the wrong width")
    pos += 4
    for channel in range(4):
        x = 0
        while x < width:
            if pos >= len(data):
                raise HdrError(f"{name}: the pixels end early")
            count = data[pos]
            if count > 128:  # a run: one value, count - 128 times
                count -= 128
                if x + count > width or pos + 1 >= len(data):
                    raise HdrError(f"{name}: a run overflows its scanline")
                out[x : x + count, channel] = data[pos + 1]
                pos += 2
            else:  # count literal values
                values = data[pos + 1 : pos + 1 + count]
                if count == 0 or x + count > width or len(values) != count:
                    raise HdrError(f"{name}: a bad literal run in a scanline")
                out[x : x + count, channel] = np.frombuffer(values, dtype=np.uint8)
                pos += 1 + count
            x += count
    return pos
