"""The built-in scene format's one checker: plain Python for `spillway submit` (no numpy),
the same rules and messages for the render server and the renderer."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spillway import main as cli
from spillway.packages.builtin import texture_references
from spillway.packages.builtin_scene import parse_scene
from spillway.packages.builtin_schema import SceneError, check_scene, read_scene

SCENE: dict[str, Any] = {
    "camera": {"position": {"keys": [[1, [0, 1, 5]], [12, [3, 2, 4]]]}, "look_at": [0, 0.5, 0]},
    "lights": [{"type": "point", "position": [3, 5, 4]}],
    "objects": [
        {"type": "plane", "material": {"checker": [0.2, 0.2, 0.2], "texture": "maps/stone.png"}},
        {"type": "sphere", "center": [0, 1, 0], "material": {"texture": "wood.png"}},
        {
            "type": "mesh",
            "vertices": [[-1, 0, 1], [1, 0, 1], [0, 2, 1]],
            "faces": [[0, 1, 2]],
            "material": {"color": [1, 0, 0]},
        },
    ],
}
MESH = ("objects", 2)


def _set(*path: Any, value: Any) -> Any:
    def mutate(scene: dict[str, Any]) -> None:
        *head, last = path
        for key in head:
            scene = scene[key]
        scene[last] = value

    return mutate


def _drop(*path: Any) -> Any:
    def mutate(scene: dict[str, Any]) -> None:
        *head, last = path
        for key in head:
            scene = scene[key]
        del scene[last]

    return mutate


# Each message exactly as the numpy-based checker worded it before the checker was shared.
BAD_SCENES = [
    (
        _set("format", value="x"),
        "format: unsupported scene format 'x' (expected 'spillway-scene/1')",
    ),
    (_set("max_bounces", value=2), "max_bounces: must be 0 or 1"),
    (_set("objects", value=[]), "objects: the scene has no objects"),
    (_set("objects", value={}), "objects: expected a list"),
    (
        _set("objects", value=[{"type": "cube"}]),
        "objects[0].type: unknown object type 'cube' (expected one of: mesh, plane, sphere)",
    ),
    (_set("objects", 1, "radius", value="big"), "objects[1].radius: expected a number"),
    (_set("background", value=[1, 2]), "background: expected a list of 3 numbers"),
    (_drop("camera"), "camera: required key is missing"),
    (
        _set("camera", "zoom", value=1),
        "camera.zoom: unknown key (allowed: fov, look_at, position, up)",
    ),
    (
        _set("camera", "fov", value={"keys": [[5, 40], [1, 50]]}),
        "camera.fov.keys: frames must be strictly ascending",
    ),
    (
        _set("camera", "fov", value={"keys": []}),
        'camera.fov: keyframes must look like {"keys": [[frame, value], ...]}',
    ),
    (
        _set("lights", 0, "type", value="spot"),
        "lights[0].type: unknown light type 'spot' (expected point or directional)",
    ),
    (
        _set("objects", 1, "material", "texture", value=""),
        "objects[1].material.texture: expected a file path string",
    ),
    (
        _set("objects", 0, "material", "scale", value=0),
        "objects[0].material.scale: must be positive",
    ),
    (_set(*MESH, "vertices", value=5), "objects[2].vertices: expected a list"),
    (
        _set(*MESH, "vertices", value=[[1, 2, 3], [1, 2]]),
        "objects[2]: vertices must be [x, y, z] numbers and faces [i, j, k] integers",
    ),
    (
        _set(*MESH, "faces", value=[[0, 1, "x"]]),
        "objects[2]: vertices must be [x, y, z] numbers and faces [i, j, k] integers",
    ),
    (
        _set(*MESH, "vertices", value=[]),
        "objects[2].vertices: expected a non-empty list of [x, y, z]",
    ),
    (
        _set(*MESH, "vertices", value=[[1, 2]]),
        "objects[2].vertices: expected a non-empty list of [x, y, z]",
    ),
    (
        _set(*MESH, "vertices", value=[[[1, 2, 3]]]),
        "objects[2].vertices: expected a non-empty list of [x, y, z]",
    ),
    (
        _set(*MESH, "faces", value=[0, 1, 2]),
        "objects[2].faces: expected a non-empty list of [i, j, k]",
    ),
    (
        _set(*MESH, "faces", value=[[0, 1, 2]] * 5001),
        "objects[2].faces: 5001 faces; the built-in tracer allows 5000",
    ),
    (_set(*MESH, "faces", value=[[0, 1, 3]]), "objects[2].faces: vertex index out of range 0..2"),
    (_set(*MESH, "faces", value=[[0, -1, 2]]), "objects[2].faces: vertex index out of range 0..2"),
]


def _bad(mutate: Any) -> dict[str, Any]:
    scene = copy.deepcopy(SCENE)
    mutate(scene)
    return scene


@pytest.mark.parametrize(("mutate", "message"), BAD_SCENES)
def test_the_client_and_the_renderer_refuse_a_bad_scene_in_the_same_words(
    mutate: Any, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(_bad(mutate)))
    with pytest.raises(SceneError) as client:
        texture_references(path)  # what `spillway submit` and the render server's check run
    with pytest.raises(SceneError) as renderer:
        parse_scene(_bad(mutate))  # the renderer's numpy scene
    assert str(client.value) == str(renderer.value) == message


def test_a_valid_scene_gives_its_textures_and_the_renderer_the_same_scene(tmp_path: Path) -> None:
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(SCENE))
    assert [str(t) for t in texture_references(path)] == ["maps/stone.png", "wood.png"]
    doc, spec = read_scene(path), parse_scene(SCENE)
    assert doc.textures == spec.textures == ("maps/stone.png", "wood.png")
    mesh = spec.objects[2]
    assert mesh.vertices.tolist() == [list(v) for v in doc.objects[2].vertices]
    assert mesh.faces.dtype.kind == "i" and mesh.faces.tolist() == [[0, 1, 2]]
    # A keyframed value interpolates between its keys; a constant is one key.
    assert spec.at(6.5).camera.position.tolist() == pytest.approx([1.5, 1.5, 4.5])
    assert doc.camera.look_at.frames == (0.0,)


def test_integral_float_indices_count_and_other_odd_values_are_refused() -> None:
    scene = _bad(_set(*MESH, "faces", value=[[0, 1, 2.0]]))
    assert check_scene(scene).objects[2].faces == ((0, 1, 2),)
    # numpy used to read these as numbers (True as 1, None as nan, "1" as 1, 1.5 as 1).
    for face in ([0, 1, True], [0, 1, "1"], [0, 1, 1.5]):
        with pytest.raises(SceneError, match=r"faces \[i, j, k\] integers"):
            check_scene(_bad(_set(*MESH, "faces", value=[face])))
    with pytest.raises(SceneError, match=r"vertices must be \[x, y, z\] numbers"):
        check_scene(_bad(_set(*MESH, "vertices", value=[[0, 0, None], [1, 0, 0], [0, 1, 0]])))


def test_unreadable_and_deeply_nested_files_are_scene_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"objects": [\n  {"type": "sphere",}\n]}')
    with pytest.raises(SceneError, match=r"bad.json: invalid JSON at line 2"):
        read_scene(bad)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SceneError, match="deep.json: its JSON is nested too deeply"):
        read_scene(deep)
    with pytest.raises(SceneError, match="scene file .*missing.json' not found"):
        read_scene(tmp_path / "missing.json")


# Run in a fresh interpreter: scan a scene as `spillway submit` does (the catalog's scanner,
# the manifest with hashes), print the textures and then every module loaded.
_SCAN = """
import json, sys
from pathlib import Path
from spillway.client.submission import build_manifest, scanner_for
from spillway.client.sync_submit import run_coroutine
from spillway.client.errors import SubmissionError
scene = Path(sys.argv[1])
try:
    manifest = run_coroutine(lambda: build_manifest(scene, scanner=scanner_for("builtin")))
    print(json.dumps([e.path for e in manifest.entries]))
