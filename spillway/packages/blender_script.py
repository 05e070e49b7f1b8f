"""The Python a headless Blender runs to report what a .blend references and how it renders.

Kept as text: it runs inside Blender (``bpy``), never in this interpreter.  It
prints one line, ``MARKER + json``, with:

- ``files``: every external file the scene (and each linked library, recursively,
  since Blender loads indirect libraries too) references, as ``{kind, owner,
  raw, abs, ...}``; ``raw`` is the path as stored (``//`` = relative to the .blend
  holding it), ``abs`` the path Blender resolves it to.  Kinds: ``file``,
  ``sequence`` (numbered files), ``tiles`` (UDIM, with ``tiles`` numbers),
  ``dir`` (a cache folder; ``baked`` says whether Blender expects files in it).
- ``scene``: engine, frame range and step, samples, seed and denoising use, and
  ``movie_refusal``: why the farm cannot render the scene's movie output ("" for
  image output; :data:`MOVIE_CHECK`).
- ``extra``: paths ``bpy.utils.blend_paths`` knows that the walk above does not
  cover, so a data type added to Blender later is still uploaded or reported.
"""

from __future__ import annotations

__all__ = ["INSPECT_MARKER", "INSPECT_SCRIPT", "MOVIE_CHECK"]

INSPECT_MARKER = "SPILLWAY_BLEND_SCENE="

MOVIE_CHECK = r"""
def spillway_movie_refusal(scene):
    # A movie output (FFmpeg, AVI) is one file for every frame: frames rendered on several
    # servers cannot make it. "" for image output, else what to do instead.
    r = scene.render
    if not r.is_movie_format:
        return ""
    fmt = r.image_settings.file_format
    what = f"FFmpeg {r.ffmpeg.format}, {r.ffmpeg.codec}" if fmt == "FFMPEG" else fmt
    stem = bpy.path.basename(r.filepath.replace("\\", "/")).split("#")[0]
    fps = f"{r.fps / r.fps_base:g}"
    return (
        f"the scene writes a movie file ({what}); frames rendered on several servers cannot "
        "make one: set the File Format to an image format (PNG, OpenEXR) and encode the frames "
        f"afterwards, e.g. ffmpeg -framerate {fps} -i {stem}%04d.png -c:v libx264 "
        f"-pix_fmt yuv420p {stem.rstrip('_-. ') or 'movie'}.mp4"
    )
"""
"""Blender-side Python defining ``spillway_movie_refusal(scene)``: the one home of the farm's
movie rule, run by the submit-time inspection and by the render server before it renders."""

