"""The render packages Spillway knows, by name, with each one's scene dependency scanner.

The site agent needs the names (to reject jobs for unknown packages), clients
need the scanners (to upload what a scene depends on), and the render server's
adapters scan with the same code before rendering.  Scanner modules are loaded
only when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from spillway.packages.errors import UnknownPackageError

__all__ = ["PACKAGE_NAMES", "Scanner", "package_names", "scanner_for"]

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
