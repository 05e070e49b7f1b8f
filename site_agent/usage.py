"""Accounting API: ``GET /api/v1/usage?group=peer|job&peer=&since=&until=``.

Sums of the usage ledger (:mod:`site_agent.store.usage`): core-seconds, frames,
failed attempts and bytes in/out, per peer (``''`` is this site's own jobs
rendered here) or per job. ``since``/``until`` take a date (``2026-11-30``, UTC
midnight), an ISO 8601 time (``2026-11-30T12:00:00+01:00``, UTC when no offset)
or epoch seconds; ``until`` is exclusive.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .appkeys import SITE
from .auth import check_client
from .errors import BadRequestError
from .store.usage import FOREVER, PeerUsage, UsageGroup, UsageQuery, UsageTotals, totals_of

routes = web.RouteTableDef()


def parse_time(value: str, name: str) -> float:
    """Epoch seconds of a date, an ISO 8601 time or a number; BadRequestError naming ``name``."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number) and number >= 0:
            return number
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestError(
            f"{name}={value!r} is not a time; give a date (2026-11-30), an ISO 8601 time "
            "(2026-11-30T12:00:00Z) or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_query(params: dict[str, str]) -> UsageQuery:
    """The query string as a :class:`UsageQuery`; BadRequestError says which parameter is wrong."""
    unknown = sorted(set(params) - {"group", "peer", "since", "until"})
    if unknown:
        raise BadRequestError(
            f"unknown parameter {unknown[0]!r}; usage takes group, peer, since and until"
        )
    group_text = params.get("group", UsageGroup.PEER.value)
    try:
        group = UsageGroup(group_text)
    except ValueError:
        raise BadRequestError(f"group={group_text!r}: use group=peer or group=job") from None
    since = parse_time(params["since"], "since") if params.get("since") else 0.0
    until = parse_time(params["until"], "until") if params.get("until") else FOREVER
    if until <= since:
        raise BadRequestError("until must be later than since")
    return UsageQuery(group=group, peer=params.get("peer"), since=since, until=until)


def totals_json(row: UsageTotals) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if row.peer is not None:
        body["peer"] = row.peer
    if row.job_id is not None:
        body.update(
            job_id=row.job_id,
            name=row.name,
            origin_job_id=row.origin_job_id,
            remote_job_id=row.remote_job_id,
        )
    body.update(
        jobs=row.jobs,
        core_seconds=round(row.core_seconds, 3),
        frames=row.frames,
        failed_attempts=row.failed_attempts,
        bytes_in=row.bytes_in,
        bytes_out=row.bytes_out,
    )
    return body


def peer_usage_json(figures: PeerUsage) -> dict[str, Any]:
    """A peer's all-time figures as ``GET /api/v1/peers`` shows them in its ``usage``."""
    return {
        "bytes_in": figures.bytes_in,
        "bytes_out": figures.bytes_out,
        "rendered_for": {
            "core_seconds": round(figures.core_seconds_for, 3),
            "frames": figures.frames_for,
        },
        "rendered_by": {
            "core_seconds": round(figures.core_seconds_by, 3),
            "frames": figures.frames_by,
        },
    }


@routes.get("/api/v1/usage")
async def usage(request: web.Request) -> web.Response:
    site = request.app[SITE]
    check_client(request, site.config.auth)
    query = parse_query(dict(request.query))
    rows = await site.usage.summary(query)
    return web.json_response(
        {
            "site": site.config.name,
            "group": query.group.value,
            "peer": query.peer,
            "since": query.since,
            "until": None if query.until >= FOREVER else query.until,
            "rows": [totals_json(r) for r in rows],
            "total": totals_json(totals_of(rows)),
        }
    )
