"""POV-Ray adapter against the real povray binary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from render_server.packages.base import MissingDependencyError, RenderRequest, ScanError
from render_server.packages.povray import PovrayAdapter
from spillway.packages.povray import strip_comments

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "povray"

pytestmark = [
    pytest.mark.povray,
    pytest.mark.skipif(shutil.which("povray") is None, reason="povray is not installed"),
]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work)
    return work


def _request(work: Path, out: Path, frames: tuple[int, ...]) -> RenderRequest:
    out.mkdir(exist_ok=True)
    return RenderRequest(
        scene=work / "scene.pov",
        workdir=work,
        outdir=out,
        frames=frames,
        width=64,
        height=48,
        threads=2,
        declared_assets=("planet.png", "props.inc"),
    )


def _run(adapter: PovrayAdapter, req: RenderRequest) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        adapter.command(req),
        env={**os.environ, **adapter.env(req)},
        cwd=req.workdir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


async def test_probe_reports_version() -> None:
    version = await PovrayAdapter().probe()
    assert version is not None and version.startswith("3.7")


async def test_probe_absent_binary_is_none() -> None:
    assert await PovrayAdapter(executable="/nonexistent/povray").probe() is None


async def test_scan_finds_include_and_image() -> None:
    assert await PovrayAdapter().scan(EXAMPLE / "scene.pov") == [
        Path("planet.png"),
        Path("props.inc"),
    ]


async def test_scan_follows_nested_includes_and_ignores_comments(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "scene.pov").write_text(
        '#include "colors.inc"\n#include "inc/a.inc" // #include "gone.inc"\n/* png "nope.png" */\n'
    )
    (tmp_path / "inc" / "a.inc").write_text('#include "inc/b.inc"\n')
    (tmp_path / "inc" / "b.inc").write_text('height_field { png "hf.png" }\n')
    (tmp_path / "hf.png").write_bytes(b"")
    found = await PovrayAdapter().scan(tmp_path / "scene.pov")
    assert found == [Path("hf.png"), Path("inc/a.inc"), Path("inc/b.inc")]


async def test_scan_missing_and_outside_references(tmp_path: Path) -> None:
    scene = tmp_path / "scene.pov"
    scene.write_text('sphere { 0, 1 pigment { image_map { jpeg "wood.jpg" } } }')
    with pytest.raises(MissingDependencyError, match="wood.jpg"):
        await PovrayAdapter().scan(scene)
    scene.write_text('sphere { 0, 1 pigment { image_map { png "/tmp/x.png" } } }')
    with pytest.raises(ScanError, match="'/tmp/x.png' is outside the scene folder"):
        await PovrayAdapter().scan(scene)


def test_strip_comments_keeps_strings() -> None:
    assert strip_comments('a /* x /* y */ z */ b // c\n"//d"') == 'a   b \n"//d"'


def test_renders_a_three_frame_chunk(work: Path, tmp_path: Path) -> None:
    adapter = PovrayAdapter()
    req = _request(work, tmp_path / "out", (8, 9, 10))
    adapter.preflight(req)
    proc = _run(adapter, req)
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = adapter.collect(req)
    assert sorted(frames) == [8, 9, 10]
    images = [_pixels(frames[f]) for f in (8, 9, 10)]
    assert all(img.shape == (48, 64, 3) for img in images)
    assert images[0].tobytes() != images[2].tobytes()


def test_single_frame_chunk(work: Path, tmp_path: Path) -> None:
    adapter = PovrayAdapter()
    req = _request(work, tmp_path / "out", (12,))
    assert _run(adapter, req).returncode == 0
    img = _pixels(adapter.collect(req)[12])
    assert img.std() > 10  # a real picture, not just the background


def test_missing_texture(work: Path, tmp_path: Path) -> None:
    (work / "planet.png").unlink()
    adapter = PovrayAdapter()
    req = _request(work, tmp_path / "out", (1,))
    with pytest.raises(MissingDependencyError, match="planet.png"):
        adapter.preflight(req)
    proc = _run(adapter, req)
    assert proc.returncode != 0
    assert "planet.png" in proc.stderr
    with pytest.raises(Exception, match="frame"):
        adapter.collect(req)
