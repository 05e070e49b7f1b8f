"""The asyncio client of a site agent: typed records over aiohttp.

The same methods and records as :class:`spillway.client.Client`, awaited. It needs
aiohttp (``pip install 'spillway[async]'``), imported when this module is.

    from spillway.client import AsyncClient, SubmitOptions

    async with AsyncClient("http://127.0.0.1:8700") as farm:
        submitted = await farm.submit_scene(Path("shot/scene.json"),
                                            SubmitOptions(package="builtin", frames="1-24"))
        job = await farm.wait(submitted.job.id)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp  # noqa: F401  (fail here, at import, when the extra is not installed)

from spillway.client import api
from spillway.client.api import Call
from spillway.client.async_submit import submit_scene, wait_for_job
from spillway.client.http import AgentClient
from spillway.client.records import Frame, Health, Job, JobDetail, Peer, Server
from spillway.client.submission import SubmitOptions, UploadCallback
from spillway.client.sync_submit import Submitted

if TYPE_CHECKING:
    from spillway.packages import Scanner

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """One session with a site agent; use as ``async with AsyncClient(url) as client``.

    ``transport`` is the underlying :class:`~spillway.client.http.AgentClient`, which
    answers plain dicts (for code written against it before the typed records).
    """

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.transport = AgentClient(url, token=token, timeout_s=timeout_s)
        self.url = self.transport.url

    async def __aenter__(self) -> AsyncClient:
        await self.transport.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    async def call(self, call: Call[T]) -> T:
        """Run one request of :mod:`spillway.client.api` and return its typed answer."""
        return await self.transport.call(call)

    async def health(self) -> Health:
        return await self.call(api.health())

    async def check_blobs(self, hashes: list[str]) -> list[str]:
        return await self.call(api.check_blobs(hashes)) if hashes else []

    async def submit(self, body: Mapping[str, Any]) -> Job:
        return await self.call(api.submit(body))

    async def jobs(
        self,
        state: str | None = None,
        limit: int = 100,
        *,
        offset: int = 0,
        owner: str | None = None,
        package: str | None = None,
        placement: str | None = None,
        search: str | None = None,
        sort: str | None = None,
    ) -> list[Job]:
        """One page of jobs; the filters are those of :func:`spillway.client.api.jobs`."""
        return await self.call(
            api.jobs(
                state,
                limit,
                offset=offset,
                owner=owner,
                package=package,
                placement=placement,
                search=search,
                sort=sort,
            )
        )

    async def job(self, job_id: str, *, tasks: int | None = None, wait: float = 0.0) -> JobDetail:
        return await self.call(api.job(job_id, tasks=tasks, wait=wait))

    async def job_tasks(
        self, job_id: str, *, offset: int = 0, limit: int = 100, state: str | None = None
    ) -> dict[str, Any]:
        return await self.call(api.job_tasks(job_id, offset=offset, limit=limit, state=state))

    async def control(self, job_id: str, action: str, *, frames: str | None = None) -> Job:
        return await self.call(api.control(job_id, action, frames=frames))

    async def cancel(self, job_id: str) -> Job:
        return await self.control(job_id, "cancel")

    async def pause(self, job_id: str) -> Job:
        return await self.control(job_id, "pause")

    async def resume(self, job_id: str) -> Job:
        return await self.control(job_id, "resume")

    async def retry(self, job_id: str, *, frames: str | None = None) -> Job:
        return await self.control(job_id, "retry", frames=frames)

    async def set_priority(self, job_id: str, priority: int) -> Job:
        return await self.call(api.set_priority(job_id, priority))

    async def server_control(self, server: str, action: str) -> dict[str, Any]:
        return await self.call(api.server_control(server, action))

    async def remove_server(self, server: str) -> dict[str, Any]:
        return await self.call(api.remove_server(server))

    async def task_log(
        self,
        job_id: str,
        *,
        frame: int | None = None,
        task: int | None = None,
        attempt: int | None = None,
        offset: int = 0,
        wait: float = 0.0,
    ) -> dict[str, Any]:
        """Part of a task attempt's log; see :func:`spillway.client.api.task_log`."""
        return await self.call(
            api.task_log(job_id, frame=frame, task=task, attempt=attempt, offset=offset, wait=wait)
        )

    async def frames(self, job_id: str) -> list[Frame]:
        return await self.call(api.frames(job_id))

    async def servers(self, job: str | None = None) -> list[Server]:
        return await self.call(api.servers(job))

    async def peers(self) -> list[Peer]:
        return await self.call(api.peers())

    async def webhooks(self) -> dict[str, Any]:
        """Webhook endpoints with delivery counts, and recent deliveries (JSON dict)."""
        return await self.call(api.webhooks())

    async def resolve_job_id(self, text: str) -> str:
        """The full id of the job ``text`` names: its id, or a unique prefix of its id."""
        candidates = api.prefix_candidates(text)
        if candidates is None:
            return text
        return api.pick_prefix_match(text, await self.call(candidates))

    async def upload_blob(self, path: Path, sha256: str) -> dict[str, Any]:
        return await self.transport.upload_blob(path, sha256)

    async def download_frame(
        self,
        job_id: str,
        frame: int,
        dest: Path,
        *,
        sha256: str | None = None,
        replace: bool = True,
        name: str | None = None,
    ) -> int:
        """One rendered frame (its main file, or its file ``name``) to ``dest``, verified."""
        return await self.transport.download_frame(
            job_id, frame, dest, sha256=sha256, replace=replace, name=name
        )

    async def submit_scene(
        self,
        scene: Path,
        options: SubmitOptions,
        *,
        assets: Sequence[Path] = (),
        scanner: Scanner | None | bool = True,
        on_upload: UploadCallback | None = None,
    ) -> Submitted:
        """Scan, upload what the agent lacks, create the job (as ``spillway submit``)."""
        result = await submit_scene(
            self.transport, scene, options, assets=assets, scanner=scanner, on_upload=on_upload
        )
        return Submitted(
            job=Job.from_json(result.job),
            manifest=result.manifest,
            uploaded_files=result.uploaded_files,
            uploaded_bytes=result.uploaded_bytes,
            notes=result.notes,
        )

    async def wait(
        self,
        job_id: str,
        *,
        poll_s: float = 1.0,
        on_update: Callable[[JobDetail], None] | None = None,
        max_outage_s: float = 60.0,
    ) -> Job:
        """Wait until the job is done, failed or cancelled (long polls, answered at its end);
        return it."""
        hook = None if on_update is None else (lambda d: on_update(JobDetail.from_json(d)))
        job = await wait_for_job(
            self.transport, job_id, poll_s=poll_s, on_update=hook, max_outage_s=max_outage_s
        )
        return Job.from_json(job)
