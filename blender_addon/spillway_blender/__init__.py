"""Spillway for Blender: submit the saved .blend to a Spillway render farm and follow its job.

Properties editor > Render > Spillway.  Built into ``dist/spillway_blender.zip``
by ``scripts/build-blender-addon``, which bundles the Spillway client it uses
(docs/blender-addon.md).  ``bpy`` is imported only in :func:`register`, so the
plain parts are importable, and tested, outside Blender.
"""

import sys
from pathlib import Path
from typing import Any

bl_info = {
    "name": "Spillway Render Farm",
    "author": "Spillway",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Properties > Render > Spillway",
    "description": "Submit the saved .blend with its files to a Spillway render farm",
    "category": "Render",
}

_HERE = Path(__file__).resolve().parent


def _use_bundled() -> None:
    """Make the bundled Spillway client importable.

    ``_bundled`` (the client) goes first, so the add-on runs the client it was built
    with; ``_fallback`` (third-party libraries the client needs) goes last, so a
    library Blender's Python already has is left as it is.
    """
    bundled, fallback = str(_HERE / "_bundled"), str(_HERE / "_fallback")
    if (_HERE / "_bundled").is_dir() and bundled not in sys.path:
        sys.path.insert(0, bundled)
    if (_HERE / "_fallback").is_dir() and fallback not in sys.path:
        sys.path.append(fallback)


def register() -> None:
    _use_bundled()
    from . import ui

    ui.register()


def unregister() -> None:
    from . import ui

    ui.unregister()


def wait(timeout_s: float = 3600.0) -> dict[str, Any]:
    """Follow the submitted job until it ends, in ``blender -b`` scripts (no timers there).

    Returns ``{"job_id", "state", "text", "error"}`` as the panel shows them."""
    from . import ui

    return dict(ui.wait(timeout_s))
