"""Dependency scanner of the built-in tracer: the textures a valid JSON scene names."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from spillway.packages.builtin_schema import read_scene
from spillway.packages.paths import missing_error, relative_reference

__all__ = ["BuiltinScanner", "texture_references"]


def texture_references(scene: Path) -> list[PurePosixPath]:
    """The textures of a valid scene, relative to its folder (present or not).

    Raises SceneError for an invalid scene and ScanError for a texture outside
    the scene folder. The scene is checked in full, in plain Python: no numpy.
    """
    scene_dir = scene.resolve().parent
    textures = read_scene(scene).textures
    return [relative_reference(t, scene_dir, kind="texture") for t in textures]


class BuiltinScanner:
    """Finds the textures of a built-in tracer scene."""

    name = "builtin"

    async def scan(self, scene: Path) -> list[Path]:
        # Reads one small JSON file; not worth a thread.
        return _scan_local(scene)


def _scan_local(scene: Path) -> list[Path]:
    scene_dir = scene.resolve().parent
    refs = texture_references(scene)
    missing = [str(r) for r in refs if not (scene_dir / r).is_file()]
    if missing:
        raise missing_error(missing, where=str(scene_dir))
    return sorted({Path(r) for r in refs})
