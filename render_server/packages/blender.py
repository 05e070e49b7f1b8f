"""Package adapter for Blender (headless ``blender -b``).

The chunk is rendered by one Blender process: a ``--python-expr`` setup script
sets the thread count and applies only the overrides the job asks for
(resolution, engine, samples, no denoising); everything else (resolution and
percentage, engine, samples, seed, denoising, color management) stays as the
.blend says, so a render with no overrides is what ``blender -b file.blend -f N``
gives.  A second script (:func:`output_script`) keeps the .blend's output settings
(file format, colour depth, EXR codec, multilayer, views, file extension; a movie
format is refused) and its output file name, moving only the folder into the task's
output folder; then ``-f`` renders exactly the chunk's frames as a list (``-f 1,5,10``,
consecutive runs as ``1..4``; Blender 2.80 and later), each as ``blender -b
file.blend -f N`` would: never the frames in between, and never with the
.blend's own frame range or ``frame_step`` (which ``-s/-e -a`` would apply).
A render-write handler lists every file Blender writes, so the farm collects exactly Blender's names
(padding, view suffixes).
Blender renders missing textures magenta and still exits 0, so the real guard
against missing files is the scan at submit time, whose result comes back as
declared_assets.  Denoising needs OpenImageDenoise, which not every build has
(Debian's lacks it): :meth:`BlenderAdapter.probe_features` reports it, and jobs
whose scene denoises only match servers reporting ``blender:oidn``.
"""

from __future__ import annotations

import json
from pathlib import Path

from render_server.packages.base import (
    Capture,
    PackageError,
    RenderRequest,
    check_declared_assets,
    run_capture,
)
from spillway.packages.blender import ENGINES as BLENDER_ENGINES
from spillway.packages.blender import BlenderScanner
from spillway.packages.blender_script import MOVIE_CHECK
from spillway.packages.features import BLENDER_OIDN

PROBE_TIMEOUT = 30.0
WRITTEN_LIST = "_spillway_written.jsonl"
"""In the task work dir: one JSON line per file Blender wrote ({"frame", "path"})."""
# Eevee needs OpenGL: software Mesa is enough without a display (slow).
ENGINES = BLENDER_ENGINES
_OIDN_MARKER = "SPILLWAY_OIDN="
_OIDN_SCRIPT = (
    "import _cycles; "
    f"print({_OIDN_MARKER!r} + str(bool(getattr(_cycles, 'with_openimagedenoise', False))))"
)


def setup_script(req: RenderRequest) -> str:
    """Python run by Blender before rendering (values embedded as JSON literals)."""
    engine = ENGINES.get(req.engine, "")
    lines = [
        "import bpy",
        "s = bpy.context.scene",
        "r = s.render",
        "r.threads_mode = 'FIXED'",
        f"r.threads = {max(1, int(req.threads))}",
        "r.use_overwrite = True",
        "r.use_placeholder = False",
    ]
    if req.width is not None and req.height is not None:
        # An explicit resolution replaces the scene's size and percentage;
        # without one the .blend's own resolution and percentage stand.
        lines += [
            f"r.resolution_x = {int(req.width)}",
            f"r.resolution_y = {int(req.height)}",
            "r.resolution_percentage = 100",
        ]
    if engine:
        lines.append(f"r.engine = {json.dumps(engine)}")
    if req.samples is not None:
        lines += _samples_lines(int(req.samples))
    if req.denoise is False:
        lines += _no_denoise_lines()
    lines.append("bpy.ops.file.make_paths_absolute()")
    return "\n".join(lines)


def _samples_lines(samples: int) -> list[str]:
    """Set the render samples of the engine in effect; an engine without samples fails
    the render with a message rather than ignoring the override."""
    return [
        "if r.engine == 'CYCLES':",
        f"    s.cycles.samples = {samples}",
        "elif r.engine.startswith('BLENDER_EEVEE'):",
        f"    s.eevee.taa_render_samples = {samples}",
        "else:",
        "    raise SystemExit('--samples applies to Cycles and Eevee, not ' + r.engine)",
    ]


def _no_denoise_lines() -> list[str]:
    """Turn off every denoiser the scene uses: Cycles' (scene and view layers) and the
    compositor's Denoise nodes."""
    return [
        "s.cycles.use_denoising = False",
        "for layer in s.view_layers:",
        "    layer.cycles.use_denoising = False",
        "if s.node_tree is not None:",
        "    for node in s.node_tree.nodes:",
        "        if node.type == 'DENOISE':",
        "            node.mute = True",
    ]


