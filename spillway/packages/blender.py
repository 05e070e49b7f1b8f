"""Dependency scanner of Blender scenes: a headless Blender lists what a .blend references.

``bpy.utils.blend_paths`` names every image, library, sound and cache file; only
paths relative to the .blend (``//...``) can be uploaded and rebuilt on a render
host.  Scanning needs Blender on the submitter's machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from spillway.packages.errors import ScanError
from spillway.packages.paths import missing_error, relative_reference
from spillway.packages.process import run_capture

__all__ = ["SCAN_TIMEOUT", "BlenderScanner"]

SCAN_TIMEOUT = 120.0

_SCAN_MARKER = "SPILLWAY_BLEND_PATHS="
_SCAN_SCRIPT = f"""
import bpy, json
print({_SCAN_MARKER!r} + json.dumps(bpy.utils.blend_paths(absolute=False, packed=False, local=False)))
"""


class BlenderScanner:
    """Finds the files a .blend references by asking ``executable`` in background mode."""

    name = "blender"

    def __init__(self, executable: str = "blender") -> None:
        self.executable = executable

    async def scan(self, scene: Path) -> list[Path]:
        """Files the .blend references (images, libraries, sounds, caches ...)."""
        scene = _existing_scene(scene)
        argv = [
            self.executable,
            "-b",
            str(scene),
            "--python-exit-code",
            "1",
            "--python-expr",
            _SCAN_SCRIPT,
        ]
        result = await run_capture(argv, limit_s=SCAN_TIMEOUT)
        if result is None:
            raise ScanError(f"could not run {self.executable!r} to scan {scene.name}")
        paths = _parse_scan_output(result[1])
        if result[0] != 0 or paths is None:
            tail = result[1].strip().splitlines()[-3:]
            raise ScanError(f"blender failed to scan {scene.name}: {' | '.join(tail)}")
        return _check_paths(paths, scene.parent)


def _existing_scene(scene: Path) -> Path:
    scene = scene.resolve()
    if not scene.is_file():
        raise missing_error([scene.name], where=str(scene.parent))
    return scene


def _parse_scan_output(text: str) -> list[str] | None:
    for line in text.splitlines():
        if line.startswith(_SCAN_MARKER):
            return list(json.loads(line[len(_SCAN_MARKER) :]))
    return None


def _check_paths(paths: list[str], scene_dir: Path) -> list[Path]:
    refs = []
    for raw in paths:
        if not raw.startswith("//"):
            raise ScanError(
                f"file '{raw}' is outside the scene folder; copy it next to the scene and "
                "reference it by a relative path (File > External Data > Make Paths Relative)"
            )
        refs.append(relative_reference(raw[2:], scene_dir))
    missing = [str(r) for r in refs if not (scene_dir / r).is_file()]
    if missing:
        raise missing_error(missing, where=str(scene_dir))
    return sorted({Path(r) for r in refs})
