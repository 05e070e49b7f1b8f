"""The files of a task's frames as a render server sends them: names, checks, records.

A render server sends every file it wrote for a frame under the renderer's own
name, each marked with its kind (:class:`~spillway.core.records.FileKind`): the
frame's ``main`` file, other outputs (``extra``), and its ``preview``. The main
file comes last, so the frame is recorded (with all its files) when it arrives.
Names are checked here: plain file names, one main file per frame, and no name
used by two frames of a job (a second frame would overwrite the first's file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from render_server import protocol
from spillway.core.records import FileKind, preview_name

from .connections import ActiveTask
from .errors import BadRequestError
from .files import UnsafePathError, check_sha256, one_chunk, sha256_all
from .storage import FrameStorage, frame_file_name, stored_name
from .store.records import FrameFile, FrameRecord, JobRecord


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


def upload_of(
    output_name: str, output_ext: str, frame: int, name: str | None, kind: FileKind
) -> IncomingFile:
    """An uploaded file as stored; ``name`` None: from a render server older than named
    outputs, whose one file per frame is stored as ``<output_name>_<frame:04d>.<ext>``."""
    if name is None:
        return IncomingFile(
            frame=frame, name=frame_file_name(output_name, frame, output_ext), kind=kind
        )
    return incoming(frame, name, kind)


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


def names_to_check(output_name: str, output_ext: str, files: Iterable[IncomingFile]) -> list[str]:
    """The names another frame of the job might hold: all but the job's own pattern
    (``<output_name>_<frame:04d>.<ext>``, and its preview), which names one frame only.
    Saves the store a read per task in the common case of a renderer named like the job."""
    unique: list[str] = []
    for f in files:
        own = frame_file_name(output_name, f.frame, output_ext)
        if f.name not in (own, stored_name(preview_name(own), FileKind.PREVIEW)):
            unique.append(f.name)
    return unique


class NameOwners(Protocol):
    async def frame_name_owners(self, job_id: str, names: Sequence[str]) -> dict[str, int]: ...


async def check_names(store: NameOwners, job: JobRecord, files: Sequence[IncomingFile]) -> None:
    """BadRequestError if a name is already another frame's in the job (asks the store)."""
    names = names_to_check(job.output_name, job.output_ext, files)
    if names:
        check_owners(files, await store.frame_name_owners(job.id, names))


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


async def check_inline(
    active: ActiveTask, frames: Sequence[protocol.InlineFrame]
) -> list[IncomingFile]:
    """The files of a TaskDone, checked (names, one main file a frame, sha256 of the bytes)."""
    uploads = [incoming(f.frame, f.name, f.kind) for f in frames]
    check_task_files(active.frames, uploads)
    for f in frames:
        check_sha256(f.sha256)
    hashes = await sha256_all([f.data for f in frames])
    for f, digest in zip(frames, hashes, strict=True):
        if digest != f.sha256:
            raise BadRequestError(
                f"frame {f.frame}: {len(f.data)} bytes hash to {digest}, not the declared {f.sha256}"
            )
    return uploads


def frame_record(
    server_id: str,
    active: ActiveTask,
    frame: int,
    main: FrameFile,
    others: dict[str, FrameFile],
    *,
    at: float,
) -> FrameRecord:
    """The record of a frame whose main file (``main``, as stored) came after ``others``."""
    return FrameRecord(
        job_id=active.job_id,
        frame=frame,
        task_id=active.task_id,
        name=main.name,
        sha256=main.sha256,
        size=main.size,
        server_id=server_id,
        rendered_at=at,
        files=tuple(others[n] for n in sorted(others)),
    )


def inline_records(
    server_id: str,
    active: ActiveTask,
    uploads: Sequence[IncomingFile],
    stored: Sequence[FrameFile],
    *,
    at: float,
) -> list[FrameRecord]:
    """One record per frame of files written together, each with its other files."""
    others: dict[int, dict[str, FrameFile]] = {}
    for u, file in zip(uploads, stored, strict=True):
        if u.kind != FileKind.MAIN:
            others.setdefault(u.frame, {})[file.name] = file
    return [
        frame_record(server_id, active, u.frame, file, others.get(u.frame, {}), at=at)
        for u, file in zip(uploads, stored, strict=True)
        if u.kind == FileKind.MAIN
    ]


class FrameReads(Protocol):
    async def frames_of(self, job_id: str, frames: Sequence[int]) -> list[FrameRecord]: ...


async def unrecorded_files(
    store: FrameReads, active: ActiveTask, outputs: Sequence[protocol.Output]
) -> list[str]:
    """Reported files other than main ones that are not recorded with their frame."""
    if all(out.kind == FileKind.MAIN for out in outputs):
        return []
    records = {r.frame: r for r in active.uploaded}
    earlier = sorted({o.frame for o in outputs} - set(records))
    if earlier:  # recorded before an agent restart: only in the store
        records.update((r.frame, r) for r in await store.frames_of(active.job_id, earlier))
    return unrecorded(outputs, records.values())


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


async def write_inline(
    storage: FrameStorage,
    job_dir: Path,
    uploads: Sequence[IncomingFile],
    frames: Sequence[protocol.InlineFrame],
) -> list[FrameFile]:
    """Write the checked inline files of a TaskDone (:func:`check_inline`) into the job's
    folder, each verified against its sha256; several share one file-system sync."""

    async def write(u: IncomingFile, f: protocol.InlineFrame) -> FrameFile:
        digest, size = await storage.write_frame(
            job_dir, u.name, one_chunk(f.data), expected_sha256=f.sha256
        )
        return file_of(u, digest, size)

    if len(uploads) == 1:  # the usual one-file task, without a task per file
        return [await write(uploads[0], frames[0])]
    return list(await asyncio.gather(*map(write, uploads, frames)))
