"""POV-Ray adapter against the real povray binary."""

from __future__ import annotations

import asyncio
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
# POV-Ray's own example scenes (Debian's povray-examples; scripts/test installs it).
POVRAY_EXAMPLES = Path("/usr/share/doc/povray/examples")

pytestmark = [
    pytest.mark.povray,
    pytest.mark.skipif(shutil.which("povray") is None, reason="povray is not installed"),
]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work)
    return work


def _request(
    work: Path, out: Path, frames: tuple[int, ...], *, job: tuple[int, int] | None = None
) -> RenderRequest:
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
        job_first=job[0] if job else None,
        job_last=job[1] if job else None,
    )


def _run(adapter: PovrayAdapter, req: RenderRequest) -> subprocess.CompletedProcess[str]:
    """Run the chunk's POV-Ray processes in turn, as the render server does (stops at a failure)."""
    logs: list[subprocess.CompletedProcess[str]] = []
    for argv in adapter.commands(req):
        logs.append(
            subprocess.run(
                argv,
                env={**os.environ, **adapter.env(req)},
                cwd=req.workdir.parent,
                capture_output=True,
                text=True,
                timeout=120,
            )
        )
        if logs[-1].returncode != 0:
            break
    return subprocess.CompletedProcess(
        [a for p in logs for a in p.args],
        logs[-1].returncode,
        "".join(p.stdout for p in logs),
        "".join(p.stderr for p in logs),
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
    req = _request(work, tmp_path / "out", (8, 9, 10), job=(1, 24))
    adapter.preflight(req)
    proc = _run(adapter, req)
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = adapter.collect(req)
    assert sorted(frames) == [8, 9, 10]
    images = [_pixels(frames[f][0]) for f in (8, 9, 10)]
    assert all(img.shape == (48, 64, 3) for img in images)
    assert images[0].tobytes() != images[2].tobytes()


def _direct_frame(work: Path, out: Path, frame: int, job: tuple[int, int]) -> np.ndarray:
    """POV-Ray itself rendering one frame of the job: its +KFI/+KFF and +SF/+EF of the frame."""
    out.mkdir()
    argv = ["povray", f"+KFI{job[0]}", f"+KFF{job[1]}", "+Iscene.pov", "+W64", "+H48"]
    argv += ["-D", "-P", f"+SF{frame}", f"+EF{frame}", f"+O{out}/scene"]
    proc = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (image,) = out.glob("*.png")
    return _pixels(image)


@pytest.mark.parametrize(
    ("frames", "runs"),
    [((3, 8, 13), 1), ((1, 5, 10), 2)],
    ids=["stepped", "irregular"],
)
def test_a_chunk_renders_exactly_its_frames_as_povray_does(
    work: Path, tmp_path: Path, frames: tuple[int, ...], runs: int
) -> None:
    """Only the chunk's frames are rendered (none in between), each pixel-identical to
    POV-Ray rendering that frame of the job alone."""
    job = (1, 15)
    adapter = PovrayAdapter()
    req = _request(work, tmp_path / "out", frames, job=job)
    assert len(adapter.commands(req)) == runs
    proc = _run(adapter, req)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in req.outdir.iterdir()) == [f"scene{f:02d}.png" for f in frames]
    # POV-Ray's log: one "Rendered ... pixels" summary per frame it rendered.
    assert proc.stderr.count("Rendered 3072 of 3072 pixels") == len(frames)
    collected = adapter.collect(req)
    for f in frames:
        direct = _direct_frame(work, tmp_path / f"direct{f}", f, job)
        assert np.array_equal(_pixels(collected[f][0]), direct), f"frame {f} differs"


def test_single_frame_chunk(work: Path, tmp_path: Path) -> None:
    adapter = PovrayAdapter()
    req = _request(work, tmp_path / "out", (12,), job=(1, 24))
    assert _run(adapter, req).returncode == 0
    img = _pixels(adapter.collect(req)[12][0])
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


# --- parity with POV-Ray run directly on the same files -----------------------------------


def _example(tmp_path: Path, name: str, *, small: str = "") -> Path:
    """A copy of POV-Ray's example folder ``name`` (e.g. animations/clockd), with ``small``
    appended to its INI files to keep the test quick; both renders read that copy."""
    src = POVRAY_EXAMPLES / name
    if not src.is_dir():
        pytest.skip(f"{src} is missing: install Debian's povray-examples")
    folder = tmp_path / src.name
    shutil.copytree(src, folder)
    for ini in folder.glob("*.ini"):
        ini.write_text(ini.read_text() + "\n" + small)
    return folder


