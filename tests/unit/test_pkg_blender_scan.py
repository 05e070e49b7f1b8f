"""From what Blender reports a .blend references to the files a job uploads (no Blender needed).

The real Blender run that produces the references is covered by
tests/integration/test_pkg_blender_scene.py.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from spillway.packages import MissingDependencyError, ScanError
from spillway.packages.blender import (
    BlendFile,
    BlendScene,
    required_features,
    resolve_files,
    scene_from_inspection,
)
from spillway.packages.features import BLENDER_OIDN


def _ref(kind: str, raw: str, folder: Path, **extra: object) -> BlendFile:
    return BlendFile(
        kind=kind, owner="image 'X'", raw=raw, abs=str(folder / raw.removeprefix("//")), **extra
    )  # type: ignore[arg-type]


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def test_udim_tokens_expand_to_every_tile(tmp_path: Path) -> None:
    _touch(tmp_path, "t/wood.1001.png", "t/wood.1012.png", "t/rock.u1_v1.png", "t/rock.u2_v2.png")
    refs = [
        _ref("tiles", "//t/wood.<UDIM>.png", tmp_path, tiles=(1001, 1012)),
        _ref("tiles", "//t/rock.<UVTILE>.png", tmp_path, tiles=(1001, 1012)),
    ]
    assert resolve_files(refs, tmp_path) == [
        PurePosixPath(p)
        for p in ("t/rock.u1_v1.png", "t/rock.u2_v2.png", "t/wood.1001.png", "t/wood.1012.png")
    ]


def test_a_missing_tile_is_named_with_its_owner(tmp_path: Path) -> None:
    _touch(tmp_path, "t/wood.1001.png")
    refs = [_ref("tiles", "//t/wood.<UDIM>.png", tmp_path, tiles=(1001, 1002))]
    with pytest.raises(MissingDependencyError, match=r"'t/wood.1002.png' \(image 'X'\)") as err:
        resolve_files(refs, tmp_path)
    assert err.value.files == ("t/wood.1002.png",)


def test_old_style_tile_names_use_the_first_tiles_number(tmp_path: Path) -> None:
    _touch(tmp_path, "wood_1001.png", "wood_1002.png")
    refs = [_ref("tiles", "//wood_1001.png", tmp_path, tiles=(1001, 1002))]
    assert resolve_files(refs, tmp_path) == [
        PurePosixPath("wood_1001.png"),
        PurePosixPath("wood_1002.png"),
    ]


def test_a_sequence_is_every_numbered_file_of_its_pattern(tmp_path: Path) -> None:
    _touch(
        tmp_path, "seq/shot_001.exr", "seq/shot_002.exr", "seq/shot_010.exr", "seq/other_001.exr"
    )
    refs = [_ref("sequence", "//seq/shot_001.exr", tmp_path)]
    assert resolve_files(refs, tmp_path) == [
        PurePosixPath(f"seq/shot_{n}.exr") for n in ("001", "002", "010")
    ]


def test_an_empty_sequence_names_the_pattern_and_the_asset_to_add(tmp_path: Path) -> None:
    refs = [_ref("sequence", "//seq/shot_001.exr", tmp_path)]
    with pytest.raises(MissingDependencyError, match=r"seq/shot_###.exr.*--asset seq/shot_001.exr"):
        resolve_files(refs, tmp_path)
    # An --asset of the sequence satisfies it.
    assert resolve_files(refs, tmp_path, [PurePosixPath("seq/shot_005.exr")]) == [
        PurePosixPath("seq/shot_005.exr")
    ]


def test_cache_folders_upload_their_files_and_a_baked_empty_one_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "cache/a/1.bphys", "cache/2.bphys")
    assert resolve_files([_ref("dir", "//cache", tmp_path, baked=True)], tmp_path) == [
        PurePosixPath("cache/2.bphys"),
        PurePosixPath("cache/a/1.bphys"),
    ]
    # Not baked: Blender simulates at render time, nothing is needed.
    assert resolve_files([_ref("dir", "//fluid", tmp_path, baked=False)], tmp_path) == []
    with pytest.raises(MissingDependencyError, match="cache folder 'fluid'.*bake it.*--asset"):
        resolve_files([_ref("dir", "//fluid", tmp_path, baked=True)], tmp_path)


def test_absolute_and_outside_references_are_refused(tmp_path: Path) -> None:
    absolute = BlendFile(kind="file", owner="sound 'S'", raw="/home/x/s.wav", abs="/home/x/s.wav")
    with pytest.raises(ScanError, match="sound 'S' uses the absolute path.*Make Paths Relative"):
        resolve_files([absolute], tmp_path)
    outside = BlendFile(
        kind="file", owner="font 'F'", raw="//../f.ttf", abs=str(tmp_path.parent / "f.ttf")
    )
    with pytest.raises(ScanError, match="font 'F' references .* outside the scene folder"):
        resolve_files([outside], tmp_path)


def test_missing_files_are_named_together(tmp_path: Path) -> None:
    refs = [_ref("file", "//a.png", tmp_path), _ref("file", "//lib/b.blend", tmp_path)]
    with pytest.raises(MissingDependencyError, match="missing files 'a.png'.*'lib/b.blend'"):
        resolve_files(refs, tmp_path)


def _scene(**fields: object) -> BlendScene:
    values: dict[str, object] = dict(
        files=(),
        engine="CYCLES",
        frame_start=1,
        frame_end=250,
        frame_step=1,
        samples=64,
        seed=0,
        cycles_denoise=False,
        compositor_denoise=False,
    )
    values.update(fields)
    return BlendScene(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "spec"),
    [
        ({}, "1-250"),
        ({"frame_start": 3, "frame_end": 9, "frame_step": 2}, "3-9x2"),
        ({"frame_start": 7, "frame_end": 7, "frame_step": 5}, "7"),
    ],
)
def test_scene_frames_come_from_the_blend(fields: dict[str, object], spec: str) -> None:
    frames = _scene(**fields).frames
    assert frames.spec == spec and not frames.fixed


@pytest.mark.parametrize(
    ("fields", "engine", "denoise", "needs_oidn"),
    [
        ({"cycles_denoise": True}, "", True, True),
        ({"cycles_denoise": True}, "", False, False),  # --no-denoise
        ({"cycles_denoise": True}, "eevee", True, False),  # Cycles' denoiser is not used
        ({"cycles_denoise": True, "engine": "BLENDER_EEVEE"}, "", True, False),
        ({"cycles_denoise": True, "engine": "BLENDER_EEVEE"}, "cycles", True, True),
        ({"compositor_denoise": True, "engine": "BLENDER_WORKBENCH"}, "", True, True),
        ({}, "", True, False),
    ],
)
def test_features_a_render_needs(
    fields: dict[str, object], engine: str, denoise: bool, needs_oidn: bool
) -> None:
    expected = frozenset({BLENDER_OIDN}) if needs_oidn else frozenset()
    assert required_features(_scene(**fields), engine=engine, denoise=denoise) == expected


def test_a_movie_output_reported_by_the_inspection_is_refused_first(tmp_path: Path) -> None:
    """The refusal (the Blender-side check's words) comes before any file is resolved, for the
    CLI's scan and the add-on's alike; image output reads as before."""
    settings: dict[str, object] = {
        "engine": "CYCLES",
        "frame_start": 1,
        "frame_end": 3,
        "frame_step": 1,
        "cycles_denoise": False,
        "compositor_denoise": False,
    }
    missing = [_ref("file", "//gone.png", tmp_path)]
    with pytest.raises(ScanError, match=r"^the scene writes a movie file \(AVI_JPEG\)"):
        scene_from_inspection(
            missing,
            settings | {"movie_refusal": "the scene writes a movie file (AVI_JPEG)"},
            tmp_path,
        )
    scene = scene_from_inspection([], settings | {"movie_refusal": ""}, tmp_path)
    assert (scene.frame_start, scene.frame_end) == (1, 3)
