"""Origin side: fetching every frame of a finished remote job (its completion).

Frames already on disk with the right hash are not fetched again, and up to
``FETCH_CONCURRENCY`` are fetched at once (:func:`~federation.streaming.fetch_frame`:
written and hashed by the thread that receives them), so a retried notification
for a large job carries on where the last one stopped. A frame that fails
verification or that the remote refuses outright is reported bad (it will not
get better by retrying); the first transient failure stops the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from federation.interfaces import FrameDownloader, FrameWriter, UsageLedger
from federation.peers import PeerConfig
from federation.protocol import FrameOutput
from federation.streaming import BadFrameError, fetch_frame, has_frame_files, main_name
from site_agent.store.records import FrameFile, FrameRecord, JobRecord

log = logging.getLogger(__name__)

FETCH_CONCURRENCY = 8
"""Frames of one finished remote job fetched at once (they are made durable in shared groups)."""


async def fetch_all(
    client: FrameDownloader,
    writer: FrameWriter,
    peer: PeerConfig,
    job: JobRecord,
    remote_job_id: str,
    frames: Sequence[FrameOutput],
    *,
    usage: UsageLedger | None,
    clock: Callable[[], float],
) -> tuple[list[FrameRecord], dict[int, str]]:
    """Fetch the frames not already here, ``FETCH_CONCURRENCY`` at a time.

    Returns the records of the good frames and, per frame, why it can never be
    fetched (BadFrameError). The first transient failure (FetchError) stops the rest.
    """
    job_dir = writer.job_dir(job.name, job.id)
    ordered = sorted(frames, key=lambda f: f.frame)
    names = [main_name(job, f) for f in ordered]
    # Hashing what is already on disk (a retried notification) reads files: not on the event loop.
    present = await asyncio.to_thread(
        lambda: [has_frame_files(job_dir, name, f) for f, name in zip(ordered, names, strict=True)]
    )
    missing = [(f, name) for f, name, here in zip(ordered, names, present, strict=True) if not here]
    slots = asyncio.Semaphore(FETCH_CONCURRENCY)
    bad: dict[int, str] = {}

    async def fetch(frame: FrameOutput, name: str) -> None:
        async with slots:
            try:
                await fetch_frame(client, writer, peer, remote_job_id, frame, job_dir, name)
            except BadFrameError as exc:
                bad[frame.frame] = str(exc)
                return
        if usage is not None:  # accounting: frame bytes fetched from the peer
            await usage.record_transfer(
                job_id=job.id,
                peer=peer.name,
                at=clock(),
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
            rendered_at=clock(),
            files=tuple(
                FrameFile(name=x.name, sha256=x.sha256, size=x.size, kind=x.kind) for x in f.files
            ),
        )
        for f, name in zip(ordered, names, strict=True)
        if f.frame not in bad
    ]
    return records, bad


def bad_frames_error(bad: dict[int, str]) -> str:
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
