"""The render-package catalog: package names, requirements and scene dependency scanners.

A leaf: imports only :mod:`spillway.core`, so clients scan scenes without the
render server, and the render server's adapters reuse the same scanners.

The catalog and requirements (``packaging``) load when one of their names is
first used: a renderer child imports this package only for its errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spillway.packages.errors import (
    MissingDependencyError,
    PackageError,
    ScanError,
    UnknownPackageError,
)

if TYPE_CHECKING:
    from spillway.packages.catalog import (
        PACKAGE_NAMES,
        AssetAwareScanner,
        Scanner,
        package_names,
        scanner_for,
        scene_frames,
    )
    from spillway.packages.own_frames import SceneFrames
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

_LAZY = {
    **dict.fromkeys(
        (
            "PACKAGE_NAMES",
            "AssetAwareScanner",
            "Scanner",
            "package_names",
            "scanner_for",
            "scene_frames",
        ),
        "catalog",
    ),
    "SceneFrames": "own_frames",
    "RequirementError": "requirements",
    "parse_requirement": "requirements",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spillway.packages' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"spillway.packages.{module}"), name)