INSPECT_SCRIPT = r"""
import json
import os
import bpy
@MOVIE_CHECK@

MARKER = "@MARKER@"
files = []


def add(kind, owner, raw, lib, **extra):
    if not raw or raw.startswith("<"):
        return  # "" = unset; "<builtin>" = Blender's own font
    absolute = os.path.normpath(bpy.path.abspath(raw, library=lib))
    files.append(dict(kind=kind, owner=owner, raw=raw, abs=absolute, **extra))


def packed(block):
    return getattr(block, "packed_file", None) is not None or bool(
        getattr(block, "packed_files", None)
    )


for img in bpy.data.images:
    if packed(img) or img.source not in {"FILE", "SEQUENCE", "MOVIE", "TILED"}:
        continue
    owner = f"image '{img.name}'"
    if img.source == "TILED":
        add("tiles", owner, img.filepath, img.library, tiles=[t.number for t in img.tiles])
    else:
        add("sequence" if img.source == "SEQUENCE" else "file", owner, img.filepath, img.library)
for lib in bpy.data.libraries:
    # Blender rebases an indirect library's path onto the main file when it loads it.
    if not packed(lib):
        add("file", f"library '{lib.name}'", lib.filepath, None)
for sound in bpy.data.sounds:
    if not packed(sound):
        add("file", f"sound '{sound.name}'", sound.filepath, sound.library)
for font in bpy.data.fonts:
    if not packed(font):
        add("file", f"font '{font.name}'", font.filepath, font.library)
for cache in bpy.data.cache_files:
    kind = "sequence" if cache.is_sequence else "file"
    add(kind, f"cache file '{cache.name}'", cache.filepath, cache.library)
for volume in bpy.data.volumes:
    if not packed(volume):
        kind = "sequence" if volume.is_sequence else "file"
        add(kind, f"volume '{volume.name}'", volume.filepath, volume.library)
for clip in bpy.data.movieclips:
    kind = "sequence" if clip.source == "SEQUENCE" else "file"
    add(kind, f"movie clip '{clip.name}'", clip.filepath, clip.library)


def point_cache(owner, cache, lib, blend_file):
    if not cache.use_disk_cache:
        return
    if cache.use_external and cache.filepath:
        add("dir", owner, cache.filepath, lib, baked=cache.is_baked)
    else:
        stem = os.path.splitext(os.path.basename(blend_file))[0]
        add("dir", owner, "//blendcache_" + stem, lib, baked=cache.is_baked)


for ob in bpy.data.objects:
    lib = ob.library
    blend = (lib.filepath if lib else bpy.data.filepath) or "untitled.blend"
    for mod in ob.modifiers:
        owner = f"modifier '{mod.name}' of object '{ob.name}'"
        if mod.type == "FLUID" and mod.fluid_type == "DOMAIN":
            ds = mod.domain_settings
            add("dir", owner, ds.cache_directory, lib, baked=ds.cache_type != "REPLAY")
        elif mod.type == "MESH_CACHE":
            add("file", owner, mod.filepath, lib)
        elif mod.type == "OCEAN" and mod.is_cached:
            add("dir", owner, mod.filepath, lib, baked=True)
        elif getattr(mod, "point_cache", None) is not None:
            point_cache(owner, mod.point_cache, lib, blend)
    for psys in ob.particle_systems:
        point_cache(f"particles '{psys.name}' of '{ob.name}'", psys.point_cache, lib, blend)

for scene in bpy.data.scenes:
    editor = scene.sequence_editor
    for strip in editor.sequences_all if editor else ():
        owner = f"strip '{strip.name}' of scene '{scene.name}'"
        if strip.type == "IMAGE":
            for element in strip.elements:
                add("file", owner, os.path.join(strip.directory, element.filename), scene.library)
        elif strip.type == "MOVIE":
            add("file", owner, strip.filepath, scene.library)

known = {f["abs"] for f in files}
# A text block keeps its contents in the .blend; the file it was loaded from is not needed.
known |= {
    os.path.normpath(bpy.path.abspath(t.filepath, library=t.library))
    for t in bpy.data.texts
    if t.filepath
}
extra = []
raw_paths = bpy.utils.blend_paths(absolute=False, packed=False, local=False)
abs_paths = bpy.utils.blend_paths(absolute=True, packed=False, local=False)
if len(raw_paths) == len(abs_paths):
    for raw, absolute in zip(raw_paths, abs_paths):
        absolute = os.path.normpath(absolute)
        if absolute not in known and "<" not in raw and not os.path.isdir(absolute):
            extra.append(dict(kind="file", owner="referenced file", raw=raw, abs=absolute))

s = bpy.context.scene
r = s.render
layers = [layer for layer in s.view_layers if layer.use]
compositor = s.node_tree if (s.use_nodes and r.use_compositing) else None
info = dict(
    engine=r.engine,
    frame_start=s.frame_start,
    frame_end=s.frame_end,
    frame_step=s.frame_step,
    resolution=[r.resolution_x, r.resolution_y, r.resolution_percentage],
    samples=(
        s.cycles.samples if r.engine == "CYCLES"
        else s.eevee.taa_render_samples if r.engine.startswith("BLENDER_EEVEE") else None
    ),
    seed=s.cycles.seed,
    cycles_denoise=bool(s.cycles.use_denoising and any(l.cycles.use_denoising for l in layers)),
    compositor_denoise=bool(
        compositor is not None
        and any(n.type == "DENOISE" and not n.mute for n in compositor.nodes)
    ),
    movie_refusal=spillway_movie_refusal(s),
)
print(MARKER + json.dumps(dict(files=files + extra, scene=info)))
""".replace("@MARKER@", INSPECT_MARKER).replace("@MOVIE_CHECK@", MOVIE_CHECK)
