"""Package adapter for POV-Ray 3.7 (the ``povray`` command line).

A chunk renders exactly what ``povray scene.pov +KFI<first> +KFF<last>`` (or
``povray scene.ini``) renders for those frames: the animation range is the
job's (``+KFI/+KFF`` of its first and last frame, placed before an INI file so
the INI's own ``Initial_Frame``/``Final_Frame`` win), and the chunk is chosen
with ``+SF/+EF/+STP`` (the step counts from ``+SF``), so POV-Ray renders
exactly the chunk's frames and none in between.  POV-Ray takes only evenly
stepped ranges, so an irregular chunk (1, 5, 10) runs POV-Ray once per evenly
stepped run ((1, 5), then (10,)), one after another in the one task, each with
the same job range and output folder.  Clock, antialiasing,
``Cyclic_Animation``, resolution, the output file type and depth
(``Output_File_Type``/``+F``: PNG 8 or 16 bit, TGA, EXR, HDR, PPM, BMP, JPEG) and every
other option come from the INI file or POV-Ray's defaults (the host's
``povray.ini``); only an explicit resolution overrides (``+W/+H``).  Output files
keep POV-Ray's own names, frame numbers and extensions (``clockd05.png``,
``clockd05.exr``), written into the task's output folder.
The scene's dependencies are read by the catalog's scanner
(:mod:`spillway.packages.povray`); POV-Ray runs in the task work dir, so the
relative names and library paths of the artist's folder resolve the same.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path, PurePosixPath

from render_server.packages.base import (
    Capture,
    MissingDependencyError,
    PackageError,
    RenderRequest,
    check_declared_assets,
    missing_error,
    run_capture,
)
from spillway.packages.povray import PovrayScanner, find_dependencies, search_dirs
from spillway.packages.povray_ini import is_ini, read_ini

PROBE_TIMEOUT = 10.0
_VERSION = re.compile(r"POV-Ray\s+(\d+(?:\.\d+)+)")
_IMAGE_SUFFIX = re.compile(r"\.(png|tga|ppm|pgm|gif|jpe?g|tiff?|bmp|exr|hdr)$", re.I)


def output_base(req: RenderRequest) -> str:
    """The name POV-Ray gives the output before the frame number (``clockd`` for clockd05.png).

    An INI's ``Output_File_Name`` (its file name part), else the scene's stem,
    as POV-Ray names it; the folder is always the task's output folder.
    """
    scene = req.scene
    if is_ini(scene):
        ini = read_ini(scene)
        if ini.output and not ini.output.endswith(("/", "\\")):
            return _IMAGE_SUFFIX.sub("", PurePosixPath(ini.output.replace("\\", "/")).name)
        if ini.input:
            return PurePosixPath(ini.input.replace("\\", "/")).stem
    return scene.stem


def _chunk_step(frames: tuple[int, ...]) -> int | None:
    """The step of an evenly stepped chunk (1 for one frame); None for an irregular one."""
    steps = {b - a for a, b in zip(frames, frames[1:], strict=False)}
    if not steps:
        return 1
    return steps.pop() if len(steps) == 1 else None


def stepped_runs(frames: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Split ascending frames into evenly stepped runs, in order, each as long as it goes:
    (1, 5, 10, 11, 12) -> [(1, 5), (10, 11, 12)]."""
    runs: list[tuple[int, ...]] = []
    i = 0
    while i < len(frames):
        j = i + 1
        if j < len(frames):
            step = frames[j] - frames[i]
            while j + 1 < len(frames) and frames[j + 1] - frames[j] == step:
                j += 1
            j += 1
        runs.append(frames[i:j])
        i = j
    return runs


class PovrayAdapter:
    """Renders .pov scenes and POV-Ray .ini files with POV-Ray 3.7."""

    name = "povray"
    output_ext = "png"

    def __init__(self, executable: str = "povray") -> None:
        self.executable = executable

    async def probe(self, capture: Capture = run_capture) -> str | None:
        result = await capture([self.executable, "--version"], limit_s=PROBE_TIMEOUT)
        if result is None:
            return None
        match = _VERSION.search(result[1])
        return match.group(1) if match else None

    def commands(self, req: RenderRequest) -> list[list[str]]:
        """One POV-Ray run per evenly stepped run of the chunk, all over the job's range."""
        first, last = req.job_range
        return [
            self.command(dataclasses.replace(req, frames=run, job_first=first, job_last=last))
            for run in stepped_runs(req.frames)
        ]

    def command(self, req: RenderRequest) -> list[str]:
        """The one POV-Ray run of an evenly stepped chunk (see :meth:`commands`)."""
        step = _chunk_step(req.frames)
        if step is None:
            raise PackageError(
                f"POV-Ray renders evenly stepped frames in one run, not {req.frames}; "
                "render each of commands(req) in turn"
            )
        # The job's range, not this run's: keeps clock and frame-number padding the job's.
        first, last = req.job_range
        scene = str(req.scene) if is_ini(req.scene) else f"+I{req.scene}"
        argv = [self.executable, f"+KFI{first}", f"+KFF{last}", scene]
        if req.width is not None and req.height is not None:
            argv += [f"+W{req.width}", f"+H{req.height}"]
        return [
            *argv,
            f"+O{req.outdir / output_base(req)}",
            "-D",  # no preview window
            "-P",  # no pause at the end
            f"+SF{req.first}",
            f"+EF{req.last}",
            f"+STP{step}",
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
            find_dependencies(req.scene, [*search_dirs(req.scene), req.workdir])
        except MissingDependencyError as exc:
            raise missing_error(exc.files, where=str(req.workdir)) from None

    def collect(self, req: RenderRequest) -> dict[int, list[Path]]:
        """Map frames to ``<base><frame>.<ext>`` (POV-Ray pads to the final frame's width;
        the extension is the output type's); a still (a one-frame animation range) is
        ``<base>.<ext>``."""
        base = output_base(req)
        found: dict[int, Path] = {}
        for path in sorted(req.outdir.iterdir()):
            if not _IMAGE_SUFFIX.search(path.name) or not path.is_file():
                continue
            rest = path.stem[len(base) :] if path.stem.startswith(base) else None
            if rest and rest.isdigit():
                found.setdefault(int(rest), path)
            elif rest == "" and len(req.frames) == 1:
                found.setdefault(req.first, path)
        missing = [f for f in req.frames if f not in found]
        if missing:
            raise PackageError(
                f"POV-Ray wrote no {base}<frame>.<ext> image for frame(s) "
                f"{', '.join(map(str, missing))} in {req.outdir}; see the render log"
            )
        return {f: [found[f]] for f in req.frames}

    async def scan(self, scene: Path) -> list[Path]:
        return await PovrayScanner().scan(scene)
