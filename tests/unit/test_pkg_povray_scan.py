"""POV-Ray scanning without POV-Ray: INI files, POV-Ray's name lookup, computed names."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from spillway.client.submission import SubmissionError, build_manifest, resolve_frames
from spillway.packages import MissingDependencyError, ScanError, scene_frames
from spillway.packages.povray import PovrayScanner, UnresolvedReferenceError, references
from spillway.packages.povray_ini import ini_frames, read_ini
from spillway.packages.povray_names import candidates


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


# --- INI files --------------------------------------------------------------------------------


def test_ini_keys_switches_comments_and_includes(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "shot.ini": '; a comment\nInput_File_Name = "shot.pov"  ; trailing\n'
            "Width=480\n+H270\nLibrary_Path=lib\n+Lmore\ncommon.ini\n"
            "[hi-res]\nWidth=1920\n",
            "common.ini": "Initial_Frame=1\nFinal_Frame=30\nSubset_Start_Frame=11\n+EF20\n",
        },
    )
    ini = read_ini(tmp_path / "shot.ini")
    assert (ini.input, ini.width, ini.height) == ("shot.pov", 480, 270)
    assert ini.library == ("lib", "more")
    assert ini.files == ("common.ini",)
    assert ini.frame_range == (1, 30)
    assert ini_frames(tmp_path / "shot.ini") == ("11-20", 1, 30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Initial_Frame=1\nFinal_Frame=20\n", ("1-20", 1, 20)),
        ("+KFI0 +KFF9 +STP3", ("0-9x3", 0, 9)),
        ("Final_Frame=100\nSubset_Start_Frame=0.5\n", ("51-100", 1, 100)),
        ("Antialias=On\n", ("1", 1, 1)),  # a still: POV-Ray renders one image
    ],
)
def test_ini_frames(tmp_path: Path, text: str, expected: tuple[str, int, int]) -> None:
    (tmp_path / "a.ini").write_text("Input_File_Name=a.pov\n" + text)
    assert ini_frames(tmp_path / "a.ini") == expected


def test_ini_loop_and_bad_number(tmp_path: Path) -> None:
    _write(tmp_path, {"a.ini": "b.ini\n", "b.ini": "Include_Ini=a.ini\n"})
    with pytest.raises(ScanError, match="includes itself"):
        read_ini(tmp_path / "a.ini")
    _write(tmp_path, {"c.ini": "Width=wide\n"})
    with pytest.raises(ScanError, match="Width = 'wide' is not a number"):
        read_ini(tmp_path / "c.ini")


# --- POV-Ray's name lookup ----------------------------------------------------------------------


def test_candidates_follow_povray() -> None:
    assert [str(c) for c in candidates("sign", "")] == ["sign.png", "sign.PNG", "sign"]
    assert [str(c) for c in candidates("wood", "jpeg")][:4] == [
        "wood.jpg",
        "wood.JPG",
        "wood.jpeg",
        "wood.JPEG",
    ]
    assert [str(c) for c in candidates("parts", "include")] == ["parts.inc", "parts.INC", "parts"]
    assert [str(c) for c in candidates("a.b", "png")] == ["a.b"]  # has an extension: as given


async def test_scan_ini_with_library_path_and_extension_search(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "shot.ini": "Input_File_Name=scenes/shot.pov\nLibrary_Path=lib\nInclude_Ini=q.ini\n",
            "q.ini": "Antialias=On\n",
            "scenes/shot.pov": '#include "parts"\nbox { 0, 1 pigment { image_map { "sign" } } }\n'
            'text { ttf "timrom.ttf" "x" 0, 0 }\n',
            "lib/parts.inc": 'height_field { tga "hf" }\n',
            "lib/hf.tga": "",
            "sign.png": "",
        },
    )
    found = await PovrayScanner().scan(tmp_path / "shot.ini")
    assert found == [
        Path("lib/hf.tga"),
        Path("lib/parts.inc"),
        Path("q.ini"),
        Path("scenes/shot.pov"),
        Path("sign.png"),
    ]


async def test_scan_ini_without_scene_and_missing_scene(tmp_path: Path) -> None:
    (tmp_path / "a.ini").write_text("Width=10\n")
    with pytest.raises(ScanError, match="names no scene"):
        await PovrayScanner().scan(tmp_path / "a.ini")
    (tmp_path / "a.ini").write_text("Input_File_Name=gone.pov\n")
    with pytest.raises(MissingDependencyError, match="gone.pov"):
        await PovrayScanner().scan(tmp_path / "a.ini")


async def test_extension_less_image_is_png_not_jpeg(tmp_path: Path) -> None:
    # POV-Ray reads an untyped image as PNG on Unix: sign.jpg does not satisfy "sign".
    _write(tmp_path, {"s.pov": 'plane { z, 0 pigment { image_map { "sign" } } }', "sign.jpg": ""})
    with pytest.raises(MissingDependencyError, match=r"'sign \(POV-Ray tries sign.png"):
        await PovrayScanner().scan(tmp_path / "s.pov")


# --- names computed while parsing -----------------------------------------------------------------


def test_references_literal_declared_and_computed() -> None:
    refs = references(
        '#declare F = "wood.jpg";\n'
        '#include concat("part", str(I,0,0), ".inc")\n'
        "box { 0, 1 pigment { image_map { jpeg F } } }\n"
        '#fopen Data "points.txt" read\n'
        "box { 0, 1 pigment { image_map { function 10, 10 { x } } } }\n"
    )
    got = [(r.kind, r.name, r.line, r.pattern) for r in refs]
    assert got == [
        ("include", None, 2, "part*.inc"),
        ("jpeg", "wood.jpg", 3, "wood.jpg"),
        ("fopen", "points.txt", 4, "points.txt"),
    ]


async def test_computed_include_needs_an_asset(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "s.pov": '#declare I = 1;\n#include concat("part", str(I,0,0), ".inc")\n',
            "part1.inc": 'box { 0, 1 pigment { image_map { png "tex" } } }\n',
            "tex.png": "",
        },
    )
    with pytest.raises(UnresolvedReferenceError) as info:
        await PovrayScanner().scan(tmp_path / "s.pov")
    message = str(info.value)
    assert 's.pov line 2: concat("part", str(I,0,0), ".inc")' in message
    assert "--asset part1.inc" in message
    # The asset satisfies the computed name and is scanned in turn (tex.png).
    manifest = await build_manifest(
        tmp_path / "s.pov", [tmp_path / "part1.inc"], scanner=PovrayScanner()
    )
    assert sorted(e.path for e in manifest.entries) == ["part1.inc", "s.pov", "tex.png"]
    # An asset that cannot be the computed name does not.
    _write(tmp_path, {"other.inc": ""})
    with pytest.raises(SubmissionError, match="part1.inc"):
        await build_manifest(tmp_path / "s.pov", [tmp_path / "other.inc"], scanner=PovrayScanner())


async def test_render_server_preflight_skips_computed_names(tmp_path: Path) -> None:
    from spillway.packages.povray import find_dependencies

    _write(tmp_path, {"s.pov": '#include concat("a", "b")\n#include "c.inc"\n', "c.inc": ""})
    assert find_dependencies(tmp_path / "s.pov", [tmp_path]) == [PurePosixPath("c.inc")]


# --- frames of the job --------------------------------------------------------------------------


def test_resolve_frames_from_ini_and_bounds(tmp_path: Path) -> None:
    (tmp_path / "a.ini").write_text("Input_File_Name=a.pov\nFinal_Frame=20\n")
    (tmp_path / "a.pov").write_text("")
    ini, pov = tmp_path / "a.ini", tmp_path / "a.pov"
    assert resolve_frames(ini, "povray", "") == "1-20"
    assert resolve_frames(ini, "povray", "5-7") == "5-7"
    with pytest.raises(SubmissionError, match="leaves a.ini's animation, frames 1-20"):
        resolve_frames(ini, "povray", "15-30")
    assert resolve_frames(pov, "povray", "1-20") == "1-20"
    with pytest.raises(SubmissionError, match="--frames"):
        resolve_frames(pov, "povray", "")
    assert scene_frames("blender", pov) is None


def test_keywords_inside_strings_are_not_references() -> None:
    refs = references('#debug "a png image_map { x }"\n#declare S = "sys (";\nbox { 0, 1 }\n')
    assert refs == []


async def test_what_povrays_own_examples_write(tmp_path: Path) -> None:
    # Shapes found in POV-Ray's example scenes: an option among switches in an INI,
    # a blank template value, a file the scene writes then reads, an extension-less
    # standard font, a string variable declared twice.
    _write(
        tmp_path,
        {
            "a.ini": "Input_File_Name=a.pov\n+kf0.1666 +kff20 +kc declare=fp=0\nInitial_Frame=\n",
            "a.pov": '#fopen F "data.txt" write\n#fopen F "data.txt" read\n'
            'text { ttf "cyrvetic" "x" 0, 0 }\n'
            '#declare M = concat(P, ".inc");\n#declare M = "";\n#include M\n',
        },
    )
    assert ini_frames(tmp_path / "a.ini") == ("1-20", 1, 20)
    with pytest.raises(UnresolvedReferenceError, match=r"a.pov line 6: M names a file \(\*.inc\)"):
        await PovrayScanner().scan(tmp_path / "a.ini")


async def test_missing_extension_less_name_says_what_povray_tries(tmp_path: Path) -> None:
    _write(tmp_path, {"s.pov": '#include "parts"\n'})
    with pytest.raises(MissingDependencyError, match=r"parts \(POV-Ray tries parts.inc, parts.INC"):
        await PovrayScanner().scan(tmp_path / "s.pov")
