"""Reading a .blend with the real Blender: every kind of dependency, and the scene's own settings."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import pytest
from blend_scenes import FONTS, make_blend, make_deps_scene

from spillway.packages import MissingDependencyError
from spillway.packages.blender import BlenderScanner, required_features
from spillway.packages.features import BLENDER_OIDN

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed"),
    pytest.mark.skipif(not FONTS, reason="no TrueType font to build the test scene with"),
]

EXPECTED = {
    "tex.png",
    "seq/frame_0001.png",
    "seq/frame_0002.png",
    "seq/frame_0003.png",
    "udim/wood.1001.png",
    "udim/wood.1002.png",
    "snd/beep.wav",
    "fonts/font.ttf",
    "blendcache_main/a.bphys",
    "lib/lib.blend",
    "lib/libtex.png",
    "lib/deep/deeper.blend",
    "lib/deep/deeptex.png",
}


@pytest.fixture(scope="module")
def deps_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("deps")
    make_deps_scene(folder)
    return folder


@pytest.fixture
def work(deps_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(deps_dir, tmp_path / "work"))


async def test_scan_resolves_every_kind_of_reference(deps_dir: Path) -> None:
    files = {str(p) for p in await BlenderScanner().scan(deps_dir / "main.blend")}
    assert files >= EXPECTED, sorted(EXPECTED - files)
    # Nothing else but what Blender itself wrote into the point cache folder.
    assert all(f.startswith("blendcache_main/") for f in files - EXPECTED), files - EXPECTED


@pytest.mark.parametrize(
    ("gone", "named"),
    [
        ("udim/wood.1002.png", "'udim/wood.1002.png' (image 'wood.1001.png')"),
        ("lib/deep/deeptex.png", "'lib/deep/deeptex.png' (image 'deeptex.png')"),
        ("lib/deep/deeper.blend", "'lib/deep/deeper.blend' (library 'deeper.blend')"),
        ("fonts/font.ttf", "'fonts/font.ttf' (font "),
        ("snd/beep.wav", "'snd/beep.wav' (sound 'beep.wav')"),
    ],
)
async def test_a_missing_file_is_named_with_what_uses_it(work: Path, gone: str, named: str) -> None:
    (work / gone).unlink()
    with pytest.raises(MissingDependencyError) as err:
        await BlenderScanner().scan(work / "main.blend")
    assert named in str(err.value)


async def test_an_empty_sequence_asks_for_its_files(work: Path) -> None:
    shutil.rmtree(work / "seq")
    (work / "seq").mkdir()
    with pytest.raises(MissingDependencyError, match=r"seq/frame_####.png.*--asset seq/frame_0001"):
        await BlenderScanner().scan(work / "main.blend")
    # Files named with --asset satisfy it (here: put back and named explicitly).
    (work / "seq" / "frame_0007.png").write_bytes(b"png")
    found = await BlenderScanner().scan_with_assets(
        work / "main.blend", [PurePosixPath("seq/frame_0007.png")]
    )
    assert Path("seq/frame_0007.png") in found


async def test_scene_settings_frames_and_denoising(tmp_path: Path) -> None:
    blend = make_blend(
        tmp_path / "scene.blend",
        "--samples",
        "64",
        "--seed",
        "3",
        "--denoise",
        "--frames",
        "2-10x2",
        engine="CYCLES",
    )
    scene = await BlenderScanner().read(blend)
    assert scene.files == (PurePosixPath("tex.png"),)
    assert (scene.engine, scene.samples, scene.seed) == ("CYCLES", 64, 3)
    assert scene.frames.spec == "2-10x2"
    assert scene.cycles_denoise and not scene.compositor_denoise
    assert required_features(scene) == {BLENDER_OIDN}
    assert required_features(scene, denoise=False) == frozenset()
    assert required_features(scene, engine="workbench") == frozenset()
