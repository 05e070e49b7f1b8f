"""What this site knows of each peer, as placement sees it now (``GET /api/v1/peers``).

:class:`PeerState` is kept by :class:`~federation.capacity.PeerBook`; :func:`peer_json`
shows it. After a refusal the peer's free slots show as 0, as placement counts them,
until its next advert, with the refusal that spent them (``refused``), so an operator
sees why nothing goes there; ``advertised_free_slots`` keeps what the advert said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from federation.peers import PeerConfig
from federation.policy import AcceptPolicy
from federation.protocol import CapacityAdvert, ServerCapacity


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """The last offer a peer refused since its last advert (in memory only: its next
    advert says again what it has room for)."""

    job_id: str
    """The job offered (for a part: its split job)."""
    codes: tuple[str, ...]
    reasons: tuple[str, ...]
    at: float


@dataclass(slots=True)
class PeerState:
    advert: CapacityAdvert | None = None
    advert_at: float | None = None
    last_ok: float | None = None
    """Last successful exchange with the peer, in either direction."""
    failing_since: float | None = None
    last_error: str = ""
    refusal: Refused | None = None
    """It refused an offer since its last advert: that advert's free slots are spent."""


def peer_json(peer: PeerConfig, state: PeerState, *, reachable: bool, now: float) -> dict[str, Any]:
    """One entry of ``GET /api/v1/peers``."""
    spent = state.refusal is not None
    servers = state.advert.servers if state.advert else ()
    return {
        "name": peer.name,
        "url": peer.url,
        "forward": peer.allow_forward_to,
        "accept": peer.allow_accept_from,
        "preference": peer.preference,
        "cost": peer.cost,
        "policy": _policy_dict(peer.policy),
        "state": "up" if reachable else "unreachable",
        "last_seen": state.last_ok or state.advert_at,
        "last_error": state.last_error or None,
        "capacity": _capacity_summary(state.advert, spent=spent),
        "refused": _refused_dict(state.refusal, now),
        "servers": [_server_dict(s, spent=spent) for s in servers],
    }


def refusal_note(refusal: Refused) -> str:
    """``refused job j42: priority 80 is above the cap 50`` (every reason, ``; ``-joined)."""
    why = "; ".join(refusal.reasons) or ", ".join(refusal.codes) or "no reason given"
    return f"refused job {refusal.job_id}: {why}"


def _refused_dict(refusal: Refused | None, now: float) -> dict[str, Any] | None:
    if refusal is None:
        return None
    return {
        "job": refusal.job_id,
        "codes": list(refusal.codes),
        "reasons": list(refusal.reasons),
        "at": refusal.at,
        "age_s": round(max(0.0, now - refusal.at), 1),
        "note": refusal_note(refusal),
    }


def _policy_dict(policy: AcceptPolicy) -> dict[str, Any]:
    return {
        "max_slots": policy.max_slots,
        "max_queued_jobs": policy.max_queued_jobs,
        "packages": None if policy.packages is None else sorted(policy.packages),
        "max_priority": policy.max_priority,
        "max_bytes_per_day": policy.max_bytes_per_day,
        "hours": None if policy.hours is None else str(policy.hours),
        "own_first": policy.own_first,
        "max_hops": policy.max_hops,
    }


def _server_dict(server: ServerCapacity, *, spent: bool) -> dict[str, Any]:
    return {
        "name": server.name,
        "packages": dict(server.packages),
        "slots": server.slots,
        "free_slots": 0 if spent else server.free_slots,
        "advertised_free_slots": server.free_slots,
        "status": server.status,
        "tags": list(server.tags),
    }


def _capacity_summary(advert: CapacityAdvert | None, *, spent: bool) -> dict[str, Any] | None:
    if advert is None:
        return None
    advertised = sum(s.free_slots for s in advert.servers if s.status in ("idle", "busy"))
    summary: dict[str, Any] = {
        "servers": len(advert.servers),
        "free_slots": 0 if spent else advertised,
        "advertised_free_slots": advertised,
        "queue": advert.queue_depth,
    }
    for server in advert.servers:
        for package, version in server.packages.items():
            summary.setdefault(package, version)
    return summary
