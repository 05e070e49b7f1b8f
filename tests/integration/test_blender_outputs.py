"""Blender's outputs beyond plain stills, against the real blender binary: Radiance HDR files it
writes read here as Blender itself reads them (for previews), and a movie-format .blend refused
when it is read for submission, with the fix named."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from render_server.hdr import read_hdr
from render_server.packages.base import RenderRequest
from render_server.packages.blender import BlenderAdapter
from render_server.preview import make_preview
from spillway.packages import ScanError
from spillway.packages.blender import BlenderScanner
from spillway.packages.error_line import renderer_error

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


MOVIE_BLEND = """
import bpy, sys
out = sys.argv[sys.argv.index("--") + 1]
s = bpy.context.scene
r = s.render
r.engine = "BLENDER_WORKBENCH"
r.resolution_x, r.resolution_y, r.resolution_percentage = 32, 24, 100
r.fps, r.fps_base = 25, 1.0
r.image_settings.file_format = "FFMPEG"
r.ffmpeg.format, r.ffmpeg.codec = "MPEG4", "H264"
r.filepath = "//renders/shot_"
s.frame_start, s.frame_end = 1, 3
bpy.ops.wm.save_as_mainfile(filepath=out)
"""


@pytest.fixture(scope="module")
def movie_blend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("movie") / "movie.blend"
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1",
         "--python-expr", MOVIE_BLEND, "--", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


FIX = (
    "the scene writes a movie file (FFmpeg MPEG4, H264); frames rendered on several servers "
    "cannot make one: set the File Format to an image format (PNG, OpenEXR) and encode the "
    "frames afterwards, e.g. ffmpeg -framerate 25 -i shot_%04d.png -c:v libx264 "
    "-pix_fmt yuv420p shot.mp4"
)


async def test_a_movie_output_is_refused_when_read_for_submission(movie_blend: Path) -> None:
    with pytest.raises(ScanError) as caught:
        await BlenderScanner().read(movie_blend)
    assert str(caught.value) == FIX


def test_a_movie_output_fails_the_render_with_the_fix(movie_blend: Path, tmp_path: Path) -> None:
    """A job that reached a render server without the submit-time read fails, naming the fix,
    and writes nothing (it used to render PNG frames instead of the movie)."""
    out = tmp_path / "out"
    out.mkdir()
    req = RenderRequest(
        scene=movie_blend, workdir=movie_blend.parent, outdir=out, frames=(1, 2), threads=1
    )
    result = subprocess.run(
        BlenderAdapter().command(req), capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    # The task's error is the renderer's error line, whole.
    assert renderer_error(result.stdout + result.stderr) == "Error: " + FIX
    assert list(out.iterdir()) == []


def test_spillway_submit_refuses_a_movie_scene_before_contacting_the_agent(
    movie_blend: Path,
) -> None:
    # Port 9 (discard) has no agent: the refusal comes from reading the .blend, first.
    argv = [sys.executable, "-m", "spillway", "submit", str(movie_blend), "--package", "blender"]
    result = subprocess.run(
        [*argv, "--agent", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"spillway: error: cannot submit movie.blend: {FIX}"
    assert "Traceback" not in result.stderr
