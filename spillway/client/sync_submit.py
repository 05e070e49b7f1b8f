"""Submitting and waiting with the synchronous client (what ``spillway submit`` runs).

The same steps as :func:`spillway.client.async_submit.submit_scene`: scan the
scene with the package's scanner, hash the files, upload only the blobs the
agent lacks (several at once on their own connections), create the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from spillway.client.errors import ClientError, SubmissionError
from spillway.client.submission import (
    FINISHED_STATES,
    TRANSIENT_ERRORS,
    LocalFile,
    Manifest,
    SubmitOptions,
    UploadCallback,
    build_job_body,
    choose_scanner,
    long_poll_s,
    parse_package_spec,
    prepare_submission,
    rest_after,
)

if TYPE_CHECKING:
    from spillway.client.detail_records import JobDetail
    from spillway.client.records import Job
    from spillway.packages import Scanner

__all__ = ["Submitted", "SyncAgent", "run_coroutine", "submit_scene", "upload_missing", "wait"]

T = TypeVar("T")


class SyncAgent(Protocol):
    """What submitting needs of a client (:class:`spillway.client.Client` fits)."""

    def check_blobs(self, hashes: list[str]) -> list[str]: ...
    def upload_blob(self, path: Path, sha256: str) -> dict[str, Any]: ...
    def submit(self, body: dict[str, Any]) -> Job: ...
    def job(self, job_id: str, *, tasks: int | None = None, wait: float = 0.0) -> JobDetail: ...
    def map_parallel(
        self, fn: Callable[[Any], int], items: list[Any], *, workers: int = 4
    ) -> list[int]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Submitted:
    """The created job and what had to be uploaded for it."""

    job: Job
    manifest: Manifest
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    notes: tuple[str, ...] = ()


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from synchronous code, without an event loop when it never waits.

    The scanners are coroutines because some run a program (Blender); most only
    read files and finish on the first step, so the CLI need not load asyncio for
    them. One that waits, or fails outside a loop, is run again under ``asyncio.run``
    (scanners do nothing before their first wait that matters to do twice).
    """
    coro = make()
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except SubmissionError:
        raise
    except Exception:  # noqa: S110 - e.g. no running loop: run it properly below
        pass
    finally:
        coro.close()
    import asyncio

    return asyncio.run(make())


def upload_missing(
    client: SyncAgent,
    manifest: Manifest,
    *,
    on_upload: UploadCallback | None = None,
    workers: int = 4,
) -> tuple[int, int]:
    """Upload the blobs the agent lacks, several at once; return (files, bytes) uploaded."""
    by_hash = {e.sha256: e for e in manifest.entries}
    todo = [by_hash[d] for d in client.check_blobs(sorted(by_hash)) if d in by_hash]

    def one(entry: LocalFile) -> int:
        if on_upload is not None:
            on_upload(entry)
        try:
            client.upload_blob(entry.source, entry.sha256)
        except ClientError as err:
            if err.status == 422:
                raise SubmissionError(
                    f"{entry.source} changed while it was being submitted; submit again"
                ) from None
            raise
        return entry.size

    sizes = client.map_parallel(one, todo, workers=workers)
    return len(sizes), sum(sizes)


def submit_scene(
    client: SyncAgent,
    scene: Path,
    options: SubmitOptions,
    *,
    assets: Sequence[Path] = (),
    scanner: Scanner | None | bool = True,
    on_upload: UploadCallback | None = None,
) -> Submitted:
    """Build the manifest, upload what the agent lacks, and create the job.

    ``scanner=True`` uses the catalog's scanner for the package, ``None`` or
    ``False`` skips scanning, any object with ``async scan(scene)`` is used as given.
    """
    package, _ = parse_package_spec(options.package)
    chosen, notes = choose_scanner(package, scanner)
    asked = options
    manifest, options, more_notes = run_coroutine(
        lambda: prepare_submission(scene, package, asked, assets, chosen)
    )
    notes += more_notes
    body = build_job_body(scene, manifest, options)
    files, size = upload_missing(client, manifest, on_upload=on_upload)
    try:
        job = client.submit(body)
    except ClientError as err:
        if err.code != "missing_assets":
            raise
        # A blob vanished between the check and the submit (store cleanup); upload once more.
        more_files, more_size = upload_missing(client, manifest, on_upload=on_upload)
        files, size = files + more_files, size + more_size
        job = client.submit(body)
    return Submitted(
        job=job, manifest=manifest, uploaded_files=files, uploaded_bytes=size, notes=tuple(notes)
    )


def wait(
    client: SyncAgent,
    job_id: str,
    *,
    poll_s: float = 1.0,
    on_update: Callable[[JobDetail], None] | None = None,
    max_outage_s: float = 60.0,
) -> Job:
    """Wait until the job is done, failed or cancelled; return it.

    Each request long-polls (:func:`~spillway.client.submission.long_poll_s`): it
    returns as soon as the job ends, or after ``poll_s`` with the job as it is.

    ``on_update`` gets every answer's detail. The agent may be unreachable for up to
    ``max_outage_s`` (a restart) before the error is raised.
    """
    outage_started: float | None = None
    wait_s = long_poll_s(poll_s)
    while True:
        asked = time.monotonic()
        try:
            detail = client.job(job_id, wait=wait_s)
        except ClientError as err:
            now = time.monotonic()
            if err.code not in TRANSIENT_ERRORS:
                raise
            outage_started = outage_started if outage_started is not None else now
            if now - outage_started > max_outage_s:
                raise
            time.sleep(poll_s)
            continue
        outage_started = None
        if on_update is not None:
            on_update(detail)
        if detail.job.state in FINISHED_STATES:
            return detail.job
        time.sleep(rest_after(wait_s, time.monotonic() - asked))
