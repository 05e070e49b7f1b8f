"""The open .blend's dependencies, read in this Blender with the catalog's own script.

The command-line client starts a headless Blender to run
:data:`~spillway.packages.blender_script.INSPECT_SCRIPT`; inside Blender the
add-on runs the same script on the open file, so both find the same files, frame
range and features.  It must run on Blender's main thread (it uses ``bpy``); the
result is plain data that the submission thread resolves against the disk.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from spillway.client.errors import SubmissionError
from spillway.packages import PackageError
from spillway.packages.blender import (
    BlenderScanner,
    BlendFile,
    BlendScene,
    parse_inspection,
    scene_from_inspection,
)
from spillway.packages.blender_script import INSPECT_SCRIPT

__all__ = ["OpenFileScanner", "inspect_open_file"]


def inspect_open_file() -> OpenFileScanner:
    """Run the inspection script on the open file (main thread only)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(INSPECT_SCRIPT, "<spillway inspection>", "exec"), {"__name__": "__inspect__"})
    parsed = parse_inspection(out.getvalue())
    if parsed is None:  # the script always prints its line; this is a broken install
        raise SubmissionError("could not read the open .blend's dependencies; reinstall the add-on")
    return OpenFileScanner(*parsed)


class OpenFileScanner(BlenderScanner):
    """A Blender scanner that answers with what the open file reported, starting no Blender.

    It is a :class:`BlenderScanner`, so submitting takes files, frame range and
    features from one :meth:`read`, exactly as for a scanned .blend.
    """

    def __init__(self, refs: Sequence[BlendFile], settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.refs = tuple(refs)
        self.settings = dict(settings)

    async def read(self, scene: Path, assets: Sequence[PurePosixPath] = ()) -> BlendScene:
        return scene_from_inspection(self.refs, self.settings, scene.parent, assets)

    def check(self, scene: Path) -> BlendScene:
        """The same read, now: SubmissionError naming a missing or unusable file."""
        try:
            return scene_from_inspection(self.refs, self.settings, scene.parent)
        except PackageError as err:
            raise SubmissionError(f"cannot submit {scene.name}: {err}") from None
