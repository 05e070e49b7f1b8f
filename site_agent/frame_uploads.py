"""The files of a task's frames as a render server sends them: names, checks, records.

A render server sends every file it wrote for a frame under the renderer's own
name, each marked with its kind (:class:`~spillway.core.records.FileKind`): the
frame's ``main`` file, other outputs (``extra``), and its ``preview``. The main
file comes last, so the frame is recorded (with all its files) when it arrives.
Names are checked here: plain file names, one main file per frame, and no name
used by two frames of a job (a second frame would overwrite the first's file).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from render_server import protocol
from spillway.core.records import FileKind

from .errors import BadRequestError
from .files import UnsafePathError
from .storage import stored_name
from .store.records import FrameFile, FrameRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingFile:
    """One file of a frame to store: where it goes in the job folder and what it is."""

    frame: int
    name: str
    """Path in the job's folder (:func:`~site_agent.storage.stored_name`)."""
    kind: FileKind


def incoming(frame: int, name: str, kind: FileKind) -> IncomingFile:
    """The file as stored; BadRequestError for a name that is not a plain file name."""
    try:
        return IncomingFile(frame=frame, name=stored_name(name, kind), kind=kind)
    except UnsafePathError as exc:
        raise BadRequestError(f"frame {frame}: {exc}") from None


def check_task_files(task_frames: Sequence[int], files: Sequence[IncomingFile]) -> None:
    """Files sent together (inline in TaskDone): frames of the task, one main file each,
    no name twice. Raises BadRequestError."""
    mains: set[int] = set()
    names: set[str] = set()
    for f in files:
        if f.frame not in task_frames:
            raise BadRequestError(f"frame {f.frame} is not part of this task")
        if f.name in names:
            raise BadRequestError(f"file {f.name!r} was sent twice")
        names.add(f.name)
        if f.kind == FileKind.MAIN:
            if f.frame in mains:
                raise BadRequestError(f"frame {f.frame} was sent with two main files")
            mains.add(f.frame)
    orphans = sorted({f.frame for f in files} - mains)
    if orphans:
        raise BadRequestError(f"frame(s) {orphans} were sent without a main file")


def check_owners(files: Iterable[IncomingFile], owners: dict[str, int]) -> None:
    """BadRequestError if a name is already another frame's in the job (from the store)."""
    for f in files:
        owner = owners.get(f.name)
        if owner is not None and owner != f.frame:
            raise BadRequestError(
                f"output file {f.name!r} of frame {f.frame} is already frame {owner}'s; "
                "each frame's files need names of their own (put the frame number in the "
                "scene's output file name)"
            )


def unrecorded(outputs: Sequence[protocol.Output], records: Iterable[FrameRecord]) -> list[str]:
    """Names of the reported outputs (other than main files) that no record holds."""
    have = {(r.frame, f.name) for r in records for f in r.files}
    missing: list[str] = []
    for out in outputs:
        if out.kind == FileKind.MAIN:
            continue  # main files are the frames themselves, checked frame by frame
        try:
            name = stored_name(out.name, out.kind)
        except UnsafePathError:
            name = out.name
        if (out.frame, name) not in have:
            missing.append(name)
    return missing


def file_of(f: IncomingFile, sha256: str, size: int) -> FrameFile:
    return FrameFile(name=f.name, sha256=sha256, size=size, kind=f.kind)
