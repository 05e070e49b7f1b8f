"""Command line of the built-in tracer.

    python -m render_server.packages.builtin SCENE.json --frames 1,2,3 \
        --width 320 --height 240 --out OUTDIR [--name NAME]

writes OUTDIR/<NAME or scene stem>_<frame:04d>.png per frame (temp file + rename)
and prints "frame N done in S.SSs" per frame.  Errors are one line on stderr and
a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from render_server.packages.builtin import VERSION
from render_server.packages.builtin.tracer import load_textures, render
from spillway.packages.builtin_scene import load_scene
from spillway.packages.errors import MissingDependencyError, PackageError

EXIT_USAGE = 2
EXIT_SCENE = 3
EXIT_MISSING = 4


def parse_frames(text: str) -> list[int]:
    """'1,2,5-8' -> [1, 2, 5, 6, 7, 8]."""
    frames: list[int] = []
    for part in text.split(","):
        part = part.strip()
        first, sep, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad frame list {text!r} (use e.g. 1,2,5-8)"
            ) from None
        if hi < lo:
            raise argparse.ArgumentTypeError(f"bad frame range {part!r}")
        frames.extend(range(lo, hi + 1))
    return frames


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value <= 16384:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m render_server.packages.builtin",
        description="Render frames of a Spillway JSON scene with the built-in tracer.",
    )
    p.add_argument("scene", type=Path)
    p.add_argument("--frames", type=parse_frames, required=True, help="e.g. 1,2,3 or 1-24")
    p.add_argument("--width", type=_positive, default=320)
    p.add_argument("--height", type=_positive, default=240)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--name", help="output file prefix (default: scene file stem)")
    p.add_argument("--version", action="version", version=f"spillway-builtin {VERSION}")
    return p


def write_png(pixels: np.ndarray, path: Path) -> None:
    """Write atomically so a reader never sees a half-written frame."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(pixels, "RGB").save(tmp, format="PNG", compress_level=3)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    name = args.name or args.scene.stem
    try:
        spec = load_scene(args.scene)
        textures = load_textures(spec.textures, args.scene.resolve().parent)
        args.out.mkdir(parents=True, exist_ok=True)
        for frame in args.frames:
            start = time.perf_counter()
            pixels = render(spec.at(frame), textures, args.width, args.height)
            write_png(pixels, args.out / f"{name}_{frame:04d}.png")
            print(f"frame {frame} done in {time.perf_counter() - start:.2f}s", flush=True)
    except MissingDependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISSING
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SCENE
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SCENE
    return 0
