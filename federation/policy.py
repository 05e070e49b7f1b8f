"""What a site accepts from one peer: the ``[peers.policy]`` table and its checks.

The receiving site decides; the origin only learns the outcome (a refusal with
machine-readable codes and one human line per reason) and places the job
elsewhere. :func:`refusals` is pure: the caller gathers the facts (the offer,
what that peer already has queued here, the bytes it sent in the last 24 hours,
the local time) and gets back every reason to refuse, empty when the offer fits.

``max_slots`` and ``own_first`` act later, in the dispatcher
(:class:`scheduler.dispatch.GuestLimit`); ``max_hops`` also decides whether an
accepted job may be forwarded again from here.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.errors import FederationConfigError

__all__ = [
    "DEFAULT_MAX_HOPS",
    "POLICY_KEYS",
    "AcceptPolicy",
    "HourWindow",
    "OfferFacts",
    "Refusal",
    "RefusalCode",
    "parse_policy",
    "refusals",
]

DEFAULT_MAX_HOPS = 1
"""Default: accept jobs only straight from their origin, and never forward them again."""

POLICY_KEYS = (
    "max_slots",
    "max_queued_jobs",
    "packages",
    "max_priority",
    "max_bytes_per_day",
    "hours",
    "own_first",
    "max_hops",
)

_HOURS_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class RefusalCode(enum.StrEnum):
    """Why an offer was refused, for programs (the message is for people)."""

    NOT_ACCEPTED = "not_accepted"
    INVALID = "invalid"
    PACKAGE = "package"
    PRIORITY = "priority"
    QUEUED_JOBS = "queued_jobs"
    BYTES_PER_DAY = "bytes_per_day"
    HOURS = "hours"
    LOOP = "loop"
    HOP_LIMIT = "hop_limit"
    INCAPABLE = "incapable"


LOAD_CODES = frozenset({RefusalCode.QUEUED_JOBS, RefusalCode.BYTES_PER_DAY, RefusalCode.HOURS})
"""Refusals for the receiving site's load or time of day rather than for the job: the
same job may be accepted later. Any other refusal stands for that job."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    code: RefusalCode
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HourWindow:
    """Accepted hours, local time; ``start > end`` spans midnight (``20:00-06:00``)."""

    start: datetime.time
    end: datetime.time

    def contains(self, now: datetime.time) -> bool:
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptPolicy:
    """Limits on jobs accepted from one peer; ``None`` means no limit."""

    max_slots: int | None = None
    """Render-server slots that peer's jobs may hold at once here."""
    max_queued_jobs: int | None = None
    """Unfinished jobs from that peer here (a new offer beyond it is refused)."""
    packages: frozenset[str] | None = None
    """Render packages accepted; None: every package this site knows."""
    max_priority: int | None = None
    max_bytes_per_day: int | None = None
    """Asset bytes offered by that peer and accepted over the last 24 hours."""
    hours: HourWindow | None = None
    own_first: bool = True
    """This site's own jobs are dispatched before that peer's at equal priority."""
    max_hops: int = DEFAULT_MAX_HOPS
    """Forwards a job from that peer may have taken, counting the one to here; an
    accepted job may be forwarded again from here only while the count stays within."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferFacts:
    """What the receiving site knows when an offer arrives."""

    site: str
    """This site's name."""
    package: str
    priority: int
    path: tuple[str, ...]
    """Sites the job went through before this one, its origin first."""
    offer_bytes: int
    queued_jobs: int
    bytes_today: int
    local_time: datetime.time


def refusals(policy: AcceptPolicy, facts: OfferFacts) -> list[Refusal]:
    """Every reason ``policy`` refuses the offer described by ``facts``; empty: accept."""
    found: list[Refusal] = []
    if facts.site in facts.path:
        found.append(
            Refusal(
                code=RefusalCode.LOOP,
                message=f"the job already went through {facts.site} "
                f"(path {' -> '.join(facts.path)}); it is never accepted twice",
            )
        )
    if len(facts.path) > policy.max_hops:
        found.append(
            Refusal(
                code=RefusalCode.HOP_LIMIT,
                message=f"the job was forwarded {len(facts.path)} times "
                f"(path {' -> '.join(facts.path)}); max_hops is {policy.max_hops}",
            )
        )
    if policy.packages is not None and facts.package not in policy.packages:
        allowed = ", ".join(sorted(policy.packages)) or "none"
        found.append(
            Refusal(
                code=RefusalCode.PACKAGE,
                message=f"package {facts.package} not accepted (accepted: {allowed})",
            )
        )
    if policy.max_priority is not None and facts.priority > policy.max_priority:
        found.append(
            Refusal(
                code=RefusalCode.PRIORITY,
                message=f"priority {facts.priority} is above the cap {policy.max_priority}",
            )
        )
    found += _quota_refusals(policy, facts)
    return found


