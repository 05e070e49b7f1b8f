"""The files a task attempt's completion brings: inline frames, and whether all arrived.

A TaskDone may carry its frames inline: written here (all checked before any is
written), or already written durably by a connection worker, whose names and
kinds are checked against the report. Either way they become records for the
completion's transaction. A success report is only one when every frame and
every output file of the attempt reached this site (inline or uploaded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from render_server import protocol

from .connections import ActiveTask
from .errors import BadRequestError, NotFoundError
from .frame_uploads import (
    FrameReads,
    NameOwners,
    check_inline,
    check_names,
    check_task_files,
    incoming,
    inline_records,
    unrecorded_files,
    write_inline,
)
from .job_cache import JobCache
from .storage import FrameStorage
from .store.records import FrameFile, FrameRecord, JobRecord

log = logging.getLogger(__name__)


class CompletionReads(NameOwners, FrameReads, Protocol):
    """The store reads behind a completion's files."""

    async def stored_task_frames(
        self, job_id: str, task_id: int, frames: Sequence[int]
    ) -> set[int]: ...


class CompletionFiles:
    """A TaskDone's inline frames as records, and what a success report still lacks."""

    def __init__(
        self,
        store: CompletionReads,
        storage: FrameStorage,
        jobs: JobCache,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._storage = storage
        self._jobs = jobs
        self._clock = clock
        self.inline_frames = 0
        """Frames received inline in TaskDone and stored (instead of uploaded over HTTP)."""

    async def inline(
        self,
        server_id: str,
        active: ActiveTask,
        frames: list[protocol.InlineFrame],
        written: Sequence[FrameFile] | None,
    ) -> list[FrameRecord]:
        """The records of a TaskDone's inline ``frames``; ``written``: as a connection worker
        stored them (in the frames' order), None: written here. Raises StorageWriteError
        (this site failed), AgentError or FileError (the report's files are refused)."""
        if written is None:
            return await self._write_inline(server_id, active, frames)
        return self._written_inline(server_id, active, frames, written)

    async def job(self, active: ActiveTask) -> JobRecord:
        job = await self._jobs.get(active.job_id)  # only its name and output pattern are used
        if job is None:
            raise NotFoundError(f"no job {active.job_id}")
        return job

    async def _write_inline(
        self, server_id: str, active: ActiveTask, frames: list[protocol.InlineFrame]
    ) -> list[FrameRecord]:
        """Write the files of a TaskDone; all are checked before any is written."""
        uploads = await check_inline(active, frames)
        job = await self.job(active)
        await check_names(self._store, job, uploads)
        job_dir = self._storage.job_dir(job.name, job.id)
        stored = await write_inline(self._storage, job_dir, uploads, frames)
        records = inline_records(server_id, active, uploads, stored, at=self._clock())
        self.inline_frames += len(records)
        log.debug(
            "wrote %d inline files of task %s from %s", len(frames), active.task_id, server_id
        )
        return records

    def _written_inline(
        self,
        server_id: str,
        active: ActiveTask,
        frames: Sequence[protocol.InlineFrame],
        stored: Sequence[FrameFile],
    ) -> list[FrameRecord]:
        """The records of inline files a connection worker wrote (and checked) for the attempt."""
        uploads = [incoming(f.frame, f.name, f.kind) for f in frames]
        if [(f.name, f.kind) for f in stored] != [(u.name, u.kind) for u in uploads]:
            raise BadRequestError("the files stored are not the TaskDone's inline files")
        check_task_files(active.frames, uploads)
        records = inline_records(server_id, active, uploads, stored, at=self._clock())
        self.inline_frames += len(records)
        return records

    async def incomplete(self, active: ActiveTask, outputs: Sequence[protocol.Output]) -> str:
        """Why a success report is not one (frames or files not uploaded); "" when complete."""
        missing = active.missing_frames()
        if missing:
            # Frames uploaded before an agent restart (or while a reconnect was reconciled) are
            # only in the store. Only this task's frames: reading the job's was O(frames in job).
            stored = await self._store.stored_task_frames(active.job_id, active.task_id, missing)
            missing = [f for f in missing if f not in stored]
        if missing:
            return f"render server reported success but frames {missing[:5]} were not uploaded"
        absent = await unrecorded_files(self._store, active, outputs)
        if absent:
            return f"render server reported success but files {absent[:5]} were not uploaded"
        return ""
