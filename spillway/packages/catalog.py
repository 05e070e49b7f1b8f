"""The render packages Spillway knows, by name, with each one's scene dependency scanner.

The site agent needs the names (to reject jobs for unknown packages), clients
need the scanners (to upload what a scene depends on), and the render server's
adapters scan with the same code before rendering.  Scanner modules are loaded
only when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from spillway.packages.errors import UnknownPackageError

if TYPE_CHECKING:
    from spillway.packages.own_frames import SceneFrames

__all__ = [
    "PACKAGE_NAMES",
    "AssetAwareScanner",
    "SceneFrames",
    "Scanner",
    "package_names",
    "scanner_for",
    "scene_frames",
]

PACKAGE_NAMES: tuple[str, ...] = ("builtin", "povray", "blender")
"""Every render package name, in the order the render server probes them."""


class Scanner(Protocol):
    """Finds the files a scene depends on."""

    async def scan(self, scene: Path) -> list[Path]:
        """Dependency files of a scene, relative (posix) to scene.parent, recursively.

        Raises ScanError for references outside the scene folder and
        MissingDependencyError for referenced files that do not exist.
        """
        ...


@runtime_checkable
class AssetAwareScanner(Scanner, Protocol):
    """A scanner for scenes that can compute file names while they render (POV-Ray)."""

    async def scan_with_assets(self, scene: Path, assets: Sequence[PurePosixPath]) -> list[Path]:
        """Like ``scan``; ``assets`` (the user's extra files, relative to scene.parent) are
        scanned too and satisfy names the scanner cannot resolve by reading.  Raises
        ScanError naming each computed name no asset matches, and the --asset to add."""
        ...


def scene_frames(name: str, scene: Path) -> SceneFrames | None:
    """The frames a scene of package ``name`` sets itself, or None where it sets none.

    Raises ScanError for a scene file that cannot be read as its package reads it.
    """
    if name == "povray":
        from spillway.packages.own_frames import SceneFrames
        from spillway.packages.povray_ini import ini_frames, is_ini

        if is_ini(scene):
            spec, first, last = ini_frames(scene)
            return SceneFrames(spec=spec, first=first, last=last)
    return None


def package_names() -> frozenset[str]:
    """The names of all known render packages."""
    return frozenset(PACKAGE_NAMES)


def scanner_for(name: str) -> Scanner:
    """The dependency scanner of package ``name``; UnknownPackageError listing the known names."""
    if name == "builtin":
        from spillway.packages.builtin import BuiltinScanner

        return BuiltinScanner()
    if name == "povray":
        from spillway.packages.povray import PovrayScanner

        return PovrayScanner()
    if name == "blender":
        from spillway.packages.blender import BlenderScanner

        return BlenderScanner()
    raise UnknownPackageError(
        f"unknown render package {name!r}; known packages: {', '.join(sorted(PACKAGE_NAMES))}"
    )


def __getattr__(name: str) -> Any:
    # SceneFrames has a module of its own: a submit whose scene sets no frames of its own
    # (the built-in renderer's) need not create the record's class.
    if name != "SceneFrames":
        raise AttributeError(f"module 'spillway.packages.catalog' has no attribute {name!r}")
    from spillway.packages.own_frames import SceneFrames

    return SceneFrames