def _direct(folder: Path, *args: str) -> dict[str, np.ndarray]:
    """Render with POV-Ray itself in ``folder``: {output file name: pixels}."""
    out = folder.parent / f"direct-{folder.name}"
    out.mkdir()
    proc = subprocess.run(
        ["povray", *args, "-D", "-P", f"+O{out}/"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {p.name: _pixels(p) for p in sorted(out.glob("*.png"))}


def _farm(
    folder: Path,
    scene: str,
    frames: list[int],
    chunk: int,
    *,
    size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Render ``frames`` in chunks as render servers do, each chunk in a fresh work dir
    holding only the scanned files: {output file name: pixels}."""
    adapter = PovrayAdapter()
    files = [Path(scene), *_scan(folder / scene)]
    result: dict[str, np.ndarray] = {}
    for i in range(0, len(frames), chunk):
        work = folder.parent / f"work-{folder.name}-{chunk}-{i}"
        for rel in files:
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / rel, work / rel)
        req = RenderRequest(
            scene=work / scene,
            workdir=work,
            outdir=work / "_out",
            frames=tuple(frames[i : i + chunk]),
            width=size[0] if size else None,
            height=size[1] if size else None,
            threads=2,
            declared_assets=tuple(str(f) for f in files),
            job_first=frames[0],
            job_last=frames[-1],
        )
        req.outdir.mkdir()
        adapter.preflight(req)
        proc = subprocess.run(
            adapter.command(req), cwd=work, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        for frame, [path] in adapter.collect(req).items():
            assert frame in req.frames
            result[path.name] = _pixels(path)
    return result


def _scan(scene: Path) -> list[Path]:
    return asyncio.run(PovrayAdapter().scan(scene))


def _assert_same(farm: dict[str, np.ndarray], direct: dict[str, np.ndarray]) -> None:
    assert sorted(farm) == sorted(direct)
    for name, pixels in direct.items():
        assert np.array_equal(farm[name], pixels), f"{name} differs from POV-Ray's own render"


SMALL = "Width=48\nHeight=36\n"


@pytest.mark.parametrize("example", ["animations/clockd", "animations/ambient"])
@pytest.mark.parametrize("chunk", [1, 3])
def test_ini_animation_matches_povray_whatever_the_chunk(
    tmp_path: Path, example: str, chunk: int
) -> None:
    folder = _example(tmp_path, example, small=SMALL)
    ini = f"{folder.name}.ini"
    direct = _direct(folder, ini)
    assert len(direct) == 20 and f"{folder.name}01.png" in direct  # POV-Ray's own names
    farm = _farm(folder, ini, list(range(1, 21)), chunk)
    _assert_same(farm, direct)
    # The clock runs 0 -> 1 over the job: the first and last frames differ.
    assert not np.array_equal(direct[f"{folder.name}01.png"], direct[f"{folder.name}20.png"])


def test_pov_with_frames_is_povrays_default_animation(tmp_path: Path) -> None:
    folder = _example(tmp_path, "animations/clockd")
    direct = _direct(folder, "clockd.pov", "+KFI1", "+KFF20", "+W48", "+H36")
    farm = _farm(folder, "clockd.pov", list(range(1, 21)), 3, size=(48, 36))
    _assert_same(farm, direct)


def test_ini_subset_of_frames_keeps_the_ini_clock(tmp_path: Path) -> None:
    folder = _example(tmp_path, "animations/clockd", small=SMALL)
    direct = _direct(folder, "clockd.ini", "+SF5", "+EF7")
    farm = _farm(folder, "clockd.ini", [5, 6, 7], 2)
    _assert_same(farm, direct)


def test_extension_less_image_map_matches_povray(tmp_path: Path) -> None:
    folder = _example(tmp_path, "advanced/cliche")
    # cliche.pov reads image_map { "sign" }: POV-Ray opens sign.png, made by sign.pov.
    made = subprocess.run(
        ["povray", "+Isign.pov", "+W40", "+H40", "-D", "+Osign.png"],
        cwd=folder,
        capture_output=True,
        timeout=120,
    )
    assert made.returncode == 0
    assert _scan(folder / "cliche.pov") == [Path("sign.png")]
    direct = _direct(folder, "cliche.pov", "+W64", "+H48")
    farm = _farm(folder, "cliche.pov", [1], 1, size=(64, 48))
    _assert_same(farm, direct)
