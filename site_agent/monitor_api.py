"""The web monitor's side of the agent: the jobs page query, a job's frame grid, its assets.

The page itself is built from ``web/`` (Preact) into ``site_agent/web/`` and installed
with the package, so an agent serves it without Node. The live stream is in
:mod:`site_agent.live`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from scheduler.dependencies import Upstream
from scheduler.eta import estimate_eta
from scheduler.frames import format_frames

from . import live
from .appkeys import SITE
from .auth import check_client
from .errors import BadRequestError, NotFoundError
from .site import SiteAgent
from .store.job_pages import GridTasks, JobProgress, JobQuery
from .store.page_queries import JOB_SORTS
from .store.records import JobRecord, JobState, TaskState
from .views import job_json, upstream_json

WEB_DIR = Path(__file__).parent / "web"
_ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*\.(js|css|svg|png|map)$")
STATE_CHARS: dict[str, str] = {
    TaskState.WAITING: "w",
    TaskState.DISPATCHED: "s",
    TaskState.RUNNING: "r",
    TaskState.DONE: "d",
    TaskState.FAILED: "f",
}
"""One character per frame in the grid: waiting, sent (dispatched), running, done, failed."""
routes = web.RouteTableDef()


def _int_param(query: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(query.get(key, str(default)))
    except ValueError:
        raise BadRequestError(f"{key} must be a whole number") from None
    if not lo <= value <= hi:
        raise BadRequestError(f"{key} must be between {lo} and {hi}")
    return value


def _text_param(query: Mapping[str, str], key: str) -> str | None:
    value = query.get(key, "").strip()
    if len(value) > 200:
        raise BadRequestError(f"{key} must be at most 200 characters")
    return value or None


def parse_job_query(query: Mapping[str, str], *, default_limit: int = 100) -> JobQuery:
    """The jobs page a request asks for; BadRequestError naming the bad parameter."""
    states = None
    if query.get("state"):
        try:
            states = [JobState(s) for s in query["state"].split(",")]
        except ValueError:
            raise BadRequestError(
                f"unknown state; use one of {', '.join(s.value for s in JobState)}"
            ) from None
    sort = query.get("sort", "-created")
    if sort not in JOB_SORTS:
        raise BadRequestError(f"unknown sort '{sort}'; use one of {', '.join(JOB_SORTS)}")
    return JobQuery(
        states=states,
        owner=_text_param(query, "owner"),
        search=_text_param(query, "q"),
        package=_text_param(query, "package"),
        placement=_text_param(query, "placement"),
        sort=sort,
        offset=_int_param(query, "offset", 0, 0, 10_000_000),
        limit=_int_param(query, "limit", default_limit, 1, 10_000),
    )


def _eta(progress: JobProgress, job: JobRecord) -> float | None:
    if job.state.finished or job.state == JobState.PAUSED:
        return None
    tasks = progress.tasks
    active = tasks[TaskState.DISPATCHED] + tasks[TaskState.RUNNING]
    return estimate_eta(
        waiting=tasks[TaskState.WAITING],
        active=active,
        done_timed=progress.done_tasks_timed,
        busy_s=progress.busy_s,
        parallel=active,
    )


async def _job_summary(
    site: SiteAgent, job: JobRecord, progress: JobProgress, upstreams: Sequence[Upstream]
) -> dict[str, Any]:
    frames_done = job.frame_count if job.state == JobState.DONE else progress.frames_done
    why = await site.why_waiting(job, progress.tasks, upstreams)
    body = job_json(
        job,
        progress.tasks,
        frames_done=frames_done,
        why_waiting=why,
        storage_dir=site.job_storage_dir(job),
    )
    body["after"] = [upstream_json(u) for u in upstreams]
    body["eta_s"] = _eta(progress, job)
    timed = progress.done_tasks_timed
    body["seconds_per_frame"] = (
        progress.busy_s / (timed * job.chunk_size) if timed and job.chunk_size else None
    )
    if site.federation is not None:
        body.update(await site.federation.job_details(job))
    return body


async def job_body(site: SiteAgent, job: JobRecord) -> dict[str, Any]:
    """One job's JSON as the API shows it: record, progress, ETA, why it waits, federation."""
    progress = await site.store.jobs_progress([job.id])
    upstreams = (await site.store.job_upstreams([job.id])).get(job.id, ())
    return await _job_summary(site, job, progress[job.id], upstreams)


async def jobs_page_json(site: SiteAgent, query: JobQuery) -> dict[str, Any]:
    """``GET /api/v1/jobs``: one page of jobs with progress and ETA, and the page's place."""
    page = await site.store.job_page(query)
    ids = [j.id for j in page.jobs]
    progress = await site.store.jobs_progress(ids)
    upstreams = await site.store.job_upstreams(ids)
    jobs = [
        await _job_summary(site, job, progress[job.id], upstreams.get(job.id, ()))
        for job in page.jobs
    ]
    end = query.offset + len(jobs)
    return {
        "jobs": jobs,
        "page": {
            "offset": query.offset,
            "limit": query.limit,
            "total": page.total,
            "sort": query.sort,
            "next_offset": end if end < page.total else None,
        },
    }


