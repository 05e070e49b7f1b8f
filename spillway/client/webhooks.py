"""``spillway webhooks``: the site's webhook endpoints and their recent deliveries."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from spillway.client.formatting import human_age, table

if TYPE_CHECKING:
    from spillway.client.sync import Client


def format_webhooks(body: Mapping[str, Any], now: float) -> str:
    """Endpoints with their delivery counts, then the recent deliveries with their last status."""
    hooks: Sequence[Mapping[str, Any]] = body.get("webhooks") or []
    if not hooks:
        return "no webhooks configured (add [[webhooks]] to the site's TOML)"
    rows = [
        [
            h.get("name"),
            h.get("url"),
            ",".join(e.removeprefix("job.") for e in h.get("events") or []),
            *(h.get("deliveries", {}).get(s, 0) for s in ("pending", "delivered", "failed")),
        ]
        for h in hooks
    ]
    out = table(["NAME", "URL", "EVENTS", "PENDING", "DELIVERED", "FAILED"], rows)
    deliveries: Sequence[Mapping[str, Any]] = body.get("deliveries") or []
    if deliveries:
        recent = [
            [
                d.get("id"),
                d.get("endpoint"),
                d.get("event"),
                d.get("job_id"),
                d.get("state"),
                d.get("attempts"),
                _last(d),
                human_age(d.get("last_attempt_at"), now),
            ]
            for d in deliveries
        ]
        out += "\n\nrecent deliveries:\n" + table(
            ["ID", "ENDPOINT", "EVENT", "JOB", "STATE", "TRIES", "LAST STATUS", "LAST TRY"], recent
        )
    return out


def _last(delivery: Mapping[str, Any]) -> str:
    if delivery.get("last_error"):
        return str(delivery["last_error"])[:60]
    status = delivery.get("last_status")
    return "-" if status is None else str(status)


def cmd_webhooks(client: Client, args: argparse.Namespace) -> int:
    body = client.webhooks()
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(format_webhooks(body, time.time()))
    return 0


def add_webhooks_command(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "webhooks", parents=[common], help="list webhook endpoints and recent deliveries"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_webhooks)
