"""Build .blend files for the tests with Blender itself (no binary fixtures in the repository).

``make_blend(out, ...)`` writes the example scene (examples/blender/make_scene.py)
with the given settings.  ``make_deps_scene(folder)`` writes ``main.blend`` referencing one file of every
kind the scanner resolves, and the files themselves:

    main.blend                 links LibCube from lib/lib.blend; a point cache on disk
    tex.png                    an image
    seq/frame_0001..0003.png   an image sequence
    udim/wood.1001.png, .1002  a UDIM image with two tiles
    snd/beep.wav               a sound
    fonts/font.ttf             a font (copied from the system's fonts)
    blendcache_main/a.bphys    the point cache's file
    lib/lib.blend              LibCube, whose material uses lib/libtex.png and links
                               DeepMat from lib/deep/deeper.blend (a library of a library)
    lib/deep/deeptex.png       the image DeepMat uses
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

from PIL import Image

MAKE_SCENE = Path(__file__).resolve().parents[2] / "examples" / "blender" / "make_scene.py"
FONTS = sorted(Path("/usr/share/fonts").rglob("*.ttf"))

DEPS_SCRIPT = r"""
import sys
import bpy

folder = sys.argv[sys.argv.index("--") + 1]


def reset(path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    bpy.ops.wm.save_as_mainfile(filepath=path)


def material(name, image):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    mat.use_fake_user = True
    return mat


def save(path):
    bpy.ops.wm.save_as_mainfile(filepath=path, relative_remap=True)


reset(folder + "/lib/deep/deeper.blend")
material("DeepMat", bpy.data.images.load("//deeptex.png"))
save(folder + "/lib/deep/deeper.blend")

reset(folder + "/lib/lib.blend")
with bpy.data.libraries.load("//deep/deeper.blend", link=True, relative=True) as (src, dst):
    dst.materials = ["DeepMat"]
mesh = bpy.data.meshes.new("LibMesh")
mesh.materials.append(bpy.data.materials["DeepMat"])
mesh.materials.append(material("LibMat", bpy.data.images.load("//libtex.png")))
cube = bpy.data.objects.new("LibCube", mesh)
bpy.context.scene.collection.objects.link(cube)
save(folder + "/lib/lib.blend")

reset(folder + "/main.blend")
with bpy.data.libraries.load("//lib/lib.blend", link=True, relative=True) as (src, dst):
    dst.objects = ["LibCube"]
for ob in dst.objects:
    bpy.context.scene.collection.objects.link(ob)
bpy.data.images.load("//tex.png").use_fake_user = True
seq = bpy.data.images.load("//seq/frame_0001.png")
seq.source = "SEQUENCE"
seq.use_fake_user = True
udim = bpy.data.images.load("//udim/wood.1001.png")
udim.source = "TILED"
udim.tiles.new(1002)
udim.use_fake_user = True
bpy.data.sounds.load("//snd/beep.wav").use_fake_user = True
bpy.data.fonts.load("//fonts/font.ttf").use_fake_user = True
mesh = bpy.data.meshes.new("Emitter")
emitter = bpy.data.objects.new("Emitter", mesh)
bpy.context.scene.collection.objects.link(emitter)
emitter.modifiers.new("Particles", "PARTICLE_SYSTEM")
emitter.particle_systems[0].point_cache.use_disk_cache = True
save(folder + "/main.blend")
print("SCENE-OK", bpy.data.images["wood.1001.png"].filepath)
"""


def _png(path: Path, color: tuple[int, int, int] = (200, 80, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 800)


def make_deps_scene(folder: Path) -> Path:
    """Write main.blend and every file it needs under ``folder``; return main.blend."""
    for name in ("tex.png", "lib/libtex.png", "lib/deep/deeptex.png", "udim/wood.1001.png"):
        _png(folder / name)
    _png(folder / "udim" / "wood.1002.png", (10, 200, 10))
    for frame in (1, 2, 3):
        _png(folder / "seq" / f"frame_{frame:04d}.png", (frame * 60, 0, 0))
    _wav(folder / "snd" / "beep.wav")
    (folder / "fonts").mkdir()
    shutil.copy(FONTS[0], folder / "fonts" / "font.ttf")
    (folder / "blendcache_main").mkdir()
    (folder / "blendcache_main" / "a.bphys").write_bytes(b"cache")
    proc = subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1"]
        + ["--python-expr", DEPS_SCRIPT, "--", str(folder)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0 and "SCENE-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr
    return folder / "main.blend"


def make_blend(
    out: Path, *extra: str, engine: str = "BLENDER_WORKBENCH", resolution: str = ""
) -> Path:
    """Generate the example scene (and tex.png next to it) with Blender's Python;
    ``extra`` are more make_scene.py options (--samples, --seed, --denoise, --frames)."""
    proc = subprocess.run(
        [
            "blender",
            "-b",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python",
            str(MAKE_SCENE),
            "--",
            str(out),
            "--engine",
            engine,
            *(["--resolution", resolution] if resolution else []),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out