def grid_json(
    job: JobRecord, tasks: GridTasks, stored: set[int], server_names: Mapping[str, str]
) -> dict[str, Any]:
    """The job's frames in task order with one state character each, and per-task columns.

    A frame already stored while its task still renders shows as done, so a chunk
    of frames fills in one by one. ``tasks.size`` tells which frames belong to which
    task (consecutive runs); hover details come from the per-task columns, whose
    times are seconds after ``time_base``.
    """
    frames: list[int] = []
    states: list[str] = []
    for chunk, state in zip(tasks.frames, tasks.state, strict=True):
        char = STATE_CHARS[state]  # a StrEnum key matches its plain value
        frames.extend(chunk)
        if state in (TaskState.DONE, TaskState.FAILED):
            states.append(char * len(chunk))
        else:
            states.extend("d" if n in stored else char for n in chunk)
    servers: list[str] = []
    server_index: dict[str, int] = {}
    column: list[int] = []
    for server_id in tasks.server_id:
        name = server_names.get(server_id, server_id) if server_id else ""
        if name and name not in server_index:
            server_index[name] = len(servers)
            servers.append(name)
        column.append(server_index[name] if name else -1)
    base = float(int(job.created_at))
    return {
        "job": job.id,
        "state": job.state.value,
        "time_base": base,
        "frames": frames,
        "states": "".join(states),
        "servers": servers,
        "tasks": {
            "index": tasks.index,
            "size": [len(chunk) for chunk in tasks.frames],
            "attempt": tasks.attempt,
            "server": column,
            # Seconds after time_base: a third of the bytes of epoch times.
            "started": [None if t is None else round(t - base, 1) for t in tasks.started_at],
            "finished": [None if t is None else round(t - base, 1) for t in tasks.finished_at],
        },
    }


UTILISATION_WINDOW_S = 3600.0
LATEST_FRAMES = 12
"""Thumbnails on a job's page: the latest frame large and the ones before it."""


async def add_server_activity(site: SiteAgent, servers: list[dict[str, Any]]) -> None:
    """Add to each server's JSON what it renders now, its utilisation over the last hour
    (busy slot-seconds over slot-seconds) and its last task failure."""
    busy = await site.store.server_busy(now=site.clock(), window_s=UTILISATION_WINDOW_S)
    errors = await site.store.last_server_errors()
    for body in servers:
        conn = site.connections.get(body["id"])
        running = list(conn.running.values()) if conn is not None else []
        body["current"] = [
            {"job": t.job_id, "task": t.task_id, "frames": format_frames(t.frames)} for t in running
        ]
        slots = max(int(body["slots"]), 1)
        body["utilisation"] = min(busy.get(body["id"], 0.0) / (slots * UTILISATION_WINDOW_S), 1.0)
        error = errors.get(body["id"])
        body["last_error"] = None if error is None else {"error": error[0], "at": error[1]}


@routes.get("/api/v1/jobs/{job_id}/grid")
async def job_grid(request: web.Request) -> web.Response:
    """Per-frame state of the whole job in one compact answer (10,000 frames: ~340 KiB)."""
    site = request.app[SITE]
    check_client(request, site.config.auth)
    job = await site.jobs.get(request.match_info["job_id"])
    tasks = await site.store.grid_tasks(job.id)
    stored = await site.store.stored_frame_numbers(job.id)
    names = {s.id: s.name for s in await site.store.list_servers()}
    peer = None if job.placement == "local" else job.placement
    body = grid_json(job, tasks, stored, names)
    # The thumbnails: frames stored here (a forwarded job's task can be done at its
    # peer before its frames are fetched), newest first.
    base = body["time_base"]
    body["latest"] = [
        {"frame": f.frame, "at": round(f.rendered_at - base, 1), "preview": f.preview}
        for f in await site.store.latest_frames(job.id, LATEST_FRAMES)
    ]
    if peer and not body["servers"]:
        body["servers"] = [peer]
        body["tasks"]["server"] = [0] * len(tasks.index)
    return web.json_response(body)


@routes.get("/api/v1/events")
async def events(request: web.Request) -> web.StreamResponse:
    """The monitor's live stream (see :mod:`site_agent.live`); needs a client token."""
    site = request.app[SITE]
    check_client(request, site.config.auth)
    return await live.stream(request, site.live, site.config.name)


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end the open streams so a graceful stop does not wait on them."""
    site = app.get(SITE)
    if site is not None:
        site.live.close()


@routes.get("/")
async def monitor_page(request: web.Request) -> web.FileResponse:
    # Revalidated every time: it names the current build's assets.
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@routes.get("/web/{name}")
async def monitor_asset(request: web.Request) -> web.FileResponse:
    """The page's built assets; public (no data in them), cached for a day when versioned."""
    name = request.match_info["name"]
    path = WEB_DIR / name
    if not _ASSET_NAME.match(name) or not path.is_file():
        raise NotFoundError(f"no monitor asset '{name}'")
    cache = "public, max-age=86400, immutable" if "v" in request.query else "no-cache"
    return web.FileResponse(path, headers={"Cache-Control": cache})
