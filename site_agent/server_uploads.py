"""The frame upload route: render servers PUT each file of a rendered frame over HTTP.

Fenced by (task, attempt, server) like every report on the WebSocket
(:mod:`site_agent.render_endpoint`), and served by the agent itself even when it
has connection workers. Inline frames of a TaskDone take the report path instead.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from spillway.core.records import FileKind

from .appkeys import SITE
from .auth import bearer, check_server
from .connections import ActiveTask
from .errors import BadRequestError, ConflictError, NotFoundError, UnauthorizedError
from .files import check_sha256
from .render_endpoint import RenderSite
from .server_identity import key_hash


async def _active_in_store(
    site: RenderSite, server_id: str, task_id: int, attempt: int
) -> ActiveTask:
    """The fence check against the store, for an attempt the connection does not hold.

    Memory lags the store only around reconnects: a render server retries its
    uploads while the agent restarts, possibly before its hello is processed.
    """
    task = await site.store.get_task(task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id}")
    if task.attempt != attempt or task.server_id != server_id or not task.state.active:
        raise ConflictError(
            f"task {task_id} attempt {attempt} is no longer assigned to this server"
        )
    return ActiveTask.of(task)


async def _check_server_key(site: RenderSite, server_id: str, key: str) -> None:
    """A server enrolled with a key must present it: the enrollment token alone is not enough."""
    conn = site.connections.get(server_id)
    record = conn.record if conn is not None else await site.store.get_server(server_id)
    # An unknown server holds no task: the fence check answers that one (409).
    if record is None:
        return
    if record.key_hash and not hmac.compare_digest(record.key_hash, key_hash(key)):
        raise UnauthorizedError(f"frame uploads for render server {record.name} need its key")


async def upload_frame(request: web.Request) -> web.Response:
    """PUT one file of a rendered frame (``?name=&kind=``); fenced by (task, attempt, server)
    like every other report."""
    site: RenderSite = request.app[SITE]
    if check_server(bearer(request), request.remote, site.config.auth):
        raise UnauthorizedError("render servers must present the enrollment token")
    try:
        server_id = request.match_info["server_id"]
        task_id = int(request.match_info["task_id"])
        attempt = int(request.match_info["attempt"])
        frame = int(request.match_info["frame"])
    except ValueError:
        raise BadRequestError("task, attempt and frame must be whole numbers") from None
    sha = check_sha256(request.headers.get("X-Sha256", ""))
    await _check_server_key(site, server_id, request.headers.get("X-Server-Key", ""))
    active = site.reports.held(server_id, task_id, attempt) or await _active_in_store(
        site, server_id, task_id, attempt
    )
    name, kind = _file_query(request)
    stored = await site.reports.store_frame(
        server_id,
        active,
        frame,
        request.content.iter_chunked(1 << 16),
        expected_sha256=sha,
        name=name,
        kind=kind,
    )
    return web.json_response(
        {"frame": frame, "name": stored.name, "sha256": stored.sha256, "size": stored.size},
        status=201,
    )


def _file_query(request: web.Request) -> tuple[str | None, FileKind]:
    """The upload's ``name`` (None from servers older than named outputs) and ``kind``."""
    try:
        kind = FileKind(request.query.get("kind", FileKind.MAIN.value))
    except ValueError:
        raise BadRequestError(
            f"kind must be one of {', '.join(k.value for k in FileKind)}"
        ) from None
    return request.query.get("name"), kind