def output_script(req: RenderRequest) -> str:
    """Python run after :func:`setup_script`: the .blend's own output settings, in the task's folder.

    A movie format fails the render with the reason and the fix (:data:`MOVIE_CHECK`, the
    rule submitting applies), for a job that was submitted without reading the .blend.
    The output file name is the .blend's (``//renders/shot_`` writes ``shot_0001.exr``;
    a bare folder writes ``0001.exr``).
    """
    outdir = json.dumps(str(req.outdir))
    written = json.dumps(str(req.workdir / WRITTEN_LIST))
    return "\n".join(
        [
            "import bpy, json, os",
            MOVIE_CHECK,
            "_refusal = spillway_movie_refusal(bpy.context.scene)",
            "if _refusal:",
            "    raise SystemExit('Error: ' + _refusal)",
            "r = bpy.context.scene.render",
            f"r.filepath = os.path.join({outdir}, os.path.basename(r.filepath.replace('\\\\', '/')))",
            "def _spillway_written(scene, *_):",
            "    r, f = scene.render, scene.frame_current",
            # Individual views are one file per view (multilayer EXR too, ``shot_0001_L.exr``);
            # stereo 3D and OpenEXR multi-view put every view in one file without a suffix.
            "    views = [''] if not r.use_multiview or r.image_settings.views_format != 'INDIVIDUAL' "
            "else [v.name for v in r.views if v.use]",
            f"    with open({written}, 'a') as fh:",
            "        for v in views:",
            "            fh.write(json.dumps({'frame': f, 'path': r.frame_path(frame=f, view=v)}) + '\\n')",
            "bpy.app.handlers.render_write.append(_spillway_written)",
        ]
    )


def collect_written(req: RenderRequest) -> dict[int, list[Path]]:
    """The files Blender listed as written, per frame (in the order written), that exist."""
    found: dict[int, list[Path]] = {}
    listing = req.workdir / WRITTEN_LIST
    lines = listing.read_text().splitlines() if listing.is_file() else []
    for line in lines:
        entry = json.loads(line)
        path = Path(entry["path"])
        frame = int(entry["frame"])
        if path.parent == req.outdir and path.is_file() and path not in found.get(frame, []):
            found.setdefault(frame, []).append(path)
    missing = [f for f in req.frames if f not in found]
    if missing:
        raise PackageError(
            f"Blender wrote no output for frame(s) {', '.join(map(str, missing))} "
            f"in {req.outdir}; see the render log"
        )
    return {f: found[f] for f in req.frames}


def frame_list(frames: tuple[int, ...]) -> str:
    """Blender's ``-f`` argument for exactly these frames: ``1..4,7,10`` for (1, 2, 3, 4, 7, 10)."""
    parts: list[str] = []
    start = prev = frames[0]
    for frame in (*frames[1:], None):
        if frame is not None and frame == prev + 1:
            prev = frame
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        if frame is not None:
            start = prev = frame
    return ",".join(parts)


class BlenderAdapter:
    """Renders .blend scenes with Blender in background mode."""

    name = "blender"
    output_ext = "png"

    def __init__(self, executable: str = "blender") -> None:
        self.executable = executable

    async def probe_features(self, capture: Capture = run_capture) -> list[str]:
        """Feature tags of this Blender: ``blender:oidn`` when it has OpenImageDenoise.
        Never raises; bounded in time; [] when Blender cannot tell."""
        argv = [self.executable, "-b", "--factory-startup", "--python-expr", _OIDN_SCRIPT]
        result = await capture(argv, limit_s=PROBE_TIMEOUT)
        if result is None or result[0] != 0:
            return []
        return [BLENDER_OIDN] if f"{_OIDN_MARKER}True" in result[1].split() else []

    async def probe(self, capture: Capture = run_capture) -> str | None:
        result = await capture([self.executable, "--version"], limit_s=PROBE_TIMEOUT)
        if result is None or result[0] != 0:
            return None
        for line in result[1].splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "Blender" and words[1][:1].isdigit():
                return words[1]
        return None

    def command(self, req: RenderRequest) -> list[str]:
        if req.engine and req.engine not in ENGINES:
            raise PackageError(
                f"unknown blender engine {req.engine!r}; use one of: {', '.join(ENGINES)}"
            )
        frames = ["-f", frame_list(req.frames)]
        return [
            self.executable,
            "-b",
            str(req.scene),
            "--python-exit-code",
            "1",
            "--python-expr",
            setup_script(req),
            "--python-expr",
            output_script(req),
            "-t",
            str(max(1, req.threads)),
            *frames,
        ]

    def env(self, req: RenderRequest) -> dict[str, str]:
        return {}

    def preflight(self, req: RenderRequest) -> None:
        check_declared_assets(req)

    def collect(self, req: RenderRequest) -> dict[int, list[Path]]:
        return collect_written(req)

    async def scan(self, scene: Path) -> list[Path]:
        """Files the .blend references (images, libraries, sounds, caches ...)."""
        return await BlenderScanner(self.executable).scan(scene)
