"""Built-in tracer: scene validation, rendering, textures and its adapter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from render_server.packages.base import MissingDependencyError, RenderRequest, ScanError
from render_server.packages.builtin.adapter import BuiltinAdapter
from render_server.packages.builtin.tracer import TextureMissingError, load_textures, render
from spillway.packages.builtin_scene import SceneError, load_scene, parse_scene

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "textured"


def _scene(**material) -> dict:
    return {
        "background": [0.1, 0.1, 0.2],
        "camera": {
            "position": {"keys": [[1, [0, 1, 5]], [12, [3, 2, 4]]]},
            "look_at": [0, 0.5, 0],
        },
        "lights": [{"type": "point", "position": [3, 5, 4]}],
        "objects": [
            {"type": "plane", "material": {"checker": [0.2, 0.2, 0.2]}},
            {"type": "sphere", "center": [0, 1, 0], "material": material},
        ],
    }


def _texture(path: Path) -> None:
    pixels = np.zeros((16, 32, 3), dtype=np.uint8)
    pixels[:, ::4] = [255, 0, 0]
    pixels[::4, :] = [0, 255, 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _render(data: dict, frame: int, scene_dir: Path, size=(64, 48)) -> np.ndarray:
    spec = parse_scene(data)
    return render(spec.at(frame), load_textures(spec.textures, scene_dir), *size)


def test_frames_of_an_animation_differ(tmp_path: Path) -> None:
    first = _render(_scene(), 1, tmp_path)
    twelfth = _render(_scene(), 12, tmp_path)
    assert first.shape == (48, 64, 3)
    assert np.abs(first.astype(int) - twelfth.astype(int)).sum() > 1000


def test_texture_changes_pixels(tmp_path: Path) -> None:
    _texture(tmp_path / "tex" / "grid.png")
    plain = _render(_scene(color=[1, 1, 1]), 1, tmp_path)
    textured = _render(_scene(color=[1, 1, 1], texture="tex/grid.png"), 1, tmp_path)
    assert np.abs(plain.astype(int) - textured.astype(int)).sum() > 1000


def test_missing_texture_names_the_file(tmp_path: Path) -> None:
    spec = parse_scene(_scene(texture="tex/nope.png"))
    with pytest.raises(TextureMissingError, match="tex/nope.png"):
        load_textures(spec.textures, tmp_path)


def test_mesh_and_reflection_render(tmp_path: Path) -> None:
    data = _scene(reflect=0.5)
    data["objects"].append(
        {
            "type": "mesh",
            "vertices": [[-1, 0, 1], [1, 0, 1], [0, 2, 1]],
            "faces": [[0, 1, 2]],
            "material": {"color": [1, 0, 0]},
        }
    )
    img = _render(data, 1, tmp_path)
    assert (img[..., 0].astype(int) - img[..., 1]).max() > 100  # the red triangle is visible


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["objects"].append({"type": "cube"}),
            r"objects\[2\]\.type: unknown object type 'cube'",
        ),
        (
            lambda d: d["objects"][1].update(radius="big"),
            r"objects\[1\]\.radius: expected a number",
        ),
        (lambda d: d["camera"].pop("look_at"), r"camera\.look_at: required key is missing"),
        (lambda d: d["lights"][0].update(colour=[1, 1, 1]), r"lights\[0\]\.colour: unknown key"),
        (
            lambda d: d["objects"][1]["material"].update(color=[1, 1]),
            r"objects\[1\]\.material\.color: expected a list of 3",
        ),
        (
            lambda d: d["camera"].update(fov={"keys": [[5, 40], [1, 50]]}),
            r"camera\.fov\.keys: frames must be strictly ascending",
        ),
    ],
)
def test_validation_errors_name_the_key(mutate, message: str) -> None:
    data = _scene()
    mutate(data)
    with pytest.raises(SceneError, match=message):
        parse_scene(data)


def test_bad_json_says_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"objects": [\n  {"type": "sphere",}\n]}')
    with pytest.raises(SceneError, match=r"bad.json: invalid JSON at line 2"):
        load_scene(path)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "render_server.packages.builtin", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_writes_frames_of_requested_size(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _cli(
        str(EXAMPLE / "scene.json"),
        "--frames",
        "1,12",
        "--width",
        "80",
        "--height",
        "60",
        "--out",
        str(out),
        "--name",
        "shot",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("frame 1 done in ")
    one, twelve = (_pixels(out / f"shot_{f:04d}.png") for f in (1, 12))
    assert one.shape == twelve.shape == (60, 80, 3)
    assert one.tobytes() != twelve.tobytes()
    assert sorted(p.name for p in out.iterdir()) == ["shot_0001.png", "shot_0012.png"]


def test_cli_missing_texture_fails_with_one_line(tmp_path: Path) -> None:
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps(_scene(texture="textures/gone.png")))
    proc = _cli(str(scene), "--frames", "1", "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "textures/gone.png" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_cli_invalid_scene_fails_without_traceback(tmp_path: Path) -> None:
    scene = tmp_path / "scene.json"
    data = _scene()
    data["objects"][0]["type"] = "torus"
    scene.write_text(json.dumps(data))
    proc = _cli(str(scene), "--frames", "1", "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        "error: objects[0].type: unknown object type 'torus' (expected one of: mesh, plane, sphere)"
    )


def _copy_example(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work)
    return work


async def test_adapter_scan_lists_textures() -> None:
    found = await BuiltinAdapter().scan(EXAMPLE / "scene.json")
    assert found == [Path("textures/planet.png"), Path("textures/tiles.png")]


async def test_adapter_scan_rejects_paths_outside_the_folder(tmp_path: Path) -> None:
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps(_scene(texture="/tmp/x.png")))
    with pytest.raises(ScanError, match="texture '/tmp/x.png' is outside the scene folder"):
        await BuiltinAdapter().scan(scene)
    scene.write_text(json.dumps(_scene(texture="../x.png")))
    with pytest.raises(ScanError, match="outside the scene folder"):
        await BuiltinAdapter().scan(scene)


async def test_adapter_scan_reports_missing(tmp_path: Path) -> None:
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps(_scene(texture="t/missing.png")))
    with pytest.raises(MissingDependencyError, match="t/missing.png"):
        await BuiltinAdapter().scan(scene)


async def test_adapter_probe_needs_no_process() -> None:
    assert await BuiltinAdapter().probe() == "1.0.0"


def test_adapter_renders_a_chunk(tmp_path: Path) -> None:
    work = _copy_example(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    adapter = BuiltinAdapter()
    req = RenderRequest(
        scene=work / "scene.json",
        workdir=work,
        outdir=out,
        frames=(3, 4),
        width=40,
        height=30,
        declared_assets=("textures/planet.png", "textures/tiles.png"),
    )
    adapter.preflight(req)
    proc = subprocess.run(adapter.command(req), env={**_base_env(), **adapter.env(req)}, timeout=60)
    assert proc.returncode == 0
    frames = adapter.collect(req)
    assert sorted(frames) == [3, 4]
    assert _pixels(frames[3][0]).shape == (30, 40, 3)


def test_adapter_renders_exactly_an_irregular_chunk(tmp_path: Path) -> None:
    """Frames 1, 5, 10 only (none in between), each as the tracer renders that frame alone."""
    work = _copy_example(tmp_path)
    adapter = BuiltinAdapter()

    def render(frames: tuple[int, ...], out: Path) -> dict[int, list[Path]]:
        out.mkdir()
        req = RenderRequest(
            scene=work / "scene.json", workdir=work, outdir=out, frames=frames, width=24, height=18
        )
        proc = subprocess.run(
            adapter.command(req),
            env={**_base_env(), **adapter.env(req)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count(" done in ") == len(frames)
        return adapter.collect(req)

    chunk = render((1, 5, 10), tmp_path / "chunk")
    assert sorted(p.name for p in (tmp_path / "chunk").iterdir()) == [
        "scene_0001.png",
        "scene_0005.png",
        "scene_0010.png",
    ]
    for f in (1, 5, 10):
        alone = render((f,), tmp_path / f"alone{f}")
        assert np.array_equal(_pixels(chunk[f][0]), _pixels(alone[f][0]))


def test_adapter_preflight_missing_texture(tmp_path: Path) -> None:
    work = _copy_example(tmp_path)
    (work / "textures" / "planet.png").unlink()
    req = RenderRequest(scene=work / "scene.json", workdir=work, outdir=tmp_path, frames=(1,))
    with pytest.raises(MissingDependencyError, match="textures/planet.png"):
        BuiltinAdapter().preflight(req)


def _base_env() -> dict[str, str]:
    return dict(os.environ)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))
