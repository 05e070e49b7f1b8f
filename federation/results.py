"""Origin side: progress and completion of forwarded jobs, and fetching their frames back.

A final notification (or a reconciliation poll that finds the remote job done)
makes the origin fetch every frame from the remote, verify its sha256 while
writing it atomically into this site's storage under the origin job's folder
(the same layout as local jobs), and then finish the job in one transaction
fenced on the placement epoch. Only then is the notification acknowledged: if a
fetch fails the remote is answered 503 and retries from its outbox, so both
ends are restart-safe. Frames already on disk with the right hash are not
fetched again, and up to ``FETCH_CONCURRENCY`` are fetched at once, so a retried
notification for a large job carries on where the last one stopped.

A frame that fails verification (the remote's bytes do not match the hash it
reported) or that the remote refuses outright will not get better by retrying:
the origin records the good frames and fails the job naming the bad ones, and
acknowledges, so neither side loops. Transient failures (the peer unavailable,
this site's storage full) still make the remote retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from federation.client import PeerRefusedError
from federation.errors import FederationError
from federation.interfaces import (
    FinishedJobs,
    ForwardContact,
    FrameDownloader,
    FrameWriter,
    PeerContact,
    UsageLedger,
)
from federation.peers import PeerConfig
from federation.protocol import FrameFileOutput, FrameOutput, Notify, NotifyState
from federation.store import ForwardRow
from scheduler.frames import parse_frames
from site_agent.errors import NotFoundError, UnavailableError
from site_agent.files import FileError, HashMismatchError, StorageWriteError, file_sha256
from site_agent.storage import frame_file_name, stored_name
from site_agent.store.records import FrameFile, FrameRecord, JobRecord, JobState
from site_agent.store.usage import UsageEntry, UsageSource
from spillway.core.records import FileKind

log = logging.getLogger(__name__)

_STATES = {"done": JobState.DONE, "failed": JobState.FAILED, "cancelled": JobState.CANCELLED}
_FINAL = {
    NotifyState.DONE: JobState.DONE,
    NotifyState.FAILED: JobState.FAILED,
    NotifyState.CANCELLED: JobState.CANCELLED,
}


FETCH_CONCURRENCY = 8
"""Frames of one finished remote job fetched at once (they are made durable in shared groups)."""


class FetchError(UnavailableError):
    """Frames of a finished remote job could not be fetched yet; the remote retries."""


class BadFrameError(Exception):
    """A frame of a finished remote job can never be fetched as reported (corrupt, refused)."""


class Results:
    """The origin side of a forwarded job's end: notifications, polls, fetching frames back."""

    def __init__(
        self,
        *,
        name: str,
        jobs: FinishedJobs,
        forwards: ForwardContact,
        client: FrameDownloader,
        frames: FrameWriter,
        contact: PeerContact,
        usage: UsageLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._usage = usage
        self._jobs = jobs
        self._forwards = forwards
        self._client = client
        self._frames = frames
        self._contact = contact
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    async def notify(self, peer: PeerConfig, msg: Notify) -> None:
        """Apply a notification from ``peer``; raises to make the remote retry."""
        job = await self._jobs.get_job(msg.origin_job_id)
        if job is None:
            raise NotFoundError(f"no job {msg.origin_job_id!r} at {self._name}")
        if job.placement != peer.name or job.placement_epoch != msg.epoch:
            log.info(
                "ignored %s notification for job %s from %s: epoch %d is not the current "
                "placement (%s, epoch %d)",
                msg.state.value,
                job.id,
                peer.name,
                msg.epoch,
                job.placement,
                job.placement_epoch,
            )
            return
        await self._forwards.forward_contact(
            job.id,
            msg.epoch,
            remote_state=msg.state.value,
            frames_done=msg.frames_done,
            at=self._clock(),
        )
        self._contact.contact_ok(peer.name)
        if msg.state == NotifyState.RUNNING:
            await self._jobs.remote_start(job.id, at=self._clock())
            return
        await self.finish(
            peer,
            job,
            epoch=msg.epoch,
            remote_job_id=msg.remote_job_id,
            state=_FINAL[msg.state],
            frames=msg.frames,
            error=msg.error,
            spent=(msg.core_seconds, msg.failed_attempts, msg.frames_done),
        )

    async def apply_status(self, peer: PeerConfig, row: ForwardRow, status: dict[str, Any]) -> None:
        """A poll found the remote job finished: act as on its final notification."""
        job = await self._jobs.get_job(row.job_id)
        if job is None or row.remote_job_id is None:
            return
        frames = tuple(FrameOutput.from_wire(f, "status.frames") for f in status.get("frames", ()))
        log.info("poll: job %s finished at %s (%s); applying", job.id, peer.name, status["state"])
        try:
            await self._finish_polled(peer, job, row, status, frames)
        except FetchError as exc:  # the next poll (or the remote's notification) tries again
            log.warning("poll: job %s: %s; trying again later", job.id, exc)

    async def _finish_polled(
        self,
        peer: PeerConfig,
        job: JobRecord,
        row: ForwardRow,
        status: dict[str, Any],
        frames: Sequence[FrameOutput],
    ) -> None:
        assert row.remote_job_id is not None
        await self.finish(
            peer,
            job,
            epoch=row.epoch,
            remote_job_id=row.remote_job_id,
            state=_STATES[str(status["state"])],
            frames=frames,
            error=str(status.get("error", "")),
            spent=(
                float(status.get("core_seconds", 0.0)),
                int(status.get("failed_attempts", 0)),
                int(status.get("frames_done", 0)),
            ),
        )

    async def finish(
        self,
        peer: PeerConfig,
        job: JobRecord,
        *,
        epoch: int,
        remote_job_id: str,
        state: JobState,
        frames: Sequence[FrameOutput],
        error: str,
        spent: tuple[float, int, int] = (0.0, 0, 0),
    ) -> bool:
        """Fetch the frames (when done) and finish the job; True if this call finished it.

        ``spent``: the core-seconds, failed attempts and frames rendered the peer reported,
        recorded in this site's ledger with the job's end."""
        async with self._locks.setdefault(job.id, asyncio.Lock()):
            current = await self._jobs.get_job(job.id)
            if current is None or current.state.finished or current.placement_epoch != epoch:
                return False
            records: list[FrameRecord] = []
            if state == JobState.DONE:
                expected = set(parse_frames(job.frames))
                if {f.frame for f in frames} != expected:
                    raise FetchError(
                        f"{peer.name} reported job {job.id} done with "
                        f"{len(frames)} of {len(expected)} frames"
                    )
                records, bad = await self._fetch_all(peer, job, remote_job_id, frames)
                if bad:
                    state, error = JobState.FAILED, _bad_frames_error(bad)
            elif not error:
                error = f"the job {state.value} at {peer.name}"
            now = self._clock()
            done = await self._jobs.finish_forwarded_job(
                job.id,
                epoch=epoch,
                state=state,
                frames=records,
                error="" if state == JobState.DONE else f"at {peer.name}: {error}",
                at=now,
                hook=self._forwards.forward_state_hook(job.id, epoch, "finished", at=now),
                usage=UsageEntry(
                    job_id=job.id,
                    peer=peer.name,
                    source=UsageSource.REMOTE,
                    at=now,
                    core_seconds=spent[0],
                    failed_attempts=spent[1],
                    frames=spent[2],
                ),
            )
        if done:
            log.info(
                "forwarded job %s %s at %s: %d frames in %s",
                job.id,
                state.value,
                peer.name,
                len(records),
                self._frames.job_dir(job.name, job.id),
            )
        return done

    async def _fetch_all(
        self, peer: PeerConfig, job: JobRecord, remote_job_id: str, frames: Sequence[FrameOutput]
    ) -> tuple[list[FrameRecord], dict[int, str]]:
        """Fetch the frames not already here, ``FETCH_CONCURRENCY`` at a time.

        Returns the records of the good frames and, per frame, why it can never be
        fetched (BadFrameError). The first transient failure (FetchError) stops the rest.
        """
        job_dir = self._frames.job_dir(job.name, job.id)
        ordered = sorted(frames, key=lambda f: f.frame)
        names = [_main_name(job, f) for f in ordered]
        # Hashing what is already on disk (a retried notification) reads files: not on the event loop.
        present = await asyncio.to_thread(
            lambda: [_has_all(job_dir, name, f) for f, name in zip(ordered, names, strict=True)]
        )
        missing = [
            (f, name) for f, name, here in zip(ordered, names, present, strict=True) if not here
        ]
        slots = asyncio.Semaphore(FETCH_CONCURRENCY)
        bad: dict[int, str] = {}

        async def fetch(frame: FrameOutput, name: str) -> None:
            async with slots:
                try:
                    await self._fetch_one(peer, remote_job_id, frame, job_dir, name)
                except BadFrameError as exc:
                    bad[frame.frame] = str(exc)
                    return
            if self._usage is not None:  # accounting: frame bytes fetched from the peer
                await self._usage.record_transfer(
                    job_id=job.id,
                    peer=peer.name,
                    at=self._clock(),
                    bytes_in=frame.size + sum(x.size for x in frame.files),
                )

        try:
            async with asyncio.TaskGroup() as group:
                for frame, name in missing:
                    group.create_task(fetch(frame, name))
        except BaseExceptionGroup as failures:
            raise _first_leaf(failures) from None
        log.info(
            "fetched %d frames of job %s from %s (%d already here, %d bad)",
            len(missing) - len(bad),
            job.id,
            peer.name,
            len(frames) - len(missing),
            len(bad),
        )
        records = [
            FrameRecord(
                job_id=job.id,
                frame=f.frame,
                task_id=None,
                name=name,
                sha256=f.sha256,
                size=f.size,
                server_id=peer.name,
                rendered_at=self._clock(),
                files=tuple(
                    FrameFile(name=x.name, sha256=x.sha256, size=x.size, kind=x.kind)
                    for x in f.files
                ),
            )
            for f, name in zip(ordered, names, strict=True)
            if f.frame not in bad
        ]
        return records, bad

    async def _fetch_one(
        self, peer: PeerConfig, remote_job_id: str, frame: FrameOutput, job_dir: Path, name: str
    ) -> None:
        path = f"/fed/v1/jobs/{remote_job_id}/frames/{frame.frame}"
        try:
            # The frame's other files first, its main file last, as a render server uploads them.
            wanted = [
                (f"{path}/files/{quote(x.name)}", _file_name(x), x.sha256) for x in frame.files
            ]
            wanted.append((path, name, frame.sha256))
            for url, file_name, sha256 in wanted:

                async def write(
                    chunks: AsyncIterable[bytes], n: str = file_name, h: str = sha256
                ) -> None:
                    await self._frames.write_frame(job_dir, n, chunks, expected_sha256=h)

                await self._client.download(peer, url, write)
        except StorageWriteError as exc:  # this site's disk: try again later
            raise FetchError(f"cannot store frame {frame.frame}: {exc}") from exc
        except HashMismatchError as exc:
            # The remote's bytes do not match the hash it recorded: fetching again gives the
            # same bytes. write_atomic left nothing behind.
            raise BadFrameError(f"failed verification: {exc}") from exc
        except PeerRefusedError as exc:
            raise BadFrameError(f"refused by {peer.name}: {exc}") from exc
        except (FileError, FederationError) as exc:
            raise FetchError(f"cannot fetch frame {frame.frame} from {peer.name}: {exc}") from exc
        except ValueError as exc:  # a file name no local job folder can hold
            raise BadFrameError(f"has an unusable file name: {exc}") from exc


def _bad_frames_error(bad: dict[int, str]) -> str:
    """The job's error naming its bad frames (the first few) and the first reason."""
    numbers = sorted(bad)
    shown = ", ".join(str(n) for n in numbers[:10]) + (", ..." if len(numbers) > 10 else "")
    return (
        f"{len(numbers)} frame(s) could not be fetched: {shown}; frame {numbers[0]} "
        f"{bad[numbers[0]]}; the other frames were fetched and are recorded here"
    )


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first failure of a task group, as callers expect it (FetchError answers 503)."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _has(path: Path, sha256: str) -> bool:
    return path.is_file() and file_sha256(path) == sha256


def _main_name(job: JobRecord, frame: FrameOutput) -> str:
    """The remote's name for the frame's main file when it is a plain file name (the
    renderer's); else the name an agent without named outputs gives it."""
    try:
        return stored_name(frame.name, FileKind.MAIN)
    except FileError:
        return frame_file_name(job.output_name, frame.frame, job.output_ext)


def _file_name(file: FrameFileOutput) -> str:
    """Where another file of a frame goes in the job folder; ValueError for a name that
    is not the remote's plain name (or preview name) for it."""
    try:
        name = stored_name(PurePosixPath(file.name).name, file.kind)
    except FileError as exc:
        raise ValueError(str(exc)) from None
    if name != file.name:
        raise ValueError(f"{file.name!r} is not a {file.kind.value} file's name")
    return name


def _has_all(job_dir: Path, name: str, frame: FrameOutput) -> bool:
    """Whether every file of the frame is here already (a retried notification)."""
    try:
        others = [(_file_name(x), x.sha256) for x in frame.files]
    except ValueError:
        return False
    return all(_has(job_dir / n, h) for n, h in [(name, frame.sha256), *others])
