"""Errors of the render-package catalog, shared by the scanners and the render server's adapters."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MissingDependencyError", "PackageError", "ScanError", "UnknownPackageError"]


class PackageError(Exception):
    """Base for render package errors."""


class MissingDependencyError(PackageError):
    """A file the scene needs is not present."""

    def __init__(self, message: str, *, files: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.files: tuple[str, ...] = tuple(files)


class ScanError(PackageError):
    """A scene's dependencies could not be determined or are not uploadable."""


class UnknownPackageError(PackageError, LookupError):
    """No render package of that name is in the catalog."""
