"""Submitting and waiting with the asyncio client (:class:`spillway.client.AsyncClient`).

The same steps as :mod:`spillway.client.sync_submit`, awaited: scan the scene with
the package's scanner, hash the files, upload only the blobs the agent lacks,
create the job. A module of its own so that ``spillway submit``, which runs the
synchronous steps, loads neither these functions nor their result record.

    result = await submit_scene(client, Path("shot/scene.json"),
                                SubmitOptions(package="builtin", frames="1-24"))
    print(result.job["id"])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spillway.client.errors import ClientError, SubmissionError
from spillway.client.submission import (
    FINISHED_STATES,
    TRANSIENT_ERRORS,
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
    from spillway.client.http import AgentClient
    from spillway.packages import Scanner

__all__ = ["SubmitResult", "submit_scene", "upload_missing", "wait_for_job"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitResult:
    """The created job and what had to be uploaded for it."""

    job: dict[str, Any]
    manifest: Manifest
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    notes: tuple[str, ...] = ()


async def upload_missing(
    client: AgentClient, manifest: Manifest, *, on_upload: UploadCallback | None = None
) -> tuple[int, int]:
    """Upload the blobs the agent lacks; return (files, bytes) uploaded."""
    by_hash = {e.sha256: e for e in manifest.entries}
    missing = await client.check_blobs(sorted(by_hash))
    files = size = 0
    for digest in missing:
        entry = by_hash.get(digest)
        if entry is None:
            continue  # the agent asked about a hash we did not send; nothing to upload
        if on_upload is not None:
            on_upload(entry)
        try:
            await client.upload_blob(entry.source, entry.sha256)
        except ClientError as err:
            if err.status == 422:
                raise SubmissionError(
                    f"{entry.source} changed while it was being submitted; submit again"
                ) from None
            raise
        files += 1
        size += entry.size
    return files, size


async def submit_scene(
    client: AgentClient,
    scene: Path,
    options: SubmitOptions,
    *,
    assets: Sequence[Path] = (),
    scanner: Scanner | None | bool = True,
    on_upload: UploadCallback | None = None,
) -> SubmitResult:
    """Build the manifest, upload what the agent lacks, and create the job.

    ``scanner=True`` uses the catalog's scanner for the package, ``None``
    or ``False`` skips scanning, and any object with ``async scan(scene)`` is used
    as given.  Raises :class:`SubmissionError` for bad input and
    :class:`~spillway.client.http.ClientError` when the agent fails or refuses.
    """
    package, _ = parse_package_spec(options.package)
    chosen, notes = choose_scanner(package, scanner)
    manifest, options, more_notes = await prepare_submission(
        scene, package, options, assets, chosen
    )
    notes += more_notes
    body = build_job_body(scene, manifest, options)
    files, size = await upload_missing(client, manifest, on_upload=on_upload)
    try:
        job = await client.submit(body)
    except ClientError as err:
        if err.code != "missing_assets":
            raise
        # A blob vanished between the check and the submit (store cleanup); upload once more.
        more_files, more_size = await upload_missing(client, manifest, on_upload=on_upload)
        files, size = files + more_files, size + more_size
        job = await client.submit(body)
    return SubmitResult(
        job=job, manifest=manifest, uploaded_files=files, uploaded_bytes=size, notes=tuple(notes)
    )


async def wait_for_job(
    client: AgentClient,
    job_id: str,
    *,
    poll_s: float = 1.0,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    max_outage_s: float = 60.0,
) -> dict[str, Any]:
    """Wait until the job is done, failed or cancelled; return the JOB.

    Each ``GET /jobs/{id}`` long-polls (:func:`long_poll_s`): it returns as soon as the
    job ends, or after ``poll_s`` with the job as it is.

    ``on_update`` gets every full reply (job, tasks, frames).  The agent may be
    unreachable for up to ``max_outage_s`` (a restart) before the error is raised.
    """
    import asyncio  # here: the synchronous CLI never loads it

    outage_started: float | None = None
    loop = asyncio.get_running_loop()
    wait_s = long_poll_s(poll_s)
    while True:
        asked = loop.time()
        try:
            detail = await client.job(job_id, wait=wait_s)
        except ClientError as err:
            now = loop.time()
            if err.code not in TRANSIENT_ERRORS:
                raise
            outage_started = outage_started if outage_started is not None else now
            if now - outage_started > max_outage_s:
                raise
            await asyncio.sleep(poll_s)
            continue
        outage_started = None
        if on_update is not None:
            on_update(detail)
        job = dict(detail["job"])
        if job.get("state") in FINISHED_STATES:
            return job
        await asyncio.sleep(rest_after(wait_s, loop.time() - asked))
