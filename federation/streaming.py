"""Origin side: fetch a forwarded job's frames as its peer reports them done.

Each progress snapshot lists the remote's done tasks with their frames' sha256.
For each such task not yet done here, :class:`FrameStream` fetches its frames
in the background (at most ``STREAM_CONCURRENCY`` frames at once over all
jobs), verifying each hash while writing it atomically into this site's storage,
then records the frames and marks the task done in one transaction fenced on the
placement epoch (:meth:`~site_agent.lifecycle.Lifecycle.record_relayed_frames`).
Snapshots carry only what changed (:mod:`federation.progress_delta`), so a done
task is listed until the origin acknowledges it, then no more: a fetch that failed
is remembered and tried again with the job's next snapshot. Nothing here needs to
survive a restart: the job's completion fetches whatever is still missing (frames
already on disk with the right hash are not fetched again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import quote

from federation.client import PeerRefusedError
from federation.errors import FederationError
from federation.frame_file import FrameTarget
from federation.interfaces import FrameDownloader, FrameWriter, UsageLedger
from federation.peers import PeerConfig
from federation.protocol import FrameFileOutput, FrameOutput
from site_agent.errors import UnavailableError
from site_agent.files import FileError, HashMismatchError, StorageWriteError, file_sha256
from site_agent.storage import frame_file_name, stored_name
from site_agent.store.records import FrameFile, FrameRecord, JobRecord, RelayedTask
from spillway.core.records import FileKind

log = logging.getLogger(__name__)

STREAM_CONCURRENCY = 4
"""Frames fetched at once while jobs run (the final fetch has its own bound)."""


class FetchError(UnavailableError):
    """Frames of a remote job could not be fetched yet; the remote retries."""


class BadFrameError(Exception):
    """A frame of a remote job can never be fetched as reported (corrupt, refused)."""


class RelayedFrames(Protocol):
    """The site's lifecycle op that records a task's fetched frames."""

    async def record_relayed_frames(
        self,
        job_id: str,
        *,
        epoch: int,
        task: RelayedTask,
        frames: Sequence[FrameRecord],
        at: float,
    ) -> bool: ...


async def fetch_frame(
    client: FrameDownloader,
    writer: FrameWriter,
    peer: PeerConfig,
    remote_job_id: str,
    frame: FrameOutput,
    job_dir: Path,
    name: str,
) -> None:
    """Fetch one frame's files into ``job_dir`` (main file as ``name``), hash-verified;
    FetchError or BadFrameError."""
    path = f"/fed/v1/jobs/{remote_job_id}/frames/{frame.frame}"
    written: list[Path] = []
    try:
        # The frame's other files first, its main file last, as a render server uploads them.
        wanted = [(f"{path}/files/{quote(x.name)}", _file_name(x), x.sha256) for x in frame.files]
        wanted.append((path, name, frame.sha256))
        for url, file_name, sha256 in wanted:
            # Written and hashed by the thread that receives it; durable once committed.
            target = FrameTarget(
                writer.frame_path(job_dir, file_name),
                expected_sha256=sha256,
                max_bytes=writer.max_frame_bytes,
            )
            try:
                await client.download(peer, url, target)
                await target.commit()
            except BaseException:
                target.discard()
                raise
            written.append(target.dest)
    except StorageWriteError as exc:  # this site's disk: try again later
        raise FetchError(f"cannot store frame {frame.frame}: {exc}") from exc
    except HashMismatchError as exc:
        # The remote's bytes do not match the hash it recorded: fetching again gives the
        # same bytes. The target left nothing of that file; the frame's files fetched
        # before it (its preview, other passes) go too: a refused frame leaves nothing.
        _discard(written)
        raise BadFrameError(f"failed verification: {exc}") from exc
    except PeerRefusedError as exc:
        _discard(written)
        raise BadFrameError(f"refused by {peer.name}: {exc}") from exc
    except (FileError, FederationError) as exc:
        raise FetchError(f"cannot fetch frame {frame.frame} from {peer.name}: {exc}") from exc
    except ValueError as exc:  # a file name no local job folder can hold
        raise BadFrameError(f"has an unusable file name: {exc}") from exc


def _discard(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _has(path: Path, sha256: str) -> bool:
    return path.is_file() and file_sha256(path) == sha256


def main_name(job: JobRecord, frame: FrameOutput) -> str:
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


def has_frame_files(job_dir: Path, name: str, frame: FrameOutput) -> bool:
    """Whether every file of the frame is here already (reads the files)."""
    try:
        others = [(_file_name(x), x.sha256) for x in frame.files]
    except ValueError:
        return False
    return all(_has(job_dir / n, h) for n, h in [(name, frame.sha256), *others])


@dataclass(frozen=True, slots=True, kw_only=True)
class _Fetch:
    """A task's frames to fetch again."""

    peer: PeerConfig
    job: JobRecord
    remote_job_id: str
    task: RelayedTask
    outputs: tuple[FrameOutput, ...]


