"""Small PNG previews of rendered frames, for the CLI and the web monitor.

A preview is made on the render server, next to the render, and uploaded as a
frame file of kind ``preview``: the agent's CPU is shared by every server of
the site, a render server's is idle between the render and its upload. It is
8-bit sRGB, its longest side at most :data:`PREVIEW_SIZE` pixels.

Tone mapping: linear scene values (OpenEXR, Radiance HDR read by
:mod:`render_server.hdr`) are clamped to [0, 1] and encoded with the sRGB
transfer function, which is what Blender's "Standard" view transform shows;
16-bit integer images are scaled to 8 bits. A preview is a convenience: a
format that cannot be read here (an exotic TIFF) gets none, and the real
output is stored all the same.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from spillway.core.records import preview_name as preview_name  # re-exported for the runner

from .hdr import FloatImage, HdrError, read_hdr

log = logging.getLogger(__name__)
PREVIEW_SIZE = 256
"""Longest side of a preview, in pixels."""


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">IIBB")
"""The start of a PNG's first chunk's data: width, height, bit depth, colour type."""
_PNG_RGB, _PNG_RGBA = 2, 6


class PreviewError(Exception):
    """The file cannot be read as an image here; it gets no preview."""


def make_preview(source: Path, dest: Path, *, size: int = PREVIEW_SIZE) -> None:
    """Write a preview of the image ``source`` to ``dest`` (blocking: call it in a thread).

    Raises :class:`PreviewError` when ``source`` is not an image this host can read.
    """
    if _is_own_preview(source, size):
        _link_or_copy(source, dest)
        return
    linear = _LINEAR.get(source.suffix.lower())
    if linear is not None:
        rgb = _srgb(linear(source))
        image = Image.fromarray((rgb * 255.0 + 0.5).astype(np.uint8), "RGB")
    else:
        image = _read_with_pillow(source)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    image.save(dest, "PNG")


def _is_own_preview(source: Path, size: int) -> bool:
    """Whether ``source`` is already what a preview is: an 8-bit RGB(A) PNG no larger than
    ``size``. Decoding and encoding it again gave the same picture at a cost of ~0.5 ms of
    the render server's CPU per frame of a short task; only its header is read here, and
    read directly: Pillow calls a 16-bit colour PNG ``RGB`` too (7 µs against Pillow's 23)."""
    if source.suffix.lower() != ".png":
        return False
    try:
        with source.open("rb") as f:
            head = f.read(len(_PNG_SIGNATURE) + 8 + _IHDR.size)
    except OSError:
        return False  # the full path says why, as a PreviewError
    if len(head) < len(_PNG_SIGNATURE) + 8 + _IHDR.size or not head.startswith(_PNG_SIGNATURE):
        return False
    if head[12:16] != b"IHDR":
        return False
    width, height, depth, colour = _IHDR.unpack_from(head, 16)
    return depth == 8 and colour in (_PNG_RGB, _PNG_RGBA) and 0 < max(width, height) <= size


def _link_or_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, dest)


def read_exr(path: Path) -> FloatImage:
    """The colour of an OpenEXR file as linear float32 RGB, shape (height, width, 3).

    Plain ``R``/``G``/``B`` channels when present; in a multilayer file the
    ``Combined`` pass of the first layer (``ViewLayer.Combined.R``...), else the
    first layer with R, G and B; a single channel (``Y``, ``V``) is shown grey.
    """
    import OpenEXR  # imported here: only render servers need it, and only for EXR output

    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {name: ch.pixels for name, ch in exr.channels().items()}
    except Exception as exc:  # noqa: BLE001 - the library raises bare RuntimeError/ValueError
        raise PreviewError(f"cannot read {path.name} as OpenEXR: {exc}") from exc
    names = _rgb_names(list(channels))
    if names is None:
        raise PreviewError(f"{path.name} has no colour channels ({', '.join(sorted(channels))})")
    planes = [np.asarray(channels[n], dtype=np.float32) for n in names]
    return np.nan_to_num(np.stack(planes, axis=-1), nan=0.0, posinf=1.0, neginf=0.0)


def read_radiance(path: Path) -> FloatImage:
    """The colour of a Radiance HDR file as linear float32 RGB, shape (height, width, 3)."""
    try:
        return read_hdr(path)
    except (OSError, HdrError) as exc:
        raise PreviewError(f"cannot read {path.name} as Radiance HDR: {exc}") from exc


_LINEAR = {".exr": read_exr, ".hdr": read_radiance}
"""Readers of linear (scene-referred) formats, by file extension."""


def _rgb_names(names: list[str]) -> list[str] | None:
    """Three channel names to show as R, G and B (the same name thrice for grey)."""
    if {"R", "G", "B"} <= set(names):
        return ["R", "G", "B"]
    prefixes = sorted(
        {n[: -len(".R")] for n in names if n.endswith(".R")},
        key=lambda p: (not p.endswith("Combined"), p),
    )
    for prefix in prefixes:
        wanted = [f"{prefix}.{c}" for c in "RGB"]
        if set(wanted) <= set(names):
            return wanted
    for grey in ("Y", "V", "Z"):
        if grey in names:
            return [grey] * 3
    return [names[0]] * 3 if len(names) == 1 else None


def _srgb(linear: FloatImage) -> FloatImage:
    """Clamp to [0, 1] and apply the sRGB transfer function."""
    x = np.clip(linear, 0.0, 1.0)
    out: FloatImage = np.where(
        x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1.0 / 2.4) - 0.055
    ).astype(np.float32)
    return out


def _read_with_pillow(source: Path) -> Image.Image:
    try:
        with Image.open(source) as opened:
            opened.load()
            image = opened.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PreviewError(f"cannot read {source.name} as an image: {exc}") from exc
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Single-channel 16-bit (or 32-bit integer): scale the full range to 8 bits.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() <= 65535 else values.max()
        grey = (np.clip(values / top, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "F":
        grey32 = _srgb(np.asarray(image, dtype=np.float32))
        return Image.fromarray((grey32 * 255.0 + 0.5).astype(np.uint8), "L").convert("RGB")
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")
