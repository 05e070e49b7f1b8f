"""Radiance HDR: flat and run-length scanlines decode to Radiance's values; bad files are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from render_server.hdr import HdrError, read_hdr
from render_server.preview import PreviewError, make_preview

HEADER = b"#?RADIANCE\n# test\nFORMAT=32-bit_rle_rgbe\nEXPOSURE=1.0\n\n"


def _rle_channel(values: bytes) -> bytes:
    """One channel of a scanline in Radiance's run-length encoding (runs and literals)."""
    out, i = b"", 0
    while i < len(values):
        run = 1
        while i + run < len(values) and values[i + run] == values[i] and run < 127:
            run += 1
        if run >= 3:
            out += bytes([128 + run, values[i]])
            i += run
        else:
            j = i + 1
            while j < len(values) and j - i < 128 and values[j : j + 3] != values[j : j + 1] * 3:
                j += 1
            out += bytes([j - i]) + values[i:j]
            i = j
    return out


def _write(path: Path, rgbe: np.ndarray, *, rle: bool) -> None:
    height, width, _ = rgbe.shape
    body = b""
    for row in rgbe:
        if rle:
            body += bytes([2, 2, width >> 8, width & 0xFF])
            body += b"".join(_rle_channel(row[:, c].tobytes()) for c in range(4))
        else:
            body += row.tobytes()
    path.write_bytes(HEADER + f"-Y {height} +X {width}\n".encode() + body)


def _sample(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    rgbe = rng.integers(0, 256, size=(height, width, 4), dtype=np.uint8)
    rgbe[:, : width // 2, :] = (200, 100, 50, 129)  # long runs in every channel
    rgbe[0, 0, 3] = 0  # exponent 0: black
    return rgbe


def _expected(rgbe: np.ndarray) -> np.ndarray:
    e = rgbe[..., 3].astype(np.float64)
    scale = np.where(e == 0, 0.0, np.ldexp(1.0, (e - 136).astype(np.int64)))
    return ((rgbe[..., :3] + 0.5) * scale[..., None]).astype(np.float32)


@pytest.mark.parametrize("rle", [True, False])
def test_scanlines_decode_as_radiance_defines(tmp_path: Path, rle: bool) -> None:
    rgbe = _sample(5, 300)
    _write(tmp_path / "f.hdr", rgbe, rle=rle)
    got = read_hdr(tmp_path / "f.hdr")
    assert got.shape == (5, 300, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, _expected(rgbe))
    assert got[0, 0].tolist() == [0.0, 0.0, 0.0]
    assert got[1, 0].tolist() == [200.5 * 2.0**-7, 100.5 * 2.0**-7, 50.5 * 2.0**-7]


def test_a_preview_of_an_hdr_is_clamped_and_srgb_encoded(tmp_path: Path) -> None:
    rgbe = np.zeros((4, 16, 4), dtype=np.uint8)
    rgbe[...] = (128, 255, 0, 128)  # linear (c + 0.5) / 256: about 0.5, 1.0 and 0.002
    rgbe[:, 8:] = (128, 128, 128, 140)  # 8.0: over-exposed, clamped to white
    _write(tmp_path / "h.hdr", rgbe, rle=True)
    make_preview(tmp_path / "h.hdr", tmp_path / "h.png")
    with Image.open(tmp_path / "h.png") as img:
        px = np.asarray(img.convert("RGB"))
    assert px.shape == (4, 16, 3)
    assert tuple(px[0, 0]) == (188, 255, 6) and tuple(px[0, 15]) == (255, 255, 255)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"P6\n1 1\n255\n\x00\x00\x00", "not a Radiance HDR file"),
        (b"#?RADIANCE\nFORMAT=32-bit_rle_xyze\n\n-Y 1 +X 1\n\x00\x00\x00\x00", "xyze"),
        (b"#?RADIANCE\n\n+Y 1 +X 1\n\x00\x00\x00\x00", "resolution line"),
        (b"#?RADIANCE\n\n-Y 2 +X 1\n\x00\x00\x00\x00", "end early"),
        (b"#?RADIANCE\n\n-Y 1 +X 8\n\x02\x02\x00\x08\xff\x01", "overflows"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, data: bytes, message: str) -> None:
    (tmp_path / "bad.hdr").write_bytes(data)
    with pytest.raises(HdrError, match=message):
        read_hdr(tmp_path / "bad.hdr")
    with pytest.raises(PreviewError, match="bad.hdr"):
        make_preview(tmp_path / "bad.hdr", tmp_path / "out.png")
