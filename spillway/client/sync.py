"""The synchronous client of a site agent, over the standard library (:mod:`spillway.client.transport`).

It loads no third-party HTTP stack, so a script or the ``spillway`` command
starts fast. One keep-alive connection per thread; every call has a timeout;
errors are :mod:`spillway.client.errors` classes whose message says what to do.

    from spillway.client import Client

    with Client("http://127.0.0.1:8700", token=None) as farm:
        for job in farm.jobs(state="running"):
            print(job.id, job.name, job.progress.frames_done, "/", job.frame_count)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from spillway.client import api
from spillway.client.api import Call, parse_reply
from spillway.client.errors import ClientError, NotFound
from spillway.client.transport import FrameSink, Transport

if TYPE_CHECKING:
    from spillway.client.detail_records import Frame, JobDetail
    from spillway.client.farm_records import Health, Peer, Server
    from spillway.client.records import Job
    from spillway.client.submission import SubmitOptions, UploadCallback
    from spillway.client.sync_submit import Submitted
    from spillway.packages import Scanner

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A session with one site agent; use as ``with Client(url) as client:``.

    Safe to share between threads: each thread gets its own connection.
    """

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        self._transport = Transport(url, token, timeout_s)
        self.url = self._transport.url
        self.token = self._transport.token
        self.timeout_s = timeout_s

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection (idempotent); the client reconnects if used again."""
        self._transport.close()

    # --- the API, one line per endpoint (requests are built in spillway.client.api) ----------

    def call(self, call: Call[T]) -> T:
        """Run one request of :mod:`spillway.client.api` and return its typed answer."""
        status, body = self._transport.exchange(
            call.method, call.path, call.params, call.body, wait_s=call.wait_s
        )
        return parse_reply(call, body, self.url)

    def health(self) -> Health:
        return self.call(api.health())

    def check_blobs(self, hashes: list[str]) -> list[str]:
        return self.call(api.check_blobs(hashes)) if hashes else []

    def submit(self, body: Mapping[str, Any]) -> Job:
        return self.call(api.submit(body))

    def jobs(
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
        return self.call(
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

    def job(self, job_id: str, *, tasks: int | None = None, wait: float = 0.0) -> JobDetail:
        return self.call(api.job(job_id, tasks=tasks, wait=wait))

    def job_tasks(
        self, job_id: str, *, offset: int = 0, limit: int = 100, state: str | None = None
    ) -> dict[str, Any]:
        return self.call(api.job_tasks(job_id, offset=offset, limit=limit, state=state))

    def control(self, job_id: str, action: str, *, frames: str | None = None) -> Job:
        return self.call(api.control(job_id, action, frames=frames))

    def cancel(self, job_id: str) -> Job:
        return self.control(job_id, "cancel")

    def pause(self, job_id: str) -> Job:
        return self.control(job_id, "pause")

    def resume(self, job_id: str) -> Job:
        return self.control(job_id, "resume")

    def retry(self, job_id: str, *, frames: str | None = None) -> Job:
        return self.control(job_id, "retry", frames=frames)

    def set_priority(self, job_id: str, priority: int) -> Job:
        return self.call(api.set_priority(job_id, priority))

    def server_control(self, server: str, action: str) -> dict[str, Any]:
        return self.call(api.server_control(server, action))

    def remove_server(self, server: str) -> dict[str, Any]:
        return self.call(api.remove_server(server))

    def task_log(
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
        return self.call(
            api.task_log(job_id, frame=frame, task=task, attempt=attempt, offset=offset, wait=wait)
        )

    def frames(self, job_id: str) -> list[Frame]:
        return self.call(api.frames(job_id))

    def servers(self, job: str | None = None) -> list[Server]:
        return self.call(api.servers(job))

    def peers(self) -> list[Peer]:
        return self.call(api.peers())

    def webhooks(self) -> dict[str, Any]:
        """Webhook endpoints with delivery counts, and recent deliveries (JSON dict)."""
        return self.call(api.webhooks())

    def submit_scene(
        self,
        scene: Path,
        options: SubmitOptions,
        *,
        assets: Sequence[Path] = (),
        scanner: Scanner | None | bool = True,
        on_upload: UploadCallback | None = None,
    ) -> Submitted:
        """Scan, upload what the agent lacks (several files at once), create the job."""
        from spillway.client import sync_submit  # scanning and hashing: only to submit

        return sync_submit.submit_scene(
            self, scene, options, assets=assets, scanner=scanner, on_upload=on_upload
        )

    def wait(
        self,
        job_id: str,
        *,
        poll_s: float = 1.0,
        on_update: Callable[[JobDetail], None] | None = None,
        max_outage_s: float = 60.0,
    ) -> Job:
        """Wait until the job is done, failed or cancelled (long polls, answered at its end);
        return it."""
        from spillway.client import sync_submit

        return sync_submit.wait(
            self, job_id, poll_s=poll_s, on_update=on_update, max_outage_s=max_outage_s
        )

    def resolve_job_id(self, text: str) -> str:
        """The full id of the job ``text`` names: its id, or a unique prefix of its id."""
        candidates = api.prefix_candidates(text)
        if candidates is None:
            return text
        return api.pick_prefix_match(text, self.call(candidates))

    # --- streaming ----------------------------------------------------------------------------

    def upload_blob(self, path: Path, sha256: str) -> dict[str, Any]:
        """Stream one file to the asset store; the agent verifies the hash (422 if not)."""
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            _, body = self._transport.exchange(
                "PUT", api.path("blobs", sha256), None, None, stream=stream, headers=headers
            )
        return dict(body) if isinstance(body, dict) else {}

    def download_frame(
        self,
        job_id: str,
        frame: int,
        dest: Path,
        *,
        sha256: str | None = None,
        replace: bool = True,
        name: str | None = None,
    ) -> int:
        """Download one rendered frame (its main file, or its file ``name`` as
        :attr:`Frame.files` names it) to ``dest`` atomically; return its size in bytes.

        The bytes are hashed while streaming and compared with ``sha256`` (looked up
        with :meth:`frames` when not given); on a mismatch nothing is written
        (:class:`HashMismatch`). The file gets the stored file's permission bits,
        filtered by the umask. With ``replace=False`` an existing ``dest`` is never
        replaced (:class:`~spillway.client.errors.FileConflict`).
        """
        if sha256 is None:
            sha256 = self._recorded_sha256(job_id, frame)
        route = api.path("jobs", job_id, "frames", str(int(frame)))
        if name is not None:  # a preview's name has a folder: its "/" stays a separator
            route += "/files/" + quote(name, safe="/")
        sink = FrameSink(dest, replace=replace)
        self._transport.exchange("GET", route, None, None, sink=sink)
        return sink.finish(sha256, f"frame {frame} of job {job_id}")

    def download_frames(
        self,
        job_id: str,
        wanted: Iterable[tuple[Frame, Path]],
        *,
        replace: bool = True,
        workers: int = 4,
        on_error: Callable[[Frame, ClientError], bool] | None = None,
    ) -> int:
        """Download many frames on up to ``workers`` connections; return the bytes written.

        ``on_error(frame, err)`` decides whether a failed frame is skipped (True) or
        ends the download (False, the default: the error is raised).
        """
        todo = list(wanted)

        def one(item: tuple[Frame, Path]) -> int:
            frame, dest = item
            try:
                return self.download_frame(
                    job_id, frame.frame, dest, sha256=frame.sha256, replace=replace
                )
            except ClientError as err:
                if on_error is not None and on_error(frame, err):
                    return 0
                raise

        return sum(self.map_parallel(one, todo, workers=workers))

    def map_parallel(
        self, fn: Callable[[Any], int], items: list[Any], *, workers: int = 4
    ) -> list[int]:
        """``fn`` over ``items`` on up to ``workers`` threads (each with its own connection).

        One item, or one worker, runs on the calling thread: threads pay only for
        several transfers at once.
        """
        if len(items) <= 1 or workers <= 1:
            return [fn(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor  # only when it pays

        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            return list(pool.map(fn, items))

    def _recorded_sha256(self, job_id: str, frame: int) -> str:
        listed = {f.frame: f for f in self.frames(job_id)}
        found = listed.get(frame)
        if found is None or found.sha256 is None:
            raise NotFound(
                f"frame {frame} of job {job_id} is not rendered yet; see `spillway job {job_id}`",
                code="not_found",
                status=404,
            )
        return found.sha256
