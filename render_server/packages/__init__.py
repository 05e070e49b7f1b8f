"""Render package adapters: the built-in tracer, POV-Ray and Blender.

The interface is in :mod:`render_server.packages.base`; ``registry()`` and
``adapter_for(name)`` return the known adapters.
"""

from render_server.packages.base import (
    MissingDependencyError,
    PackageAdapter,
    PackageError,
    RenderRequest,
    ScanError,
    adapter_for,
    registry,
)

__all__ = [
    "MissingDependencyError",
    "PackageAdapter",
    "PackageError",
    "RenderRequest",
    "ScanError",
    "adapter_for",
    "registry",
]
