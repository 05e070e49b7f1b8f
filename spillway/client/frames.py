"""The frames of a submitted job: given with --frames, or the scene's own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spillway.client.errors import SubmissionError
from spillway.core.frames import FrameSpecError, parse_frames

if TYPE_CHECKING:
    from spillway.packages import SceneFrames

__all__ = ["resolve_frames"]


def resolve_frames(
    scene: Path, package: str, frames: str, *, own: SceneFrames | None = None
) -> str:
    """The job's frame spec: ``frames`` if given, else the frames the scene sets itself
    (``own`` when the caller has read them already, e.g. a .blend's frame range).

    Raises :class:`SubmissionError` when neither gives frames, or when ``frames``
    leaves the animation range the scene fixes (a POV-Ray .ini's Initial/Final_Frame).
    """
    if not scene.is_file():
        what = "is a directory" if scene.is_dir() else "does not exist"
        raise SubmissionError(f"scene {scene} {what}; give the path of the scene file")
    if own is None:
        from spillway.packages import PackageError, scene_frames  # only when submitting

        try:
            own = scene_frames(package, scene)
        except PackageError as err:
            raise SubmissionError(f"cannot submit {scene.name}: {err}") from None
    if not frames:
        if own is None:
            raise SubmissionError(
                f"{scene.name} sets no frames of its own; give them with --frames, e.g. --frames 1-24"
            )
        return own.spec
    if own is not None and own.fixed:
        try:
            wanted = parse_frames(frames)
        except FrameSpecError as err:
            raise SubmissionError(str(err)) from None
        if wanted[0] < own.first or wanted[-1] > own.last:
            raise SubmissionError(
                f"--frames {frames} leaves {scene.name}'s animation, frames {own.first}-{own.last}; "
                f"give frames within it or leave --frames out to render {own.spec}"
            )
    return frames