class FrameStream:
    """Background fetches of the frames of remote-done tasks, per (job, task index)."""

    def __init__(
        self,
        *,
        client: FrameDownloader,
        frames: FrameWriter,
        jobs: RelayedFrames,
        clock: Callable[[], float] = time.time,
        concurrency: int = STREAM_CONCURRENCY,
        usage: UsageLedger | None = None,
    ) -> None:
        self._usage = usage
        self._client = client
        self._frames = frames
        self._jobs = jobs
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._failed: dict[tuple[str, int], _Fetch] = {}

    def start(
        self,
        peer: PeerConfig,
        job: JobRecord,
        remote_job_id: str,
        task: RelayedTask,
        outputs: Sequence[FrameOutput],
    ) -> None:
        """Fetch ``outputs`` (the frames of a task done at ``peer``) unless already under way."""
        key = (job.id, task.index)
        if key in self._running:
            return
        self._failed.pop(key, None)
        fetch = asyncio.create_task(
            self._fetch_task(peer, job, remote_job_id, task, outputs),
            name=f"fed-stream-{job.id}-{task.index}",
        )
        self._running[key] = fetch
        fetch.add_done_callback(lambda _: self._running.pop(key, None))

    def retry(self, job_id: str) -> None:
        """Fetch again what failed for the job (a later snapshot may not list it again)."""
        for (failed_job, _), fetch in list(self._failed.items()):
            if failed_job == job_id:
                self.start(fetch.peer, fetch.job, fetch.remote_job_id, fetch.task, fetch.outputs)

    def forget(self, job_id: str) -> None:
        """The job ended: its completion fetched (or gave up on) what is missing."""
        for key in [k for k in self._failed if k[0] == job_id]:
            del self._failed[key]

    async def drain(self, job_id: str) -> None:
        """Wait for the job's fetches under way (before its final fetch takes over)."""
        tasks = [t for (j, _), t in self._running.items() if j == job_id]
        if tasks:
            await asyncio.wait(tasks)

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _account(self, peer: PeerConfig, job: JobRecord, frame: FrameOutput) -> None:
        """Accounting: the frame's bytes fetched from the peer (the completion counts only
        what it fetches itself, so each frame is counted once, as the peer counts it served)."""
        if self._usage is not None:
            await self._usage.record_transfer(
                job_id=job.id,
                peer=peer.name,
                at=self._clock(),
                bytes_in=frame.size + sum(x.size for x in frame.files),
            )

    async def _fetch_task(
        self,
        peer: PeerConfig,
        job: JobRecord,
        remote_job_id: str,
        task: RelayedTask,
        outputs: Sequence[FrameOutput],
    ) -> None:
        job_dir = self._frames.job_dir(job.name, job.id)
        records: list[FrameRecord] = []
        try:
            for output in sorted(outputs, key=lambda f: f.frame):
                name = main_name(job, output)
                async with self._slots:
                    here = await asyncio.to_thread(has_frame_files, job_dir, name, output)
                    if not here:
                        await fetch_frame(
                            self._client, self._frames, peer, remote_job_id, output, job_dir, name
                        )
                        await self._account(peer, job, output)
                records.append(
                    FrameRecord(
                        job_id=job.id,
                        frame=output.frame,
                        task_id=None,
                        name=name,
                        sha256=output.sha256,
                        size=output.size,
                        server_id=peer.name,
                        rendered_at=task.finished_at or self._clock(),
                        files=tuple(
                            FrameFile(name=x.name, sha256=x.sha256, size=x.size, kind=x.kind)
                            for x in output.files
                        ),
                    )
                )
            await self._jobs.record_relayed_frames(
                job.id, epoch=job.placement_epoch, task=task, frames=records, at=self._clock()
            )
        except (FetchError, BadFrameError) as exc:
            # The next snapshot tries again; the job's completion decides for good.
            self._failed[(job.id, task.index)] = _Fetch(
                peer=peer, job=job, remote_job_id=remote_job_id, task=task, outputs=tuple(outputs)
            )
            log.warning(
                "job %s: frames of task %d not fetched from %s yet: %s",
                job.id,
                task.index,
                peer.name,
                exc,
            )
        except Exception:  # a background fetch must not die silently
            log.exception("job %s: fetching frames of task %d failed", job.id, task.index)
