"""Submitting a scene: build its asset manifest, upload what the agent lacks, create the job.

The manifest holds the scene, the files the package's scanner (from the
catalog, :mod:`spillway.packages`) finds it depends on, and every extra ``--asset``; all as posix paths relative to the
scene's folder, so a render host can rebuild the same layout in its work dir.

The steps are here once; :mod:`spillway.client.sync_submit` (the ``spillway``
command, :class:`spillway.client.Client`) and :mod:`spillway.client.async_submit`
(:class:`spillway.client.AsyncClient`) run them. The async functions and
:class:`SubmitResult` are still importable from here.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeGuard

from spillway.client.api import MAX_WAIT_S
from spillway.client.errors import SubmissionError
from spillway.client.frames import resolve_frames
from spillway.core.records import FileEntry

# The package catalog (scanners, requirement syntax) and hashing are imported where a
# scene is submitted: `spillway jobs` and `job` start without them.
if TYPE_CHECKING:
    from spillway.client.async_submit import (
        SubmitResult,
        submit_scene,
        upload_missing,
        wait_for_job,
    )
    from spillway.packages import Scanner
    from spillway.packages.blender import BlenderScanner

__all__ = [
    "Manifest",
    "LocalFile",
    "SubmissionError",
    "SubmitOptions",
    "SubmitResult",
    "UploadCallback",
    "build_manifest",
    "choose_scanner",
    "manifest_from_files",
    "build_job_body",
    "parse_package_spec",
    "prepare_submission",
    "resolve_frames",
    "scanner_for",
    "sha256_file",
    "submit_scene",
    "upload_missing",
    "long_poll_s",
    "rest_after",
    "wait_for_job",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalFile(FileEntry):
    """One file of a job (path relative to the scene folder, sha256, size) and the local
    file it is uploaded from."""

    source: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """The scene (first entry) and its assets."""

    scene: str
    entries: tuple[LocalFile, ...]

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.entries]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitOptions:
    """Everything about a job besides its files.  Defaults match the CLI's."""

    package: str  # requirement, e.g. "povray>=3.7"
    frames: str = ""  # "" = the frames the scene sets (a POV-Ray .ini's animation)
    chunk_size: int = 1
    priority: int = 50
    name: str = ""  # "" = the scene file's stem
    site: str | None = None
    forward: bool = True
    split: bool = False  # render here and send parts to peers with free capacity
    width: int | None = None  # None = the scene's own resolution; set both to override
    height: int | None = None
    engine: str = ""  # "" = the scene's own engine
    samples: int | None = None  # None = the scene's own samples
    denoise: bool = True  # False renders without the scene's denoising
    features: tuple[str, ...] = ()  # package features a server must have (from the scene)
    min_memory_mb: int = 0
    min_cores: int = 1
    gpu: bool = False
    tags: tuple[str, ...] = ()
    max_servers: int = 0  # 0 = no limit
    task_timeout_s: float = 3600.0
    max_attempts: int = 3
    owner: str = ""  # "" = the local user name
    queue_anyway: bool = False  # queue even if no known server or peer can run it
    after: tuple[str, ...] = ()  # job ids this job waits for (to be done, unless after_any)
    after_any: bool = False  # wait for them to end however they end
    after_frames: tuple[str, ...] = ()  # job ids whose frame N each frame N waits for


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    from spillway.core.hashing import file_sha256

    return file_sha256(path)


def parse_package_spec(text: str) -> tuple[str, str]:
    """Split ``povray>=3.7`` into ``("povray", ">=3.7")``; ``builtin`` gives ``("builtin", "")``.

    The requirement is checked as the agent's scheduler checks it (whitespace in the
    specifier is dropped).
    """
    from spillway.packages import RequirementError, parse_requirement

    try:
        name, spec = parse_requirement(text)
    except RequirementError as err:
        raise SubmissionError(str(err)) from None
    return name, "".join(spec.split())


def scanner_for(package: str) -> Scanner | None:
    """The catalog's dependency scanner for a package, or None for a package it does not know."""
    from spillway.packages import UnknownPackageError
    from spillway.packages import scanner_for as catalog_scanner

    try:
        return catalog_scanner(package)
    except UnknownPackageError:
        return None


