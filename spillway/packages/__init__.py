"""The render-package catalog: package names, requirements and scene dependency scanners.

A leaf: imports only :mod:`spillway.core`, so clients scan scenes without the
render server, and the render server's adapters reuse the same scanners.
"""

from spillway.packages.catalog import (
    PACKAGE_NAMES,
    AssetAwareScanner,
    Scanner,
    SceneFrames,
    package_names,
    scanner_for,
    scene_frames,
)
from spillway.packages.errors import (
    MissingDependencyError,
    PackageError,
    ScanError,
    UnknownPackageError,
)
from spillway.packages.requirements import RequirementError, parse_requirement

__all__ = [
    "PACKAGE_NAMES",
    "AssetAwareScanner",
    "MissingDependencyError",
    "PackageError",
    "RequirementError",
    "ScanError",
    "SceneFrames",
    "Scanner",
    "UnknownPackageError",
    "package_names",
    "parse_requirement",
    "scanner_for",
    "scene_frames",
]