def closed_now(
    policy: AcceptPolicy, *, queued_jobs: int, bytes_today: int, local_time: datetime.time
) -> list[Refusal]:
    """The refusals every offer from that peer gets now, whatever its job: its queue here
    is full, no byte is left of its daily quota, or it is outside the accepted hours.
    Its capacity advert then shows no free slot, so it offers nothing to be refused."""
    facts = OfferFacts(
        site="",
        package="",
        priority=0,
        path=(),
        offer_bytes=1,
        queued_jobs=queued_jobs,
        bytes_today=bytes_today,
        local_time=local_time,
    )
    return _quota_refusals(policy, facts)


def _quota_refusals(policy: AcceptPolicy, facts: OfferFacts) -> list[Refusal]:
    found: list[Refusal] = []
    if policy.max_queued_jobs is not None and facts.queued_jobs >= policy.max_queued_jobs:
        found.append(
            Refusal(
                code=RefusalCode.QUEUED_JOBS,
                message=f"{facts.queued_jobs} jobs from this site are already queued here "
                f"(max_queued_jobs {policy.max_queued_jobs})",
            )
        )
    limit = policy.max_bytes_per_day
    if limit is not None and facts.bytes_today + facts.offer_bytes > limit:
        found.append(
            Refusal(
                code=RefusalCode.BYTES_PER_DAY,
                message=f"{facts.offer_bytes} bytes would exceed the daily quota: "
                f"{facts.bytes_today} of {limit} bytes used in the last 24 h",
            )
        )
    if policy.hours is not None and not policy.hours.contains(facts.local_time):
        found.append(
            Refusal(
                code=RefusalCode.HOURS,
                message=f"jobs are accepted only {policy.hours} (local time here is "
                f"{facts.local_time:%H:%M})",
            )
        )
    return found


# --- parsing --------------------------------------------------------------------


def parse_policy(raw: object, *, source: str, prefix: str) -> AcceptPolicy:
    """Build the policy of one ``[peers.policy]`` table (``prefix`` is ``peers[i].policy.``)."""
    if raw is None:
        return AcceptPolicy()
    if not isinstance(raw, Mapping):
        raise FederationConfigError(source, prefix.rstrip("."), "must be a table ([peers.policy])")
    for key in raw:
        if key not in POLICY_KEYS:
            raise FederationConfigError(
                source, f"{prefix}{key}", f"unknown key; valid keys are {', '.join(POLICY_KEYS)}"
            )
    hops = _count(raw, "max_hops", source=source, prefix=prefix, minimum=1)
    return AcceptPolicy(
        max_slots=_count(raw, "max_slots", source=source, prefix=prefix),
        max_queued_jobs=_count(raw, "max_queued_jobs", source=source, prefix=prefix),
        packages=_packages(raw.get("packages"), source=source, key=f"{prefix}packages"),
        max_priority=_integer(raw, "max_priority", source=source, prefix=prefix),
        max_bytes_per_day=_count(raw, "max_bytes_per_day", source=source, prefix=prefix),
        hours=_hours(raw.get("hours"), source=source, key=f"{prefix}hours"),
        own_first=_flag(raw, "own_first", source=source, prefix=prefix),
        max_hops=DEFAULT_MAX_HOPS if hops is None else hops,
    )


def _integer(raw: Mapping[str, Any], key: str, *, source: str, prefix: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FederationConfigError(source, f"{prefix}{key}", f"must be an integer, got {value!r}")
    return value


def _count(
    raw: Mapping[str, Any], key: str, *, source: str, prefix: str, minimum: int = 0
) -> int | None:
    value = _integer(raw, key, source=source, prefix=prefix)
    if value is not None and value < minimum:
        raise FederationConfigError(
            source, f"{prefix}{key}", f"must be at least {minimum}, got {value}"
        )
    return value


def _flag(raw: Mapping[str, Any], key: str, *, source: str, prefix: str) -> bool:
    value = raw.get(key, True)
    if not isinstance(value, bool):
        raise FederationConfigError(
            source, f"{prefix}{key}", f"must be true or false, got {value!r}"
        )
    return value


def _packages(value: object, *, source: str, key: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise FederationConfigError(
            source, key, f'must be a list of package names, e.g. ["povray"], got {value!r}'
        )
    names = list(value)
    if not all(isinstance(name, str) and name for name in names):
        raise FederationConfigError(source, key, f"package names must be strings, got {value!r}")
    return frozenset(names)


def _hours(value: object, *, source: str, key: str) -> HourWindow | None:
    if value is None:
        return None
    match = _HOURS_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise FederationConfigError(
            source, key, f'must be "HH:MM-HH:MM" in local time, e.g. "20:00-06:00", got {value!r}'
        )
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = datetime.time(h1, m1), datetime.time(h2, m2)
    if start == end:
        raise FederationConfigError(
            source, key, f"{value!r} is an empty window; leave hours out to accept at any time"
        )
    return HourWindow(start=start, end=end)
