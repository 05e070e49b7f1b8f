"""The client API's task logs: ``GET /api/v1/jobs/{id}/log`` and ``.../tasks/{index}/log``.

Query: ``frame`` (the first route: the task holding that frame), ``attempt``
(default: the latest), ``offset`` (a ``next_offset`` from an earlier answer, to
tail), ``wait`` (0-30 s: answer once text beyond ``offset`` arrives or the
attempt ends). See :mod:`site_agent.task_logs` for what is kept.
"""

from __future__ import annotations

from aiohttp import web

from .appkeys import SITE
from .auth import check_client
from .errors import BadRequestError
from .site import SiteAgent
from .watch import MAX_WAIT_S

routes = web.RouteTableDef()
MAX_OFFSET = 2**62


def _site(request: web.Request) -> SiteAgent:
    site = request.app[SITE]
    check_client(request, site.config.auth)
    return site


def _int(request: web.Request, key: str, *, lo: int, hi: int = MAX_OFFSET) -> int | None:
    raw = request.query.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"{key} must be a whole number, not {raw!r}") from None
    if not lo <= value <= hi:
        raise BadRequestError(
            f"{key} must be at least {lo}" + ("" if hi == MAX_OFFSET else f" and at most {hi}")
        )
    return value


def wait_query(request: web.Request) -> float:
    """The ``wait`` query (seconds, 0 to :data:`MAX_WAIT_S`; 0 when absent) of a long poll."""
    raw = request.query.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        raise BadRequestError(f"wait must be a number of seconds, not {raw!r}") from None
    if not 0 <= wait <= MAX_WAIT_S:  # also refuses nan and inf
        raise BadRequestError(f"wait must be between 0 and {MAX_WAIT_S:.0f} seconds")
    return wait


async def _answer(request: web.Request, site: SiteAgent, task_index: int | None) -> web.Response:
    job_id = request.match_info["job_id"]
    attempt = _int(request, "attempt", lo=1)
    offset = _int(request, "offset", lo=0) or 0
    wait = wait_query(request)
    frame = None
    if task_index is None:
        frame = _int(request, "frame", lo=0)
        if frame is None:
            raise BadRequestError(
                "say which frame's log: ?frame=N (or use /jobs/{id}/tasks/{index}/log)"
            )
    # A job sent to a peer is read at that peer (TaskLogs.remote, set by the federation).
    body = await site.logs.answer(
        job_id, frame=frame, index=task_index, attempt=attempt, offset=offset, wait=wait
    )
    return web.json_response(body)


@routes.get("/api/v1/jobs/{job_id}/log")
async def frame_log(request: web.Request) -> web.Response:
    return await _answer(request, _site(request), None)


@routes.get("/api/v1/jobs/{job_id}/tasks/{index}/log")
async def task_log(request: web.Request) -> web.Response:
    site = _site(request)
    raw = request.match_info["index"]
    if not raw.isdigit():
        raise BadRequestError(f"task index must be a whole number, not {raw!r}")
    return await _answer(request, site, int(raw))
