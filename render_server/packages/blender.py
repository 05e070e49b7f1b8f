"""Package adapter for Blender (headless ``blender -b``).

The chunk is rendered by one Blender process: a ``--python-expr`` setup script
applies an explicit resolution (when the job has one; the .blend's own
resolution and percentage otherwise), the engine and the thread count, then ``-a`` (or
``-f`` for one frame) renders into ``OUTDIR/<stem>_####.png``.  Blender renders
missing textures magenta and still exits 0, so the real guard against missing
files is the scan at submit time, whose result comes back as declared_assets.
"""

from __future__ import annotations

import json
from pathlib import Path

from render_server.packages.base import (
    PackageError,
    RenderRequest,
    check_declared_assets,
    collect_numbered,
    run_capture,
)
from spillway.packages.blender import BlenderScanner

PROBE_TIMEOUT = 30.0
CYCLES_SAMPLES = 16
ENGINES = {
    "cycles": "CYCLES",
    "eevee": "BLENDER_EEVEE",  # needs OpenGL: software Mesa is enough without a display (slow)
    "workbench": "BLENDER_WORKBENCH",
}


def setup_script(req: RenderRequest) -> str:
    """Python run by Blender before rendering (values embedded as JSON literals)."""
    engine = ENGINES.get(req.engine, "")
    lines = [
        "import bpy",
        "s = bpy.context.scene",
        "r = s.render",
        "r.image_settings.file_format = 'PNG'",
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
    if req.engine == "cycles":
        lines += [f"s.cycles.samples = {CYCLES_SAMPLES}", "s.cycles.device = 'CPU'"]
    # OpenImageDenoise is not available in every build; a scene asking for it
    # would fail, so Cycles always renders without denoising on the farm.
    lines += [
        "if r.engine == 'CYCLES':",
        "    s.cycles.use_denoising = False",
        "    for layer in s.view_layers:",
        "        layer.cycles.use_denoising = False",
        "bpy.ops.file.make_paths_absolute()",
    ]
    return "\n".join(lines)


class BlenderAdapter:
    """Renders .blend scenes with Blender in background mode."""

    name = "blender"
    output_ext = "png"

    def __init__(self, executable: str = "blender") -> None:
        self.executable = executable

    async def probe(self) -> str | None:
        result = await run_capture([self.executable, "--version"], limit_s=PROBE_TIMEOUT)
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
        frames = (
            ["-f", str(req.first)]
            if len(req.frames) == 1
            else ["-s", str(req.first), "-e", str(req.last), "-a"]
        )
        return [
            self.executable,
            "-b",
            str(req.scene),
            "--python-exit-code",
            "1",
            "--python-expr",
            setup_script(req),
            "-o",
            f"{req.outdir / req.scene.stem}_####",
            "-F",
            "PNG",
            "-x",
            "1",
            "-t",
            str(max(1, req.threads)),
            *frames,
        ]

    def env(self, req: RenderRequest) -> dict[str, str]:
        return {}

    def preflight(self, req: RenderRequest) -> None:
        check_declared_assets(req)

    def collect(self, req: RenderRequest) -> dict[int, Path]:
        return collect_numbered(req, self.output_ext)

    async def scan(self, scene: Path) -> list[Path]:
        """Files the .blend references (images, libraries, sounds, caches ...)."""
        return await BlenderScanner(self.executable).scan(scene)