except SubmissionError as err:
    print(json.dumps(str(err)))
print(json.dumps(sorted(sys.modules)))
"""


def _scan_fresh(scene: Path, *, block_numpy: bool = False) -> tuple[Any, set[str]]:
    code = ("sys.modules['numpy'] = None  # as if not installed\n" if block_numpy else "") + _SCAN
    out = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code, str(scene)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result, modules = out.stdout.splitlines()[-2:]
    return json.loads(result), set(json.loads(modules))


def test_the_client_checks_a_scene_without_importing_numpy(tmp_path: Path) -> None:
    pytest.importorskip("numpy")  # installed here, and still not imported
    (tmp_path / "maps").mkdir()
    for name in ("maps/stone.png", "wood.png"):
        (tmp_path / name).write_bytes(b"png")
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps(SCENE))
    files, modules = _scan_fresh(scene)
    assert files == ["scene.json", "maps/stone.png", "wood.png"]
    assert "spillway.packages.builtin_schema" in modules
    assert [m for m in modules if m.split(".")[0] in ("numpy", "PIL")] == []
    assert "spillway.packages.builtin_scene" not in modules
    # A bad scene is refused in full (not only its texture names), numpy or not.
    scene.write_text(json.dumps(_bad(_drop("camera"))))
    for block in (False, True):
        message, modules = _scan_fresh(scene, block_numpy=block)
        assert message == "cannot submit scene.json: camera: required key is missing"
        assert "numpy" not in modules or block


def test_spillway_submit_refuses_a_bad_scene_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps(_bad(_set("objects", 1, "radius", value="big"))))
    argv = ["submit", str(scene), "--package", "builtin", "--frames", "1"]
    argv += ["--agent", "http://127.0.0.1:9"]
    assert cli.main(argv) != 0  # nothing listens on port 9: it never got that far
    err = capsys.readouterr().err
    assert "cannot submit scene.json: objects[1].radius: expected a number" in err
    assert "Traceback" not in err
