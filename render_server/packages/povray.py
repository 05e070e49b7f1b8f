"""Package adapter for POV-Ray 3.7 (the ``povray`` command line).

A chunk is rendered as a POV-Ray animation whose frame numbers and clock are
the job's frame numbers (``+KFI/+KFF`` and ``+KI/+KF`` set to the chunk's first
and last frame, ``+SF/+EF`` likewise), so ``clock`` and ``frame_number`` in a
scene mean the same on every server and in every chunk.  Includes and image
files are found through ``+L`` library paths: the scene folder, then the work dir;
the scene's dependencies are read by the catalog's scanner (:mod:`spillway.packages.povray`).
"""

from __future__ import annotations

import re
from pathlib import Path

from render_server.packages.base import (
    MissingDependencyError,
    RenderRequest,
    check_declared_assets,
    collect_numbered,
    missing_error,
    run_capture,
)
from spillway.packages.povray import PovrayScanner, find_dependencies

PROBE_TIMEOUT = 10.0
_VERSION = re.compile(r"POV-Ray\s+(\d+(?:\.\d+)+)")


class PovrayAdapter:
    """Renders .pov scenes with POV-Ray 3.7."""

    name = "povray"
    output_ext = "png"

    def __init__(self, executable: str = "povray") -> None:
        self.executable = executable

    async def probe(self) -> str | None:
        result = await run_capture([self.executable, "--version"], limit_s=PROBE_TIMEOUT)
        if result is None:
            return None
        match = _VERSION.search(result[1])
        return match.group(1) if match else None

    def command(self, req: RenderRequest) -> list[str]:
        first, last = req.first, req.last
        return [
            self.executable,
            f"+I{req.scene}",
            f"+O{req.outdir / req.scene.stem}_.png",
            f"+W{req.width}",
            f"+H{req.height}",
            "+FN",
            "-D",  # no preview window
            "-P",  # no pause at the end
            "+A0.3",
            # clock == frame_number == job frame.  The animation range ends one
            # past the chunk so the clock slope is 1 even for a one-frame chunk
            # (first == last would make it 0/0), and the output name always
            # carries the frame number; +SF/+EF limit rendering to the chunk.
            f"+KFI{first}",
            f"+KFF{last + 1}",
            f"+KI{first}",
            f"+KF{last + 1}",
            f"+SF{first}",
            f"+EF{last}",
            f"+L{req.scene.parent}",
            f"+L{req.workdir}",
            f"+WT{max(1, req.threads)}",
        ]

    def env(self, req: RenderRequest) -> dict[str, str]:
        # POV-Ray warns when $HOME/.povray/3.7/povray.conf is absent; the
        # warning is harmless and the system configuration still applies.
        return {}

    def preflight(self, req: RenderRequest) -> None:
        check_declared_assets(req)
        try:
            find_dependencies(req.scene, [req.scene.parent, req.workdir])
        except MissingDependencyError as exc:
            raise missing_error(exc.files, where=str(req.workdir)) from None

    def collect(self, req: RenderRequest) -> dict[int, Path]:
        # POV-Ray pads frame numbers to the width of the final frame (s_08, s_10).
        return collect_numbered(req, self.output_ext)

    async def scan(self, scene: Path) -> list[Path]:
        return await PovrayScanner().scan(scene)
