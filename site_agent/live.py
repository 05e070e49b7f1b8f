"""Live updates for the web monitor: Server-Sent Events at ``GET /api/v1/events``.

The stream carries what changed, never the data itself: ``change`` events name the
jobs whose state, tasks or frames moved (``{"jobs": [...]}``, or ``{"all": true}``),
and whether render servers changed. The page then reads only what it shows. So a
client's state in the agent is a small set of dirty job ids, capped: past
``MAX_DIRTY_JOBS`` it collapses to "everything changed". A slow reader therefore
costs a bounded amount of memory however many events happen meanwhile, and it
receives one coalesced change when it catches up.

There is no replay: each (re)connection starts with a ``hello`` event after which
the page reloads what it shows, so a page open for a day, across agent restarts
and network drops, is as correct as a freshly opened one. A ``tick`` every
``TICK_S`` keeps proxies from closing an idle stream and refreshes what has no
lifecycle event of its own (peer adverts, server utilisation).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import UnavailableError
from .lifecycle.events import Event

log = logging.getLogger(__name__)

MAX_DIRTY_JOBS = 64
"""Job ids a client keeps before it is told that everything changed."""
MAX_CLIENTS = 200
"""Open streams per agent; one more is refused with 503."""
TICK_S = 15.0
COALESCE_S = 0.25
"""A stream sends at most one change per this interval: a burst of task reports is one event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What changed since the client's last event."""

    jobs: tuple[str, ...] = ()
    all_jobs: bool = False
    servers: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"jobs": list(self.jobs), "servers": self.servers}
        if self.all_jobs:
            body["all"] = True
        return body


def event_job_ids(event: object) -> set[str]:
    """The ids of the jobs an event is about, whatever its class (new classes included)."""
    ids: set[str] = set()
    job_id = getattr(event, "job_id", None)
    if isinstance(job_id, str):
        ids.add(job_id)
    job = getattr(event, "job", None)
    if job is not None and isinstance(getattr(job, "id", None), str):
        ids.add(job.id)
    for task in getattr(event, "tasks", ()) or ():
        ids.add(task.job_id)
    outcome = getattr(event, "outcome", None)
    task = getattr(outcome, "task", None)
    if task is not None:
        ids.add(task.job_id)
    ids.update(getattr(event, "started_jobs", ()) or ())
    ids.update(getattr(event, "job_ids", ()) or ())
    return ids


class LiveClient:
    """One open stream's pending changes; bounded whatever the event rate."""

    def __init__(self) -> None:
        self._jobs: set[str] = set()
        self._all = False
        self._servers = False
        self._wake = asyncio.Event()
        self.closed = False

    def mark(self, jobs: Iterable[str] = (), *, servers: bool = False) -> None:
        if not self._all:
            self._jobs.update(jobs)
            if len(self._jobs) > MAX_DIRTY_JOBS:
                self._jobs.clear()
                self._all = True
        self._servers = self._servers or servers
        if self._jobs or self._all or self._servers:
            self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    @property
    def pending(self) -> int:
        """Job ids held (for tests of the bound)."""
        return len(self._jobs)

    async def next(self, wait_s: float) -> Change | None:
        """The coalesced change, or None after ``wait_s`` with nothing new (or once closed)."""
        try:
            async with asyncio.timeout(wait_s):
                await self._wake.wait()
        except TimeoutError:
            return None
        if self.closed:
            return None
        self._wake.clear()
        change = Change(jobs=tuple(sorted(self._jobs)), all_jobs=self._all, servers=self._servers)
        self._jobs, self._all, self._servers = set(), False, False
        return change


class LiveHub:
    """Fans the lifecycle's events (and server connects) out to the open streams."""

    def __init__(
        self,
        *,
        task_jobs: Callable[[Iterable[int]], set[str]] | None = None,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self._clients: set[LiveClient] = set()
        self._task_jobs = task_jobs
        """Jobs of task ids, for events that name tasks only (a task started)."""
        self._max_clients = max_clients
        self.closed = False

    async def on_event(self, event: Event) -> None:
        if not self._clients:
            return  # no monitor page open: nothing to mark (most events of a busy farm)
        jobs = event_job_ids(event)
        task_ids = getattr(event, "task_ids", None)
        if task_ids and self._task_jobs is not None:
            jobs |= self._task_jobs(task_ids)
        # A task assigned, started or ended changes its server's busy slots too.
        servers = bool(getattr(event, "tasks", None) or getattr(event, "outcome", None))
        for client in self._clients:
            client.mark(jobs, servers=servers)

    def servers_changed(self) -> None:
        for client in self._clients:
            client.mark(servers=True)

    def connect(self) -> LiveClient:
        if self.closed:
            raise UnavailableError("the agent is shutting down; reconnect in a moment")
        if len(self._clients) >= self._max_clients:
            raise UnavailableError(
                f"{self._max_clients} monitor pages are already connected; close one and retry"
            )
        client = LiveClient()
        self._clients.add(client)
        return client

    def disconnect(self, client: LiveClient) -> None:
        self._clients.discard(client)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def close(self) -> None:
        """End every stream (agent shutdown): each handler returns and its response ends."""
        self.closed = True
        for client in self._clients:
            client.close()


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(request: web.Request, hub: LiveHub, site_name: str) -> web.StreamResponse:
    """Serve one event stream (text/event-stream) until the client goes or the hub closes."""
    client = hub.connect()
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",  # nginx would hold events back in its buffer otherwise
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n" + _sse("hello", {"site": site_name}))
        await _pump(client, response)
    except ConnectionResetError:
        log.debug("monitor stream from %s closed by the client", request.remote)
    finally:
        hub.disconnect(client)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def _pump(client: LiveClient, response: web.StreamResponse) -> None:
    while not client.closed:
        change = await client.next(TICK_S)
        if client.closed:
            return
        if change is None:
            await response.write(_sse("tick", {}))
            continue
        await response.write(_sse("change", change.to_json()))
        await asyncio.sleep(COALESCE_S)
