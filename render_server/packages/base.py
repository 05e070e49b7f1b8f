"""The render package adapter interface and helpers shared by the adapters.

An adapter turns a :class:`RenderRequest` (one chunk of frames of a scene laid
out in a task work dir: consecutive, evenly stepped or irregular) into the child
process command lines that render exactly those frames (one, or one per evenly
stepped run for a renderer that takes only ranges: :class:`SteppedRuns`), checks
that everything the scene needs is present before rendering, and maps the files
the renderer wrote back to frame numbers.  Scanning a scene for the files it
depends on is the catalog's (:mod:`spillway.packages`); adapters scan with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from spillway.packages.errors import MissingDependencyError, PackageError, ScanError
from spillway.packages.paths import missing_error, relative_reference
from spillway.packages.process import Capture, run_capture

__all__ = [
    "Capture",
    "FeatureProbe",
    "MissingDependencyError",
    "PackageAdapter",
    "PackageError",
    "RenderRequest",
    "ScanError",
    "SteppedRuns",
    "adapter_for",
    "chunk_commands",
    "check_declared_assets",
    "collect_numbered",
    "missing_error",
    "registry",
    "relative_reference",
    "run_capture",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderRequest:
    """One chunk of frames to render, with the directories involved."""

    scene: Path  # absolute path of the scene inside the task work dir
    workdir: Path  # task work dir; scene and assets are under it at their relative paths
    outdir: Path  # empty dir the adapter's command must write frames into
    frames: tuple[int, ...]  # the chunk's frames, ascending: consecutive, stepped or irregular
    width: int | None = None  # None: the scene's own resolution (an override otherwise)
    height: int | None = None
    threads: int = 1
    engine: str = ""  # package-specific; "" = scene default
    samples: int | None = None  # None: the scene's own render samples (an override otherwise)
    denoise: bool | None = None  # None: as the scene says; False: render without denoising
    declared_assets: tuple[str, ...] = ()  # posix relative paths from the job's manifest
    job_first: int | None = None  # the job's first and last frame (None: the chunk's)
    job_last: int | None = None

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def job_range(self) -> tuple[int, int]:
        """The job's first and last frame: an animation's range is the job's, not the chunk's."""
        first = self.first if self.job_first is None else min(self.job_first, self.first)
        last = self.last if self.job_last is None else max(self.job_last, self.last)
        return first, last


@runtime_checkable
class FeatureProbe(Protocol):
    """An adapter whose installation may lack optional features (Blender's OpenImageDenoise)."""

    async def probe_features(self, capture: Capture = run_capture) -> list[str]:
        """Feature tags (``blender:oidn``) of the installed package, running commands
        through ``capture``.  Never raises; bounded."""
        ...


@runtime_checkable
class PackageAdapter(Protocol):
    """What the render server needs from a render package.

    ``scan`` is the catalog's scanner for the package (:mod:`spillway.packages`).
    """

    name: str
    output_ext: str

    async def probe(self, capture: Capture = run_capture) -> str | None:
        """Installed version string, or None when absent, running commands through
        ``capture``.  Never raises; bounded in time."""
        ...

    def command(self, req: RenderRequest) -> list[str]:
        """argv rendering exactly the chunk's frames (none in between) in one child process.

        An adapter that is also :class:`SteppedRuns` may refuse an irregular chunk here."""
        ...

    def env(self, req: RenderRequest) -> dict[str, str]:
        """Extra environment variables for the child process (may be empty)."""
        ...

    def preflight(self, req: RenderRequest) -> None:
        """Raise MissingDependencyError if a file the scene needs is absent."""
        ...

    def collect(self, req: RenderRequest) -> dict[int, list[Path]]:
        """Map each requested frame to the files the renderer wrote for it, in ``outdir``
        under their own names, the frame's main file first; raise PackageError naming
        frames with none."""
        ...

    async def scan(self, scene: Path) -> list[Path]:
        """Dependency files of a scene, relative (posix) to scene.parent, recursively.

        Raises ScanError for references outside the scene folder and
        MissingDependencyError for referenced files that do not exist.
        """
        ...


@runtime_checkable
class SteppedRuns(Protocol):
    """An adapter whose renderer takes only evenly stepped frame ranges (POV-Ray's
    ``+SF/+EF/+STP``), so an irregular chunk takes one child process per run."""

    def commands(self, req: RenderRequest) -> list[list[str]]:
        """argv of each child process, run one after another into ``outdir``; together
        they render exactly the chunk's frames."""
        ...


def chunk_commands(adapter: PackageAdapter, req: RenderRequest) -> list[list[str]]:
    """The child processes that render the chunk, in order (one for most adapters)."""
    if isinstance(adapter, SteppedRuns):
        return adapter.commands(req)
    return [adapter.command(req)]


# --- helpers shared by the adapters -------------------------------------------------


def check_declared_assets(req: RenderRequest) -> None:
    """Raise MissingDependencyError unless the scene and every declared asset exist."""
    missing = [a for a in req.declared_assets if not (req.workdir / a).is_file()]
    if not req.scene.is_file():
        missing.append(req.scene.name)
    if missing:
        raise missing_error(missing, where=str(req.workdir))


_NUMBER_SUFFIX = re.compile(r"(\d+)$")


def collect_numbered(req: RenderRequest, ext: str) -> dict[int, list[Path]]:
    """Map frame numbers to files in outdir named ``<anything><digits>.<ext>``.

    Renderers pad frame numbers differently (POV-Ray to the width of the last
    frame, Blender to the number of '#'), so the digits are parsed, not matched.
    """
    found: dict[int, Path] = {}
    if req.outdir.is_dir():
        for path in sorted(req.outdir.glob(f"*.{ext}")):
            m = _NUMBER_SUFFIX.search(path.stem)
            if m:
                found.setdefault(int(m.group(1)), path)
    missing = [f for f in req.frames if f not in found]
    if missing:
        raise PackageError(
            f"renderer produced no output for frame(s) {', '.join(map(str, missing))} "
            f"in {req.outdir}; see the render log"
        )
    return {f: [found[f]] for f in req.frames}


# --- registry ------------------------------------------------------------------------------


def registry() -> dict[str, PackageAdapter]:
    """All known adapters by name (fresh instances; adapters hold no state)."""
    # Imported here because the adapter modules import this one.
    from render_server.packages.blender import BlenderAdapter
    from render_server.packages.builtin.adapter import BuiltinAdapter
    from render_server.packages.povray import PovrayAdapter

    adapters: list[PackageAdapter] = [BuiltinAdapter(), PovrayAdapter(), BlenderAdapter()]
    return {a.name: a for a in adapters}


def adapter_for(name: str) -> PackageAdapter:
    """The adapter called name; PackageError listing the known names otherwise."""
    adapters = registry()
    try:
        return adapters[name]
    except KeyError:
        raise PackageError(
            f"unknown render package {name!r}; known packages: {', '.join(sorted(adapters))}"
        ) from None
