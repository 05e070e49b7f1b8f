"""``spillway usage``: what was rendered for whom (core-seconds, frames, failed attempts, bytes).

Asks the agent's ``GET /api/v1/usage`` and prints one line per peer (``--by-job``:
per job). The peer ``(here)`` is this site's own jobs rendered here; any other
name is a peer whose jobs this site rendered, or that rendered jobs for it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from spillway.client.formatting import human_size

if TYPE_CHECKING:
    from spillway.client.api import Call
    from spillway.client.sync import Client

__all__ = ["add_usage_command", "cmd_usage", "format_usage", "usage"]

LOCAL_LABEL = "(here)"


def usage(
    *,
    group: str = "peer",
    peer: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Call[dict[str, Any]]:
    """``GET /api/v1/usage``: ``{"group", "rows": [...], "total": {...}, ...}``."""
    from spillway.client.api import Call  # with the client, not at `--help`

    params = {"group": group}
    for key, value in (("peer", peer), ("since", since), ("until", until)):
        if value is not None:
            params[key] = value
    return Call("GET", "/usage", lambda body: body, params)


def _peer_label(peer: str | None) -> str:
    return LOCAL_LABEL if peer == "" else str(peer)


def _figures(row: Mapping[str, Any]) -> list[str]:
    return [
        f"{float(row['core_seconds']) / 3600:.3f}",
        str(row["frames"]),
        str(row["failed_attempts"]),
        human_size(row["bytes_in"]),
        human_size(row["bytes_out"]),
    ]


def format_usage(summary: Mapping[str, Any]) -> str:
    """The ``spillway usage`` table (core-hours, frames, failed attempts, bytes in/out)."""
    rows: Sequence[Mapping[str, Any]] = summary.get("rows", [])
    if not rows:
        return "no usage recorded in this period"
    by_job = summary.get("group") == "job"
    head = ["JOB", "NAME", "PEER"] if by_job else ["PEER", "JOBS"]
    head += ["CORE-H", "FRAMES", "FAILED", "BYTES IN", "BYTES OUT"]
    table = [head]
    for row in rows:
        if by_job:
            first = [str(row["job_id"]), str(row.get("name") or "-"), _peer_label(row["peer"])]
        else:
            first = [_peer_label(row["peer"]), str(row["jobs"])]
        table.append(first + _figures(row))
    total = summary["total"]
    table.append(["TOTAL", "", ""] if by_job else ["TOTAL", str(total["jobs"])])
    table[-1] += _figures(total)
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def cmd_usage(client: Client, args: argparse.Namespace) -> int:
    summary = client.call(
        usage(
            group="job" if args.by_job else "peer",
            peer=args.peer,
            since=args.since,
            until=args.until,
        )
    )
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(format_usage(summary))
    return 0


def add_usage_command(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "usage",
        parents=[common],
        help="accounting: core-hours, frames, failed attempts and bytes per peer or job",
    )
    p.add_argument("--peer", metavar="P", help="only this peer ('' for this site's own jobs)")
    p.add_argument("--since", metavar="DATE", help="from this date or time (UTC), e.g. 2026-11-01")
    p.add_argument("--until", metavar="DATE", help="before this date or time (UTC)")
    p.add_argument("--by-job", action="store_true", help="one line per job instead of per peer")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_usage)
