"""Dependency scanner of the built-in tracer: the textures a JSON scene names."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from spillway.packages.paths import missing_error, relative_reference

__all__ = ["BuiltinScanner", "texture_references"]


def texture_references(scene: Path) -> list[PurePosixPath]:
    """The textures of a valid scene, relative to its folder (present or not).

    Raises SceneError for an invalid scene and ScanError for a texture outside
    the scene folder.
    """
    scene_dir = scene.resolve().parent
    try:
        # The scene format needs numpy; loaded only when a built-in scene is read.
        from spillway.packages.builtin_scene import load_scene
    except ImportError:  # a client installed without the server parts (no numpy)
        textures = _named_textures(scene)
    else:
        textures = list(load_scene(scene).textures)
    return [relative_reference(t, scene_dir, kind="texture") for t in textures]


def _named_textures(scene: Path) -> list[str]:
    """The textures a scene's objects name, read from its JSON without checking the rest
    (the render server checks the whole scene)."""
    import json

    from spillway.packages.errors import ScanError

    try:
        data = json.loads(scene.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScanError(f"cannot read {scene.name} as a JSON scene: {exc}") from None
    objects = data.get("objects") if isinstance(data, dict) else None
    names = {
        obj["material"]["texture"]
        for obj in objects or ()
        if isinstance(obj, dict)
        and isinstance(obj.get("material"), dict)
        and isinstance(obj["material"].get("texture"), str)
    }
    return sorted(names)


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
