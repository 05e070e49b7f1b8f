"""Dependency references of a scene: kept inside the scene folder, missing ones named together."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath

from spillway.packages.errors import MissingDependencyError, ScanError

__all__ = ["missing_error", "relative_reference"]


def relative_reference(ref: str, scene_dir: Path, *, kind: str = "file") -> PurePosixPath:
    """Validate a dependency reference and return it as a clean relative posix path.

    References must stay inside the scene folder so the layout can be reproduced
    in a task work dir on another host; :class:`ScanError` otherwise.
    """
    norm = ref.replace("\\", "/")
    outside = (
        PurePosixPath(norm).is_absolute()
        or PureWindowsPath(ref).drive != ""
        or ".." in PurePosixPath(norm).parts
    )
    if not outside:
        resolved = (scene_dir / norm).resolve()
        outside = not resolved.is_relative_to(scene_dir.resolve())
    if outside:
        raise ScanError(
            f"{kind} '{ref}' is outside the scene folder; copy it next to the scene "
            "and reference it by a relative path"
        )
    parts = [p for p in PurePosixPath(norm).parts if p not in (".", "")]
    return PurePosixPath(*parts)


def missing_error(missing: Iterable[str], *, where: str) -> MissingDependencyError:
    """Build a MissingDependencyError naming every missing file."""
    names = sorted(set(missing))
    listed = ", ".join(f"'{n}'" for n in names)
    noun = "file" if len(names) == 1 else "files"
    return MissingDependencyError(
        f"missing {noun} {listed} (expected in {where}); add {'it' if len(names) == 1 else 'them'} "
        "to the job's assets",
        files=names,
    )
