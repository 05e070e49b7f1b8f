"""Generate the small texture PNGs used by the example scenes (numpy + Pillow only).

    .venv/bin/python examples/make_textures.py

Deterministic, so re-running it reproduces the committed files byte for byte
(for a given Pillow version).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def planet(width: int = 256, height: int = 128) -> np.ndarray:
    """Latitude bands, a meridian grid and a red 'continent' so spinning is visible."""
    v, u = np.mgrid[0:height, 0:width]
    lat = v / height
    lon = u / width
    bands = 0.5 + 0.5 * np.sin(lat * np.pi * 9)
    img = np.stack([0.15 + 0.3 * bands, 0.35 + 0.4 * bands, 0.8 - 0.2 * bands], axis=-1)
    grid = (u % 32 < 2) | (v % 32 < 2)
    img[grid] = [0.95, 0.95, 0.9]
    blob = ((lon - 0.3) / 0.12) ** 2 + ((lat - 0.45) / 0.2) ** 2 < 1
    img[blob] = [0.85, 0.25, 0.15]
    return (img * 255).astype(np.uint8)


def tiles(size: int = 128) -> np.ndarray:
    """Terracotta tiles with grout lines; tiles seamlessly."""
    v, u = np.mgrid[0:size, 0:size]
    half = size // 2
    cell = (u // half + v // half) % 2
    img = np.where(cell[..., None] == 0, [0.78, 0.42, 0.26], [0.62, 0.55, 0.45])
    noise = np.sin(u * 0.9) * np.cos(v * 0.7) * 0.04
    img = img + noise[..., None]
    grout = (u % half < 3) | (v % half < 3)
    img[grout] = [0.9, 0.88, 0.82]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def main() -> None:
    outputs = {
        HERE / "textured" / "textures" / "planet.png": planet(),
        HERE / "textured" / "textures" / "tiles.png": tiles(),
        HERE / "povray" / "planet.png": planet(),
        HERE / "blender" / "tex.png": tiles(64),
    }
    for path, pixels in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "RGB").save(path, format="PNG", optimize=True)
        print(f"wrote {path.relative_to(HERE)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
