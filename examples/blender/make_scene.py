"""Build the Blender example scene (run inside Blender).

    blender -b --factory-startup --python examples/blender/make_scene.py -- OUT.blend [--engine E]
        [--resolution WxH] [--samples N] [--seed N] [--denoise] [--frames START-END[xSTEP]]

Writes OUT.blend: a textured ground plane and cube (image texture node loading
"//tex.png", i.e. tex.png next to the .blend), a camera moving over frames 1-24
and a sun light.  Cycles renders 16 samples with seed 0 and no denoising
unless told otherwise.  If tex.png does not exist next to OUT.blend a small checker
texture is generated there, so the script needs nothing but Blender.  Used by
the integration and end-to-end tests.
"""

import argparse
import sys
from pathlib import Path

import bpy


def _args():
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="make_scene.py")
    p.add_argument("out", type=Path)
    p.add_argument("--engine", default="BLENDER_WORKBENCH", help="scene default render engine")
    p.add_argument("--texture", default="tex.png", help="texture file name next to the .blend")
    p.add_argument("--resolution", default="", help="scene output size WxH (default: Blender's)")
    p.add_argument("--samples", type=int, default=16, help="Cycles render samples")
    p.add_argument("--seed", type=int, default=0, help="Cycles noise seed")
    p.add_argument("--denoise", action="store_true", help="denoise (needs OpenImageDenoise)")
    p.add_argument("--frames", default="1-24", help="frame range START-END[xSTEP]")
    return p.parse_args(argv)


def _write_texture(path: Path) -> None:
    size = 64
    img = bpy.data.images.new("generated", size, size)
    pixels = []
    for y in range(size):
        for x in range(size):
            on = ((x // 8) + (y // 8)) % 2 == 0
            pixels += [0.9, 0.3, 0.1, 1.0] if on else [0.1, 0.4, 0.9, 1.0]
    img.pixels = pixels
    img.filepath_raw = str(path)
    img.file_format = "PNG"
    img.save()
    bpy.data.images.remove(img)


def _textured_material(texture: str):
    mat = bpy.data.materials.new("Textured")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    node = nodes.new("ShaderNodeTexImage")
    node.image = bpy.data.images.load("//" + texture, check_existing=True)
    bsdf = nodes["Principled BSDF"]
    mat.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def main() -> None:
    args = _args()
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tex_path = out.parent / args.texture
    if not tex_path.exists():
        _write_texture(tex_path)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0  # no OUT.blend1 backups
    # Save first so "//" relative paths resolve against the .blend's folder.
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    scene = bpy.context.scene
    span, _, step = args.frames.partition("x")
    start, _, end = span.partition("-")
    scene.frame_start, scene.frame_end = int(start), int(end or start)
    scene.frame_step = int(step or 1)
    scene.render.engine = args.engine
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "TEXTURE"  # workbench shows the image texture
    scene.cycles.samples = args.samples
    scene.cycles.seed = args.seed
    scene.cycles.use_denoising = args.denoise
    for layer in scene.view_layers:
        layer.cycles.use_denoising = args.denoise
    if args.resolution:
        width, height = (int(v) for v in args.resolution.lower().split("x"))
        scene.render.resolution_x, scene.render.resolution_y = width, height
        scene.render.resolution_percentage = 100

    mat = _textured_material(args.texture)
    bpy.ops.mesh.primitive_plane_add(size=10, location=(0, 0, 0))
    bpy.context.object.data.materials.append(mat)
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
    bpy.context.object.data.materials.append(mat)

    bpy.ops.object.light_add(type="SUN", location=(4, -4, 8))
    bpy.context.object.data.energy = 3.0

    bpy.ops.object.camera_add(location=(7, -7, 5), rotation=(1.1, 0, 0.785))
    cam = bpy.context.object
    scene.camera = cam
    cam.keyframe_insert("location", frame=1)
    cam.location = (9, -3, 4)
    cam.rotation_euler = (1.15, 0, 1.2)
    cam.keyframe_insert("location", frame=24)
    cam.keyframe_insert("rotation_euler", frame=24)
    cam.rotation_euler = (1.1, 0, 0.785)
    cam.keyframe_insert("rotation_euler", frame=1)

    bpy.ops.wm.save_as_mainfile(filepath=str(out), relative_remap=True)
    print(f"wrote {out}")


main()
