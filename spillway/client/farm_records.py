"""Typed records of the farm: the agent's health, its render servers and its peer sites
(``/health``, ``/servers``, ``/peers``). Reached through :mod:`spillway.client.records`,
which loads this module on first use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from spillway.client.records import Json, opt_float, opt_str

__all__ = ["Health", "Peer", "Server", "ServerMatch"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """``GET /health``: the site's name and the agent's version."""

    site: str
    version: str

    @classmethod
    def from_json(cls, data: Json) -> Health:
        return cls(site=str(data.get("site", "")), version=str(data.get("version", "")))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerMatch:
    """Whether a server can render a given job, and if not why."""

    ok: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    """A render server with its hardware, packages and load."""

    id: str
    name: str
    status: str
    host: str = ""
    slots: int = 0
    free_slots: int = 0
    cores: int = 0
    memory_mb: int = 0
    gpus: tuple[str, ...] = ()
    packages: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    last_heartbeat: float | None = None
    match: ServerMatch | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Server:
        match = data.get("match")
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            status=str(data.get("status", "")),
            host=str(data.get("host") or ""),
            slots=int(data.get("slots", 0)),
            free_slots=int(data.get("free_slots", 0)),
            cores=int(data.get("cores", 0)),
            memory_mb=int(data.get("memory_mb", 0)),
            gpus=tuple(str(g) for g in data.get("gpus") or ()),
            packages={str(k): str(v) for k, v in (data.get("packages") or {}).items()},
            tags=tuple(str(t) for t in data.get("tags") or ()),
            last_heartbeat=opt_float(data.get("last_heartbeat")),
            match=None
            if match is None
            else ServerMatch(ok=bool(match.get("ok")), reasons=tuple(match.get("reasons") or ())),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """A federation peer site as this site sees it."""

    name: str
    url: str = ""
    state: str = ""
    forward: bool = False
    accept: bool = False
    last_seen: float | None = None
    last_error: str | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Peer:
        return cls(
            name=str(data.get("name", "")),
            url=str(data.get("url") or ""),
            state=str(data.get("state") or ""),
            forward=bool(data.get("forward", False)),
            accept=bool(data.get("accept", False)),
            last_seen=opt_float(data.get("last_seen")),
            last_error=opt_str(data.get("last_error")),
            raw=dict(data),
        )