def choose_scanner(
    package: str, scanner: Scanner | None | bool
) -> tuple[Scanner | None, list[str]]:
    """The scanner a submission uses and the notes it owes the user: ``True`` means the
    catalog's scanner for ``package`` (a note when there is none), ``None``/``False`` none."""
    if scanner is not True:
        return scanner or None, []
    chosen = scanner_for(package)
    if chosen is None:
        return None, [
            f"no dependency scanner for package {package!r} here; sending only the scene "
            "and the --asset files"
        ]
    return chosen, []


def _inside(path: Path, folder: Path) -> PurePosixPath | None:
    """``path`` relative to ``folder`` (both made absolute, '..' folded), or None if outside."""
    absolute = Path(os.path.abspath(path))
    try:
        return PurePosixPath(absolute.relative_to(folder).as_posix())
    except ValueError:
        return None


def _scanned_path(rel: Path, folder: Path, scene: Path) -> Path:
    posix = PurePosixPath(rel.as_posix())
    if posix.is_absolute() or ".." in posix.parts or _inside(folder / posix, folder) is None:
        raise SubmissionError(
            f"{scene.name} references '{rel}', which is outside the scene folder {folder}; "
            "copy it next to the scene and reference it by a relative path"
        )
    return folder / posix


def _asset_path(asset: Path, folder: Path) -> tuple[PurePosixPath, Path]:
    rel = _inside(asset, folder)
    if rel is None:
        raise SubmissionError(
            f"--asset {asset} is outside the scene folder {folder}; copy it into that folder "
            "(or a subfolder) so the scene can reference it by a relative path"
        )
    return rel, folder / rel


async def _scan(scanner: Scanner, scene: Path, assets: Sequence[PurePosixPath]) -> list[Path]:
    from spillway.packages import AssetAwareScanner, PackageError

    try:
        if isinstance(scanner, AssetAwareScanner):
            return list(await scanner.scan_with_assets(scene, assets))
        return list(await scanner.scan(scene))
    except PackageError as err:
        raise SubmissionError(f"cannot submit {scene.name}: {err}") from None


def _scene_folder(scene: Path) -> Path:
    if not scene.is_file():
        what = "is a directory" if scene.is_dir() else "does not exist"
        raise SubmissionError(f"scene {scene} {what}; give the path of the scene file")
    return Path(os.path.abspath(scene.parent))


def manifest_from_files(
    scene: Path, scanned: Sequence[Path] = (), assets: Sequence[Path] = ()
) -> Manifest:
    """Check and hash the scene, its ``scanned`` dependencies (relative to its folder) and ``assets``.

    Raises :class:`SubmissionError` for a missing file or one outside the scene's folder.
    """
    folder = _scene_folder(scene)
    scene_rel = PurePosixPath(scene.name)
    files: dict[PurePosixPath, Path] = {scene_rel: folder / scene.name}
    for rel in scanned:
        path = _scanned_path(rel, folder, scene)
        files.setdefault(PurePosixPath(path.relative_to(folder).as_posix()), path)
    for asset in assets:
        rel_asset, path = _asset_path(asset, folder)
        files.setdefault(rel_asset, path)
    from spillway.core.checks import manifest_problem

    if (problem := manifest_problem(str(rel_path) for rel_path in files)) is not None:
        raise SubmissionError(f"cannot submit {scene.name}: {problem}")
    entries = []
    real_folder = folder.resolve()
    for rel_path, path in files.items():
        if not path.is_file():
            raise SubmissionError(
                f"asset {path} does not exist or is not a file; fix the path or remove the --asset"
            )
        if not path.resolve().is_relative_to(real_folder):
            raise SubmissionError(
                f"asset {path} is a symlink to {path.resolve()}, outside the scene folder; "
                "copy the file into the scene folder instead of linking it"
            )
        entries.append(
            LocalFile(
                path=str(rel_path), sha256=sha256_file(path), size=path.stat().st_size, source=path
            )
        )
    return Manifest(scene=str(scene_rel), entries=tuple(entries))


async def build_manifest(
    scene: Path, assets: Sequence[Path] = (), *, scanner: Scanner | None = None
) -> Manifest:
    """Scan ``scene`` with ``scanner`` (if any), then build the manifest with the ``assets``.

    Hashing reads the files on the calling thread: fine for the CLI and tests,
    not meant to run inside a busy server's event loop.
    """
    folder = _scene_folder(scene)
    scanned: list[Path] = []
    if scanner is not None:
        rel_assets = [_asset_path(a, folder)[0] for a in assets]
        scanned = await _scan(scanner, folder / scene.name, rel_assets)
    return manifest_from_files(scene, scanned, assets)


