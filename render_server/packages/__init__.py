"""Render package adapters: the built-in tracer, POV-Ray and Blender.

The interface is in :mod:`render_server.packages.base`; ``registry()`` and
``adapter_for(name)`` return the known adapters.

The names below load :mod:`render_server.packages.base` when first used, not
with the package: a renderer child (``python -m render_server.packages.builtin``)
imports this package first and needs none of it (the base module loads asyncio).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'render_server.packages' has no attribute {name!r}")
    from render_server.packages import base

    return getattr(base, name)
