"""Blender's outputs beyond plain stills, against the real blender binary: Radiance HDR files it
writes read here as Blender itself reads them (for previews), and a movie-format .blend refused
when it is read for submission, with the fix named."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from render_server.hdr import read_hdr
from render_server.preview import make_preview
from spillway.packages import ScanError
from spillway.packages.blender import BlenderScanner

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed"),
]

# Blender renders the default scene (workbench) to .hdr at two sizes: 40 px wide scanlines are
# run-length encoded, 5 px wide ones flat. Then it prints its own reading of each file.
WRITE_AND_READ_HDR = """
import bpy, json, sys
out = sys.argv[sys.argv.index("--") + 1]
r = bpy.context.scene.render
r.engine = "BLENDER_WORKBENCH"
r.image_settings.file_format = "HDR"
r.resolution_percentage = 100
for name, (w, h) in {"rle": (40, 30), "flat": (5, 4)}.items():
    r.resolution_x, r.resolution_y = w, h
    r.filepath = f"{out}/{name}.hdr"
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(r.filepath)
    print("PIXELS", name, json.dumps([w, h, list(img.pixels)]))
"""


def test_radiance_hdr_written_by_blender_reads_as_blender_reads_it(tmp_path: Path) -> None:
    result = subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1",
         "--python-expr", WRITE_AND_READ_HDR, "--", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    seen = 0
    for line in result.stdout.splitlines():
        if not line.startswith("PIXELS "):
            continue
        _, name, payload = line.split(" ", 2)
        width, height, flat = json.loads(payload)
        # Blender's pixels are RGBA floats, bottom row first.
        want = np.asarray(flat, dtype=np.float32).reshape(height, width, 4)[::-1, :, :3]
        got = read_hdr(tmp_path / f"{name}.hdr")
        assert got.shape == (height, width, 3)
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.std() > 0, "the render is a picture, not a flat colour"
        make_preview(tmp_path / f"{name}.hdr", tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        seen += 1
    assert seen == 2, result.stdout[-2000:]
    # Both scanline encodings were exercised.
    assert b"\n-Y 30 +X 40\n\x02\x02\x00\x28" in (tmp_path / "rle.hdr").read_bytes()
    assert b"\n-Y 4 +X 5\n\x02\x02" not in (tmp_path / "flat.hdr").read_bytes()
