"""Previews: OpenEXR clamped and sRGB-encoded, 16-bit scaled, at most 256 px, unreadable refused."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from render_server.preview import PreviewError, make_preview, preview_name, read_exr


def _write_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(path))


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def test_an_exr_is_clamped_srgb_encoded_and_made_small(tmp_path: Path) -> None:
    height, width = 300, 600
    plane = np.zeros((height, width), dtype=np.float32)
    red = plane + 0.5  # linear 0.5 is sRGB 188
    green = plane + 4.0  # over-exposed: clamped to white
    blue = plane  # black stays black
    _write_exr(tmp_path / "f.exr", {"R": red, "G": green, "B": blue})
    make_preview(tmp_path / "f.exr", tmp_path / "p.png")
    px = _pixels(tmp_path / "p.png")
    assert px.shape == (128, 256, 3)
    assert tuple(px[64, 128]) == (188, 255, 0)


def test_a_multilayer_exr_shows_its_combined_pass(tmp_path: Path) -> None:
    plane = np.zeros((4, 4), dtype=np.float32)
    channels = {
        "ViewLayer.Depth.Z": plane + 9.0,
        "ViewLayer.Combined.R": plane + 1.0,
        "ViewLayer.Combined.G": plane,
        "ViewLayer.Combined.B": plane,
        "ViewLayer.Combined.A": plane + 1.0,
        "ViewLayer.AO.R": plane,
        "ViewLayer.AO.G": plane + 1.0,
        "ViewLayer.AO.B": plane,
    }
    _write_exr(tmp_path / "m.exr", channels)
    assert read_exr(tmp_path / "m.exr")[0, 0].tolist() == [1.0, 0.0, 0.0]
    make_preview(tmp_path / "m.exr", tmp_path / "m.png")
    assert tuple(_pixels(tmp_path / "m.png")[0, 0]) == (255, 0, 0)


def test_a_16bit_image_is_scaled_to_8_bits(tmp_path: Path) -> None:
    values = np.full((10, 20), 32896, dtype=np.uint16)  # 0x8080: 128 in 8 bits
    Image.fromarray(values).save(tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode.startswith("I")  # really 16-bit on disk
    make_preview(tmp_path / "g.png", tmp_path / "gp.png")
    px = _pixels(tmp_path / "gp.png")
    assert px.shape == (10, 20, 3) and set(px.ravel().tolist()) == {128}


def test_an_unreadable_file_gets_no_preview(tmp_path: Path) -> None:
    (tmp_path / "x.hdr").write_bytes(b"#?RADIANCE\nnot really\n")
    (tmp_path / "y.exr").write_bytes(b"not an exr")
    for name in ("x.hdr", "y.exr"):
        with pytest.raises(PreviewError, match=name):
            make_preview(tmp_path / name, tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


def test_preview_names_keep_the_main_files_whole_name() -> None:
    assert preview_name("shot_0001.exr") == "shot_0001.exr.png"


def test_a_small_8_bit_png_is_its_own_preview(tmp_path: Path) -> None:
    # Stored uncompressed: a decode and re-encode would not give these bytes back.
    Image.new("RGBA", (16, 12), (10, 200, 30, 255)).save(tmp_path / "f.png", compress_level=0)
    make_preview(tmp_path / "f.png", tmp_path / "previews" / "p.png")
    assert (tmp_path / "previews" / "p.png").read_bytes() == (tmp_path / "f.png").read_bytes()
    # Made again (a retried task): replaced, not refused.
    make_preview(tmp_path / "f.png", tmp_path / "previews" / "p.png")
    assert (tmp_path / "previews" / "p.png").read_bytes() == (tmp_path / "f.png").read_bytes()


def test_a_small_png_in_another_mode_is_still_converted(tmp_path: Path) -> None:
    Image.new("P", (8, 8), 3).save(tmp_path / "f.png", "PNG")
    make_preview(tmp_path / "f.png", tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as img:
        assert img.mode == "RGB" and img.size == (8, 8)


def _png_rgb16(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit RGB PNG (Pillow cannot write one), rows unfiltered."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_a_small_16_bit_colour_png_is_made_8_bit_not_linked(tmp_path: Path) -> None:
    pixels = np.zeros((6, 9, 3), dtype=np.uint16)
    pixels[..., 0] = 0x8012  # 128 in 8 bits
    pixels[..., 2] = 0xFFFF
    _png_rgb16(tmp_path / "f.png", pixels)
    make_preview(tmp_path / "f.png", tmp_path / "p.png")
    head = (tmp_path / "p.png").read_bytes()[:26]
    assert head[12:16] == b"IHDR" and head[24] == 8  # bit depth 8
    px = _pixels(tmp_path / "p.png")
    assert px.shape == (6, 9, 3) and tuple(px[3, 4]) == (128, 0, 255)


@pytest.mark.parametrize(
    "content", [b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, b"GIF89a" * 8]
)
def test_a_png_named_file_with_a_broken_header_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "f.png").write_bytes(content)
    with pytest.raises(PreviewError):
        make_preview(tmp_path / "f.png", tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()
