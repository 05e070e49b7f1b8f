"""The client API under /api/v1 (JSON; errors mapped by http_errors.error_middleware)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from scheduler.profile import JobProfile
from spillway.core.checks import first_bad_string

from .appkeys import SITE
from .auth import bearer, check_client, check_server
from .errors import BadRequestError, ConflictError, NotFoundError
from .files import check_sha256
from .frame_api import frame_files_json
from .frame_response import not_modified, send_frame
from .log_api import wait_query
from .monitor_api import add_server_activity, job_body, jobs_page_json, parse_job_query
from .site import SiteAgent
from .storage import FrameCorruptError, FrameMissingError
from .store.records import LOCAL, JobRecord, ServerStatus, TaskState
from .store.usage import PeerUsage
from .usage import peer_usage_json
from .views import frames_json, server_json, server_states, task_json

VERSION = "0.1.0"
DETAIL_TASKS = 100
"""Tasks in a job's detail (and a page's default size): watching a large job stays cheap."""
MAX_PAGE = 1000
log = logging.getLogger(__name__)
routes = web.RouteTableDef()


def _site(request: web.Request) -> SiteAgent:
    site = request.app[SITE]
    check_client(request, site.config.auth)
    return site


_INLINE_JSON = 64 * 1024
"""Bodies up to this size are decoded on the event loop; larger ones in a worker thread."""


def _decode_json(raw: bytes) -> Any:
    """The decoded body; BadRequestError for invalid JSON or a string no store can hold."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    bad = first_bad_string(value)
    if bad is not None:
        raise BadRequestError(f"{bad[0]} {bad[1]}")
    return value


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise BadRequestError("send the body as JSON with Content-Type: application/json")
    raw = await request.read()
    if len(raw) <= _INLINE_JSON:
        return _decode_json(raw)
    return await asyncio.to_thread(_decode_json, raw)


async def _job_body(site: SiteAgent, job: JobRecord) -> dict[str, Any]:
    return await job_body(site, job)


