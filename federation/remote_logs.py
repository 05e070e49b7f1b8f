"""Task logs of forwarded jobs: the origin reads them from the site that runs the job.

A forwarded job's render servers report to the remote, so its logs are kept there.
At the origin, :class:`RemoteLogReader` is the site agent's
:class:`~site_agent.task_logs.RemoteLogs`: the client API's log routes ask it, and it
asks the remote over mutual TLS with ``GET /fed/v1/jobs/{remote_job_id}/tasks/{index}/log``.
The remote job was created with the origin's chunks, so task ``index`` is the same task
at both sites (as the progress relay assumes). At the remote, :class:`LogServing`
answers that route for the origin that placed the job only, from its own task logs
(which, for a job it relayed on, ask the next site in turn). A long-poll ``wait``
passes through, capped at the API's 30 s; the origin's request gives up ``wait`` plus
:data:`REQUEST_TIMEOUT_S` later, and an unreachable remote is a 503 ``peer_unavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from federation.client import PeerRefusedError, PeerUnavailableError
from federation.peers import PeerConfig
from federation.store import OfferRow
from site_agent.errors import (
    AgentError,
    AttemptNotFoundError,
    BadRequestError,
    LogNotFoundError,
    PeerLogUnavailableError,
    TaskNotFoundError,
)
from site_agent.store.records import JobRecord
from site_agent.task_logs import MAX_WAIT_S

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 15.0
"""How long the remote may take to answer beyond the reader's ``wait``."""

# What the remote's refusal means at the origin; any other refusal is the remote's trouble.
_REFUSALS: Mapping[str, type[AgentError]] = {
    "task_not_found": TaskNotFoundError,
    "attempt_not_found": AttemptNotFoundError,
    "log_not_found": LogNotFoundError,
    "not_found": LogNotFoundError,
    "bad_request": BadRequestError,
}


class LogFetching(Protocol):
    """The GET the reader makes (:class:`~federation.client.PeerClient`)."""

    async def get_json(self, peer: PeerConfig, path: str, *, timeout_s: float = 15) -> Any: ...


class PeerLookup(Protocol):
    """The configured peers (:class:`~federation.peers.FederationConfig`)."""

    def peer(self, name: str) -> PeerConfig | None: ...


class RemoteLogReader:
    """Origin side: a forwarded job's task log, read from the site it was placed at."""

    def __init__(self, config: PeerLookup, client: LogFetching) -> None:
        self._config = config
        self._client = client

    async def read_remote(
        self, job: JobRecord, index: int, *, attempt: int | None, offset: int, wait: float
    ) -> dict[str, Any]:
        peer = self._config.peer(job.placement)
        what = f"the log of task {index} of job {job.id}"
        if peer is None:
            raise LogNotFoundError(
                f"job {job.id} was sent to site {job.placement}, which is no longer a "
                "configured peer; its logs are kept there"
            )
        if job.remote_job_id is None:
            # "not run yet": `spillway logs --follow` waits for the task to start.
            raise LogNotFoundError(
                f"task {index} of job {job.id} has not run yet: the job is on its way to "
                f"site {peer.name}"
            )
        query: dict[str, str] = {"offset": str(offset), "wait": str(min(wait, MAX_WAIT_S))}
        if attempt is not None:
            query["attempt"] = str(attempt)
        path = (
            f"/fed/v1/jobs/{quote(job.remote_job_id, safe='')}/tasks/{index}/log?{urlencode(query)}"
        )
        try:
            body = await self._client.get_json(
                peer, path, timeout_s=min(wait, MAX_WAIT_S) + REQUEST_TIMEOUT_S
            )
        except PeerUnavailableError as exc:
            log.warning("job %s: cannot read %s at %s: %s", job.id, what, peer.name, exc)
            problem = str(exc).removesuffix("; will retry")
            raise PeerLogUnavailableError(
                f"{what} is kept at site {peer.name}, which could not be asked ({problem}); "
                "try again once it is reachable"
            ) from None
        except PeerRefusedError as exc:
            error = _REFUSALS.get(exc.code, PeerLogUnavailableError)
            raise error(f"site {peer.name} answered for {what}: {exc}") from None
        if not isinstance(body, dict):
            raise PeerLogUnavailableError(f"site {peer.name} answered {what} with no log page")
        # The page names the job as the reader knows it, and where it ran.
        return {**body, "job": job.id, "site": peer.name}


class OwnedJobs(Protocol):
    """The remote's check that a peer placed the job (:class:`~federation.accept.Acceptance`)."""

    async def owned_job(self, peer: PeerConfig, job_id: str) -> tuple[OfferRow, JobRecord]: ...


class LocalLogs(Protocol):
    """This site's log answers (:class:`~site_agent.task_logs.TaskLogs`)."""

    async def answer(
        self,
        job_id: str,
        *,
        frame: int | None = None,
        index: int | None = None,
        attempt: int | None,
        offset: int,
        wait: float,
    ) -> dict[str, Any]: ...


class LogServing:
    """Remote side: ``GET /fed/v1/jobs/{id}/tasks/{index}/log`` for the job's origin only."""

    def __init__(self, jobs: OwnedJobs, logs: LocalLogs) -> None:
        self._jobs = jobs
        self._logs = logs

    async def serve(
        self, peer: PeerConfig, job_id: str, index: str, query: Mapping[str, str]
    ) -> dict[str, Any]:
        _, job = await self._jobs.owned_job(peer, job_id)  # 404 to any other site
        if not index.isdigit():
            raise BadRequestError(f"task index must be a whole number, not {index!r}")
        attempt = _whole(query, "attempt", lo=1)
        return await self._logs.answer(
            job.id,
            index=int(index),
            attempt=attempt,
            offset=_whole(query, "offset", lo=0) or 0,
            wait=_wait(query),
        )


def _whole(query: Mapping[str, str], key: str, *, lo: int) -> int | None:
    raw = query.get(key)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < lo or len(raw) > 18:
        raise BadRequestError(f"{key} must be a whole number of at least {lo}, not {raw!r}")
    return int(raw)


def _wait(query: Mapping[str, str]) -> float:
    raw = query.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        raise BadRequestError(f"wait must be a number of seconds, not {raw!r}") from None
    if not wait >= 0 or wait == float("inf"):  # refuses nan too
        raise BadRequestError(f"wait must be a number of seconds, not {raw!r}")
    return min(wait, MAX_WAIT_S)  # a longer wait is capped, not refused
