"""Any output the renderer writes, on a real farm: OpenEXR (32-bit float and multilayer) and
16-bit PNG from Blender, stereo views (a file per view, stereo 3D, OpenEXR multi-view), EXR and
16-bit PNG from POV-Ray .ini files, each stored under the renderer's own names with pixels
equal to the renderer's direct run, plus a PNG preview."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from .harness import ROOT, Agent, Process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

BLENDER = pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed")
POVRAY = pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")

# Run in Blender on the example scene: the output settings under test, saved into the .blend.
OUTPUT_SETTINGS = """
import bpy, sys
fmt, depth = sys.argv[sys.argv.index("--") + 1 :]
r = bpy.context.scene.render
r.image_settings.file_format = fmt
r.image_settings.color_depth = depth
if fmt.startswith("OPEN_EXR"):
    r.image_settings.exr_codec = "ZIP"
r.filepath = "//renders/shot_"
bpy.context.view_layer.use_pass_z = True
bpy.ops.wm.save_mainfile()
"""


def _blend(tmp_path: Path, fmt: str, depth: str) -> Path:
    """The example scene (workbench, 64x48) saved with the given output settings."""
    out = tmp_path / fmt.lower() / "scene.blend"
    out.parent.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "blender" / "tex.png", out.parent / "tex.png")
    make = ROOT / "examples" / "blender" / "make_scene.py"
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python", str(make), "--", str(out),
         "--resolution", "64x48"],
        **run,
    )  # fmt: skip
    subprocess.run(
        ["blender", "-b", str(out), "--python-exit-code", "1", "--python-expr", OUTPUT_SETTINGS,
         "--", fmt, depth],
        **run,
    )  # fmt: skip
    return out


def _direct_blender(blend: Path, frame: int) -> Path:
    """``blender -b scene.blend -f N`` in a copy of the scene's folder; its output file."""
    folder = blend.parent.parent / f"direct-{blend.parent.name}"
    shutil.copytree(blend.parent, folder)
    subprocess.run(
        ["blender", "-b", str(folder / blend.name), "-f", str(frame)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (written,) = (folder / "renders").iterdir()
    return written


def _exr_channels(path: Path) -> dict[str, np.ndarray]:
    with OpenEXR.File(str(path), separate_channels=True) as exr:
        return {name: np.array(ch.pixels) for name, ch in exr.channels().items()}


def _png_depth_and_pixels(path: Path) -> tuple[int, bytes]:
    """A PNG's bit depth and its decompressed image data (exact, whatever the depth)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    depth = data[24]
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return depth, zlib.decompress(idat)


def _wait_done(agent: Agent, job_id: str) -> dict[str, Any]:
    detail = agent.wait_job(job_id, timeout=300)
    assert detail["job"]["state"] == "done", json.dumps(detail, indent=1)[:4000]
    return detail


def _submit(agent: Agent, scene: Path, *args: str) -> str:
    body = json.loads(agent.cli("submit", str(scene), "--json", *args).stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


def _check_preview(job_dir: Path, main: str) -> None:
    preview = job_dir / ".previews" / f"{main}.png"
    with Image.open(preview) as img:
        img.load()
        assert img.format == "PNG" and img.mode in ("RGB", "RGBA")
        assert 0 < max(img.size) <= 256
        assert np.asarray(img).std() > 0, "the preview shows the picture, not a flat colour"


@pytest.mark.blender
@BLENDER
def test_blender_openexr_32bit_multilayer_and_16bit_png_equal_direct_renders(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    processes.append(agent.render_server("blender-0", packages="blender"))
    agent.wait_servers(1)
    scenes = {
        "exr": _blend(tmp_path, "OPEN_EXR", "32"),
        "multilayer": _blend(tmp_path, "OPEN_EXR_MULTILAYER", "32"),
        "png16": _blend(tmp_path, "PNG", "16"),
    }
    jobs = {
        kind: _submit(agent, blend, "--package", "blender", "--frames", "2-3", "--chunk", "1")
        for kind, blend in scenes.items()
    }
    # Blender's own renders, made while the farm renders the jobs.
    directs = {kind: _direct_blender(blend, 2) for kind, blend in scenes.items()}
    for kind, job_id in jobs.items():
        detail = _wait_done(agent, job_id)
        job_dir = Path(detail["job"]["storage_dir"])
        ext = "png" if kind == "png16" else "exr"
        # The .blend's own output names (//renders/shot_ + Blender's padding and extension).
        assert sorted(p.name for p in job_dir.iterdir() if p.is_file()) == [
            f"shot_0002.{ext}",
            f"shot_0003.{ext}",
        ]
        direct = directs[kind]
        assert direct.name == f"shot_0002.{ext}"
        farm = job_dir / direct.name
        if kind == "png16":
            depth, pixels = _png_depth_and_pixels(farm)
            assert depth == 16, "a 16-bit PNG stays 16-bit"
            assert (depth, pixels) == _png_depth_and_pixels(direct)
        else:
            got, want = _exr_channels(farm), _exr_channels(direct)
            assert sorted(got) == sorted(want)
            if kind == "multilayer":
                assert any(".Combined." in n for n in got) and any(".Depth." in n for n in got)
            else:
                assert {"R", "G", "B"} <= set(got)
            for name in want:
                assert got[name].dtype == np.float32, "32-bit float stays 32-bit"
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        _check_preview(job_dir, direct.name)
    # The API lists every file with its kind; spillway download --previews fetches them, verified.
    frames = agent.get(f"/api/v1/jobs/{jobs['multilayer']}/frames")["frames"]
    assert [f["name"] for f in frames] == ["shot_0002.exr", "shot_0003.exr"]
    assert [x["kind"] for x in frames[0]["files"]] == ["main", "preview"]
    assert frames[0]["preview_url"].endswith("/frames/2/preview")
    out = tmp_path / "download"
    result = agent.cli("download", jobs["multilayer"], str(out), "--previews")
    assert result.stdout.startswith("downloaded 2 frames, 4 files"), result.stdout
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        ".previews/shot_0002.exr.png",
        ".previews/shot_0003.exr.png",
        "shot_0002.exr",
        "shot_0003.exr",
    ]


# Run in Blender from its factory scene: a tiny stereo (multiview) .blend with one output setting.
STEREO_BLEND = """
import bpy, json, sys
r = bpy.context.scene.render
r.engine = "BLENDER_WORKBENCH"
r.resolution_x, r.resolution_y, r.resolution_percentage = 32, 24, 100
r.use_multiview = True
r.views_format = "STEREO_3D"
r.image_settings.stereo_3d_format.display_mode = "SIDEBYSIDE"
for out, fmt, views, name in json.loads(sys.argv[sys.argv.index("--") + 1]):
    r.image_settings.file_format = fmt
    r.image_settings.views_format = views
    r.filepath = "//renders/" + name
    bpy.ops.wm.save_as_mainfile(filepath=out)
"""

STEREO_CASES = {
    # kind: (file format, views format, the files Blender writes for frame 2)
    "png-views": ("PNG", "INDIVIDUAL", ["st_0002_L.png", "st_0002_R.png"]),
    "exr-multilayer-views": (
        "OPEN_EXR_MULTILAYER",
        "INDIVIDUAL",
        ["ml_0002_L.exr", "ml_0002_R.exr"],
    ),
    "png-side-by-side": ("PNG", "STEREO_3D", ["sbs_0002.png"]),
    "exr-multiview": ("OPEN_EXR", "MULTIVIEW", ["mv_0002.exr"]),
}


def _stereo_blends(tmp_path: Path) -> dict[str, Path]:
    """Each of :data:`STEREO_CASES` as ``<kind>/stereo.blend``, written by one Blender run."""
    blends = {kind: tmp_path / kind / "stereo.blend" for kind in STEREO_CASES}
    cases = []
    for kind, (fmt, views, names) in STEREO_CASES.items():
        blends[kind].parent.mkdir(parents=True)
        cases.append([str(blends[kind]), fmt, views, names[0].split("0002")[0]])
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1",
         "--python-expr", STEREO_BLEND, "--", json.dumps(cases)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return blends


def _same_pixels(farm: Path, direct: Path) -> None:
    if farm.suffix == ".png":
        assert _png_depth_and_pixels(farm) == _png_depth_and_pixels(direct)
        return
    got, want = _exr_channels(farm), _exr_channels(direct)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.blender
@BLENDER
def test_blender_stereo_views_equal_direct_renders_file_by_file(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    """A multiview .blend renders through the farm to the files ``blender -b f.blend -f N``
    writes (a file per view, or one stereo 3D / multi-view file), each recorded, downloadable
    and previewed."""
    agent = sqlite_agent
    processes.append(agent.render_server("blender-0", packages="blender"))
    agent.wait_servers(1)
    scenes = _stereo_blends(tmp_path)
    jobs = {
        kind: _submit(agent, blend, "--package", "blender", "--frames", "2-3", "--chunk", "2")
        for kind, blend in scenes.items()
    }
    # Blender's own renders, made while the farm renders the jobs.
    for kind, blend in scenes.items():
        folder = tmp_path / f"direct-{kind}"
        shutil.copytree(blend.parent, folder)
        subprocess.run(
            ["blender", "-b", str(folder / "stereo.blend"), "-f", "2"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    for kind, job_id in jobs.items():
        names = STEREO_CASES[kind][2]
        job_dir = Path(_wait_done(agent, job_id)["job"]["storage_dir"])
        stored = sorted(p.name for p in job_dir.iterdir() if p.is_file())
        assert stored == sorted(names + [n.replace("0002", "0003") for n in names]), kind
        folder = tmp_path / f"direct-{kind}"
        assert sorted(p.name for p in (folder / "renders").iterdir()) == names
        for name in names:
            _same_pixels(job_dir / name, folder / "renders" / name)
        if len(names) == 2:
            assert _exr_or_png(job_dir / names[0]) != _exr_or_png(job_dir / names[1]), (
                "the two views are two pictures"
            )
        _check_preview(job_dir, names[0])
        frames = agent.get(f"/api/v1/jobs/{job_id}/frames")["frames"]
        assert [f["name"] for f in frames] == [names[0], names[0].replace("0002", "0003")]
        want = {(names[0], "main"), (f".previews/{names[0]}.png", "preview")}
        assert {(x["name"], x["kind"]) for x in frames[0]["files"]} == want | {
            (n, "extra") for n in names[1:]
        }, frames[0]["files"]
    out = tmp_path / "download"
    result = agent.cli("download", jobs["png-views"], str(out), "--previews")
    assert result.stdout.startswith("downloaded 2 frames, 6 files"), result.stdout
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        ".previews/st_0002_L.png.png",
        ".previews/st_0003_L.png.png",
        "st_0002_L.png",
        "st_0002_R.png",
        "st_0003_L.png",
        "st_0003_R.png",
    ]
    for name in ("st_0002_L.png", "st_0002_R.png"):
        _same_pixels(out / name, tmp_path / "direct-png-views" / "renders" / name)


def _exr_or_png(path: Path) -> object:
    if path.suffix == ".png":
        return _png_depth_and_pixels(path)
    return {name: plane.tobytes() for name, plane in _exr_channels(path).items()}


POV_SCENE = """\
#version 3.7;
global_settings { assumed_gamma 1.0 }
camera { location <0, 0, -4> look_at <0, 0, 0> }
light_source { <2, 4, -3> color rgb 1 }
sphere { <0, 0, 0>, 1 pigment { color rgb <1, clock, 0.2> } }
plane { y, -1 pigment { checker color rgb 1 color rgb 0.1 } }
"""


def _povray_scene(tmp_path: Path, name: str, output: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "ball.pov").write_text(POV_SCENE)
    ini = folder / f"{name}.ini"
    ini.write_text(
        "Input_File_Name=ball.pov\nInitial_Frame=1\nFinal_Frame=2\n"
        f"Width=48\nHeight=36\nAntialias=Off\n{output}\n"
    )
    return ini


@pytest.mark.povray
@POVRAY
def test_povray_ini_output_types_exr_and_16bit_png_equal_direct_povray(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    processes.append(agent.render_server("pov-0", packages="povray"))
    agent.wait_servers(1)
    inis = {
        "exr": _povray_scene(tmp_path, "exr", "Output_File_Type=E"),
        "png16": _povray_scene(tmp_path, "png16", "+FN16"),
    }
    jobs = {kind: _submit(agent, ini, "--package", "povray") for kind, ini in inis.items()}
    for kind, job_id in jobs.items():
        job_dir = Path(_wait_done(agent, job_id)["job"]["storage_dir"])
        direct = inis[kind].parent / "direct"
        direct.mkdir()
        subprocess.run(
            ["povray", inis[kind].name, "-D", "-P", f"+O{direct}/"],
            cwd=inis[kind].parent,
            check=True,
            capture_output=True,
        )
        want = sorted(direct.iterdir())
        ext = "exr" if kind == "exr" else "png"
        assert [p.name for p in want] == [f"ball1.{ext}", f"ball2.{ext}"]
        assert sorted(p.name for p in job_dir.iterdir() if p.is_file()) == [p.name for p in want]
        for expected in want:
            farm = job_dir / expected.name
            if kind == "exr":
                got, ref = _exr_channels(farm), _exr_channels(expected)
                assert sorted(got) == sorted(ref)
                for name in ref:
                    np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
            else:
                depth, pixels = _png_depth_and_pixels(farm)
                assert depth == 16
                assert (depth, pixels) == _png_depth_and_pixels(expected)
            _check_preview(job_dir, expected.name)