def _query_int(request: web.Request, key: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(request.query.get(key, str(default)))
    except ValueError:
        raise BadRequestError(f"{key} must be a whole number") from None
    if not lo <= value <= hi:
        raise BadRequestError(f"{key} must be between {lo} and {hi}")
    return value


def _task_states(request: web.Request) -> list[TaskState] | None:
    if "state" not in request.query:
        return None
    try:
        return [TaskState(s) for s in request.query["state"].split(",")]
    except ValueError:
        raise BadRequestError(
            f"unknown task state; use one of {', '.join(s.value for s in TaskState)}"
        ) from None


async def _task_page(
    site: SiteAgent, job: JobRecord, *, offset: int, limit: int, states: list[TaskState] | None
) -> dict[str, Any]:
    """One page of the job's tasks (index order) with the frames they hold."""
    counts = await site.store.task_counts(job.id)
    total = sum(counts[s] for s in states) if states else sum(counts.values())
    tasks = await site.store.list_tasks_page(job.id, offset=offset, limit=limit, states=states)
    frames = await site.store.frames_of(job.id, [n for t in tasks for n in t.frames])
    names = {s.id: s.name for s in await site.store.list_servers()}
    peer = None if job.placement == LOCAL else job.placement
    end = offset + len(tasks)
    return {
        "tasks": [task_json(t, names, peer=peer) for t in tasks],
        "frames": frames_json(tasks, frames, names),
        "tasks_page": {
            "offset": offset,
            "limit": limit,
            "total": total,
            "next_offset": end if end < total else None,
        },
    }


@routes.get("/api/v1/health")
async def health(request: web.Request) -> web.Response:
    site = request.app[SITE]
    # Whether a token is needed (not the tokens): the monitor asks for one before any call.
    return web.json_response(
        {
            "site": site.config.name,
            "version": VERSION,
            "client_auth": bool(site.config.auth.client_tokens),
        }
    )


@routes.post("/api/v1/blobs/check")
async def check_blobs(request: web.Request) -> web.Response:
    site = _site(request)
    body = await _json_body(request)
    hashes = body.get("sha256") if isinstance(body, dict) else None
    if not isinstance(hashes, list) or len(hashes) > 100_000:
        raise BadRequestError('send {"sha256": [hex, ...]} with at most 100000 hashes')
    return web.json_response({"missing": site.assets.missing(check_sha256(h) for h in hashes)})


@routes.put("/api/v1/blobs/{sha256}")
async def put_blob(request: web.Request) -> web.Response:
    site = _site(request)
    sha = check_sha256(request.match_info["sha256"])
    if site.assets.has(sha):
        return web.json_response({"sha256": sha, "size": site.assets.size(sha), "existed": True})
    size = await site.assets.put(sha, request.content.iter_chunked(1 << 16))
    return web.json_response({"sha256": sha, "size": size}, status=201)


@routes.get("/api/v1/blobs/{sha256}")
async def get_blob(request: web.Request) -> web.FileResponse:
    site = request.app[SITE]
    if check_server(bearer(request), request.remote, site.config.auth):
        check_client(request, site.config.auth)
    sha = check_sha256(request.match_info["sha256"])
    if not site.assets.has(sha):
        raise NotFoundError(f"blob {sha} is not in this site's asset store")
    return web.FileResponse(
        site.assets.path_for(sha), headers={"Content-Type": "application/octet-stream"}
    )


@routes.post("/api/v1/jobs")
async def submit(request: web.Request) -> web.Response:
    site = _site(request)
    job = await site.jobs.submit(await _json_body(request))
    return web.json_response({"job": await _job_body(site, job)}, status=201)


@routes.get("/api/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """A page of jobs: ``state``, ``owner``, ``q`` (name or id), ``package``, ``placement``
    (local, forwarded, accepted or a peer), ``sort``, ``offset``, ``limit``."""
    site = _site(request)
    return web.json_response(await jobs_page_json(site, parse_job_query(request.query)))


@routes.get("/api/v1/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    """A job with its first ``tasks``; with ``wait`` (0-30 s) the answer comes once the job
    has ended, or after that long as it is then (``spillway submit --wait`` long-polls)."""
    site = _site(request)
    limit = _query_int(request, "tasks", DETAIL_TASKS, 0, MAX_PAGE)
    wait = wait_query(request)
    job = await site.job_watch.until_ended(request.match_info["job_id"], site.jobs.get, wait)
    page = await _task_page(site, job, offset=0, limit=limit, states=None)
    return web.json_response({"job": await _job_body(site, job), **page})


@routes.get("/api/v1/jobs/{job_id}/tasks")
async def list_job_tasks(request: web.Request) -> web.Response:
    site = _site(request)
    job = await site.jobs.get(request.match_info["job_id"])
    offset = _query_int(request, "offset", 0, 0, 10_000_000)
    limit = _query_int(request, "limit", DETAIL_TASKS, 1, MAX_PAGE)
    page = await _task_page(site, job, offset=offset, limit=limit, states=_task_states(request))
    return web.json_response(page)


@routes.post("/api/v1/jobs/{job_id}/after")
async def add_dependencies(request: web.Request) -> web.Response:
    site = _site(request)
    body = await _json_body(request)
    job = await site.jobs.add_dependencies(request.match_info["job_id"], body)
    return web.json_response({"job": await _job_body(site, job)})


@routes.post("/api/v1/jobs/{job_id}/{action}")
async def control(request: web.Request) -> web.Response:
    site = _site(request)
    job_id, action = request.match_info["job_id"], request.match_info["action"]
    body = await _json_body(request) if request.body_exists else None
    if action == "priority":
        job = await site.jobs.set_priority(job_id, body)
    elif action == "retry" and isinstance(body, dict) and set(body) == {"frames"}:
        job = await site.jobs.retry_frames(job_id, body["frames"])
    elif body not in (None, {}):
        raise BadRequestError('the only body a job action takes is {"frames": SPEC} for retry')
    else:
        job = await site.jobs.control(job_id, action)
    return web.json_response({"job": await _job_body(site, job)})


@routes.get("/api/v1/jobs/{job_id}/frames")
async def list_frames(request: web.Request) -> web.Response:
    site = _site(request)
    job = await site.jobs.get(request.match_info["job_id"])
    frames = await site.store.list_frames(job.id)
    return web.json_response(
        {"frames": [frame_files_json(job.id, f) for f in sorted(frames, key=lambda f: f.frame)]}
    )


@routes.get("/api/v1/jobs/{job_id}/frames/{frame}")
async def get_frame(request: web.Request) -> web.StreamResponse:
    """The frame's bytes, only after they were checked against the recorded sha256.

    404 ``not_found``: not rendered yet; 404 ``frame_missing``: recorded but its file
    is gone; 409 ``frame_corrupt``: its file no longer hashes as recorded. The
    answer carries ``X-Sha256`` and ``X-File-Mode`` (the stored file's permission
    bits, octal) so a client can keep them.
    """
    site = _site(request)
    job = await site.jobs.get(request.match_info["job_id"])
    try:
        number = int(request.match_info["frame"])
    except ValueError:
        raise BadRequestError("the frame must be a whole number") from None
    record = await site.store.get_frame(job.id, number)
    if record is None:
        raise NotFoundError(f"frame {number} of job {job.id} is not rendered yet")
    cached = not_modified(request, record.sha256)
    if cached is not None:
        return cached
    try:
        frame = await site.storage.open_frame(
            site.storage.job_dir(job.name, job.id),
            record.name,
            job_id=job.id,
            frame=number,
            sha256=record.sha256,
        )
    except FrameMissingError as exc:
        log.warning("%s", exc)
        raise
    except FrameCorruptError as exc:
        log.error("%s", exc)
        raise
    try:
        return await send_frame(request, frame, record.name)
    finally:
        frame.close()


@routes.get("/api/v1/servers")
async def list_servers(request: web.Request) -> web.Response:
    site = _site(request)
    profile: JobProfile | None = None
    if "job" in request.query:
        profile = (await site.jobs.get(request.query["job"])).profile
    body = [
        server_json(
            state.record, state.view, running_tasks=state.running_tasks, match_profile=profile
        )
        for state in await server_states(site.store, site.connections)
    ]
    await add_server_activity(site, body)
    return web.json_response({"servers": body})


@routes.post("/api/v1/servers/{server_id}/{action}")
async def server_control(request: web.Request) -> web.Response:
    site = _site(request)
    action = request.match_info["action"]
    if action not in ("enable", "disable"):
        raise NotFoundError(f"unknown action '{action}'; use enable or disable")
    record = await site.store.get_server(
        request.match_info["server_id"]
    ) or await site.store.get_server_by_name(request.match_info["server_id"])
    if record is None:
        raise NotFoundError(f"no render server '{request.match_info['server_id']}'")
    conn = site.connections.get(record.id)
    disabled = action == "disable"
    if conn is not None:
        conn.disabled = disabled
        site.connections.may_dispatch(conn)
    status = (
        ServerStatus.DISABLED if disabled else (ServerStatus.IDLE if conn else ServerStatus.OFFLINE)
    )
    await site.store.set_server_status(record.id, status, at=site.clock())
    site.dispatcher.wake()
    site.live.servers_changed()
    return web.json_response(
        {"server": {"id": record.id, "name": record.name, "status": status.value}}
    )


@routes.delete("/api/v1/servers/{server_id}")
async def remove_server(request: web.Request) -> web.Response:
    """Forget an offline render server (name or id), e.g. a dead or re-imaged host."""
    site = _site(request)
    wanted = request.match_info["server_id"]
    record = await site.store.get_server(wanted) or await site.store.get_server_by_name(wanted)
    if record is None:
        raise NotFoundError(f"no render server '{wanted}'")
    if site.connections.get(record.id) is not None:
        raise ConflictError(
            f"render server {record.name} is connected; stop it first (only offline servers "
            "can be removed)"
        )
    if await site.store.active_tasks(server_id=record.id):
        raise ConflictError(
            f"render server {record.name} still holds tasks; they are requeued once it has "
            "been gone for heartbeat_timeout, then it can be removed"
        )
    await site.store.delete_server(record.id)
    site.live.servers_changed()
    log.info("render server %s (%s) removed", record.name, record.id)
    return web.json_response({"server": {"id": record.id, "name": record.name, "removed": True}})


@routes.get("/api/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    site = _site(request)
    if site.webhooks is None:
        return web.json_response({"webhooks": [], "deliveries": []})
    return web.json_response(await site.webhooks.status_json())


@routes.get("/api/v1/peers")
async def list_peers(request: web.Request) -> web.Response:
    site = _site(request)
    peers = site.federation.peers_json() if site.federation is not None else []
    counts = await site.store.peer_job_counts()
    figures = await site.usage.peer_figures()
    for peer in peers:
        forwarded, accepted = counts.get(peer["name"], (0, 0))
        peer.setdefault("jobs_forwarded", forwarded)
        peer.setdefault("jobs_accepted", accepted)
        peer["usage"] = peer_usage_json(figures.get(peer["name"], PeerUsage()))
    return web.json_response({"peers": peers})