def _owner() -> str:
    import getpass  # only when submitting: it costs every command a terminal module

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def build_job_body(scene: Path, manifest: Manifest, options: SubmitOptions) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/jobs``."""
    from spillway.client.scene_settings import override_settings  # it loads the catalog

    package, version = parse_package_spec(options.package)
    return {
        "name": options.name or scene.stem,
        "scene": manifest.scene,
        "manifest": manifest.to_json(),
        "frames": options.frames,
        "chunk_size": options.chunk_size,
        "priority": options.priority,
        "profile": {
            "package": package,
            "version": version,
            "min_memory_mb": options.min_memory_mb,
            "min_cores": options.min_cores,
            "gpu": options.gpu,
            "tags": list(options.tags),
            "max_servers": options.max_servers,
            "task_timeout_s": float(options.task_timeout_s),
            "max_attempts": options.max_attempts,
            "engine": options.engine,
            # Sent only when needed: an agent that predates features refuses the key.
            **({"features": sorted(options.features)} if options.features else {}),
        },
        "settings": override_settings(
            width=options.width,
            height=options.height,
            samples=options.samples,
            denoise=options.denoise,
        ),
        "site": options.site,
        "forward": options.forward,
        # Sent only when asked: an agent that predates split jobs refuses the key.
        **({"split": True} if options.split else {}),
        "owner": options.owner or _owner(),
        "queue_anyway": options.queue_anyway,
        "after": list(options.after),
        "after_any": options.after_any,
        "after_frames": list(options.after_frames),
    }


UploadCallback = Callable[[LocalFile], None]


def _is_blender_scanner(scanner: Scanner | None) -> TypeGuard[BlenderScanner]:
    # A BlenderScanner exists only once its module is loaded: other packages' submits
    # need not load it (and its records) to find out.
    blender = sys.modules.get("spillway.packages.blender")
    return blender is not None and isinstance(scanner, blender.BlenderScanner)


async def prepare_submission(
    scene: Path,
    package: str,
    options: SubmitOptions,
    assets: Sequence[Path],
    scanner: Scanner | None,
) -> tuple[Manifest, SubmitOptions, tuple[str, ...]]:
    """The manifest, the options with the frames (and features) the scene gives, and notes."""
    from spillway.client.scene_settings import check_overrides

    check_overrides(
        package, engine=options.engine, samples=options.samples, denoise=options.denoise
    )
    if not _is_blender_scanner(scanner):
        frames = resolve_frames(scene, package, options.frames)
        manifest = await build_manifest(scene, assets, scanner=scanner)
        return manifest, dataclasses.replace(options, frames=frames), ()
    # One Blender run gives the files, the frame range and the features needed.
    from spillway.client.blend_read import read_blend

    folder = _scene_folder(scene)
    read = await read_blend(
        scanner,
        folder / scene.name,
        [_asset_path(a, folder)[0] for a in assets],
        engine=options.engine,
        samples=options.samples,
        denoise=options.denoise,
    )
    frames = resolve_frames(scene, package, options.frames, own=read.frames)
    manifest = manifest_from_files(scene, read.files, assets)
    options = dataclasses.replace(options, frames=frames, features=read.features)
    return manifest, options, read.notes


FINISHED_STATES = frozenset({"done", "failed", "cancelled"})
TRANSIENT_ERRORS = frozenset({"unreachable", "connection_lost", "timeout"})
"""Error codes of a poll that mean the agent is restarting or briefly unreachable:
waiting carries on."""


def long_poll_s(poll_s: float) -> float:
    """How long each request of a wait lets the agent hold its answer: ``poll_s``, at most
    the agent's limit. The agent answers at once when the job ends, so the end is seen
    when it happens; ``poll_s`` is how often progress arrives meanwhile."""
    return min(poll_s, MAX_WAIT_S)


def rest_after(wait_s: float, elapsed_s: float) -> float:
    """The pause before asking again after an answer for an unfinished job that took
    ``elapsed_s``: none after a held answer; an agent that predates long polls answers
    at once, and is then asked every ``wait_s`` as before."""
    return max(0.0, wait_s - elapsed_s)


_ASYNC = frozenset({"SubmitResult", "submit_scene", "upload_missing", "wait_for_job"})


def __getattr__(name: str) -> Any:
    # The asyncio side moved to its own module; code importing it from here still works.
    if name not in _ASYNC:
        raise AttributeError(f"module 'spillway.client.submission' has no attribute {name!r}")
    from spillway.client import async_submit

    return getattr(async_submit, name)
