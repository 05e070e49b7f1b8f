"""Package adapter for the built-in tracer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from render_server.packages.base import (
    Capture,
    RenderRequest,
    check_declared_assets,
    collect_numbered,
    missing_error,
    relative_reference,
    run_capture,
)
from render_server.packages.builtin import VERSION
from spillway.packages.builtin import BuiltinScanner
from spillway.packages.builtin_schema import read_scene

# The directory holding the render_server package, so the child finds it even
# when the project is not installed into the interpreter.
_PROJECT_ROOT = Path(__file__).resolve().parents[3]
# A built-in scene has no resolution of its own: this is the farm's default.
DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 240


class BuiltinAdapter:
    """Renders Spillway JSON scenes with ``python -m render_server.packages.builtin``."""

    name = "builtin"
    output_ext = "png"

    async def probe(self, capture: Capture = run_capture) -> str | None:
        return VERSION  # the tracer ships with the render server: nothing to run

    def command(self, req: RenderRequest) -> list[str]:
        return [
            sys.executable,
            "-m",
            "render_server.packages.builtin",
            str(req.scene),
            "--frames",
            ",".join(str(f) for f in req.frames),
            "--width",
            str(req.width or DEFAULT_WIDTH),
            "--height",
            str(req.height or DEFAULT_HEIGHT),
            "--out",
            str(req.outdir),
            "--name",
            req.scene.stem,
        ]

    def env(self, req: RenderRequest) -> dict[str, str]:
        paths = [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]
        return {
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            # numpy's BLAS pools are useless here and would oversubscribe the slot.
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }

    def preflight(self, req: RenderRequest) -> None:
        check_declared_assets(req)
        scene_dir = req.scene.parent
        missing = [
            name
            for name in read_scene(req.scene).textures
            if not (scene_dir / relative_reference(name, scene_dir, kind="texture")).is_file()
        ]
        if missing:
            raise missing_error(missing, where=str(scene_dir))

    def collect(self, req: RenderRequest) -> dict[int, list[Path]]:
        return collect_numbered(req, self.output_ext)

    async def scan(self, scene: Path) -> list[Path]:
        return await BuiltinScanner().scan(scene)
