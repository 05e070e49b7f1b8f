"""Federation configuration: this site's TLS files, listener, timings and peers.

Parsed once at start-up from the site TOML (already loaded with ``tomllib``)
into frozen dataclasses. The site configuration owns the top level of the file;
this module owns the ``[federation]`` table and the ``[[peers]]`` array (see
:data:`TOP_LEVEL_KEYS`) and rejects unknown keys inside them, naming the file
and the key. The TOML shape is documented in ``docs/federation.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from federation.errors import FederationConfigError
from federation.identity import SITE_NAME_RE
from federation.policy import AcceptPolicy, parse_policy
from federation.tls import TlsFiles

__all__ = [
    "DEFAULT_ADVERTISE_INTERVAL_S",
    "DEFAULT_LEASE_S",
    "TOP_LEVEL_KEYS",
    "FederationConfig",
    "PeerConfig",
    "parse_federation",
    "parse_peers",
]

TOP_LEVEL_KEYS = ("federation", "peers")
"""Top-level keys of the site TOML that belong to this module."""

DEFAULT_LEASE_S = 300.0
DEFAULT_ADVERTISE_INTERVAL_S = 10.0

_PEER_KEYS = ("name", "url", "forward", "accept", "preference", "cost", "max_mbps", "policy")
_FEDERATION_KEYS = (
    "listen",
    "ca",
    "cert",
    "key",
    "overflow_after",
    "lease",
    "advertise_interval",
    "split",
    "blob_port",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerConfig:
    name: str
    """The peer's site name; its certificate's common name must equal it."""
    url: str
    """Base URL of the peer's federation listener, ``https://host:port`` (no trailing slash)."""
    allow_forward_to: bool = True
    """We may send jobs to this peer (TOML ``forward``)."""
    allow_accept_from: bool = True
    """We accept jobs from this peer (TOML ``accept``)."""
    preference: int = 0
    """Placement tries peers with a higher preference first (TOML ``preference``)."""
    cost: float = 0.0
    """Among otherwise equal peers, placement tries the cheaper first (TOML ``cost``)."""
    policy: AcceptPolicy = field(default_factory=AcceptPolicy)
    """What we accept from this peer (TOML ``[peers.policy]``)."""
    max_mbps: float | None = None
    """Bandwidth cap for transfers with this peer, megabits per second (TOML ``max_mbps``);
    None: no cap. Shared by all streams: asset uploads to it and frame fetches from it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationConfig:
    tls: TlsFiles
    peers: tuple[PeerConfig, ...]
    listen: str
    """``host:port`` of the federation HTTPS listener (``[::1]:8743`` for IPv6)."""
    overflow_after_s: float | None
    """Estimated local wait after which a job may be forwarded; None: only when no
    local server can ever run it, or when the client asks for a site."""
    lease_s: float = DEFAULT_LEASE_S
    advertise_interval_s: float = DEFAULT_ADVERTISE_INTERVAL_S
    blob_port: int | None = None
    """Port of the threaded blob listener on ``listen``'s host (TOML ``blob_port``;
    :mod:`federation.blob_listener`); 0: any free port (senders learn it from ``HEAD``
    answers); None: no listener, blob bodies arrive on ``listen``."""
    split: bool = False
    """Split a job whose estimated local wait exceeds ``overflow_after`` instead of
    forwarding it whole (TOML ``split``): it renders here and peers get parts."""

    @property
    def listen_address(self) -> tuple[str, int]:
        """``listen`` split into host and port, ready for ``web.TCPSite``."""
        return _split_host_port(self.listen)

    def peer(self, name: str) -> PeerConfig | None:
        """The configured peer called ``name``, if any."""
        return next((p for p in self.peers if p.name == name), None)


def parse_federation(raw: Mapping[str, Any], *, source: str, base_dir: Path) -> FederationConfig:
    """Build a :class:`FederationConfig` from a loaded site TOML document.

    ``raw`` is the whole document; only ``[federation]`` and ``[[peers]]`` are read.
    Relative certificate paths are resolved against ``base_dir`` (normally the
    directory of the TOML file). Raises :class:`FederationConfigError`.
    """
    table = raw.get("federation")
    if not isinstance(table, Mapping):
        raise FederationConfigError(
            source, "federation", "missing [federation] table (listen, ca, cert, key)"
        )
    _reject_unknown(table, _FEDERATION_KEYS, source=source, prefix="federation.")
    peers_raw = raw.get("peers", [])
    if not isinstance(peers_raw, list):
        raise FederationConfigError(source, "peers", "must be an array of tables ([[peers]])")
    listen = _require_str(table, "listen", source=source, prefix="federation.")
    try:
        _split_host_port(listen)
    except ValueError as exc:
        raise FederationConfigError(source, "federation.listen", str(exc)) from exc
    tls = TlsFiles(
        ca=_path(table, "ca", source=source, base_dir=base_dir),
        cert=_path(table, "cert", source=source, base_dir=base_dir),
        key=_path(table, "key", source=source, base_dir=base_dir),
    )
    overflow = table.get("overflow_after")
    split = table.get("split", False)
    if not isinstance(split, bool):
        raise FederationConfigError(source, "federation.split", "must be true or false")
    blob_port = table.get("blob_port")
    if blob_port is not None and (
        isinstance(blob_port, bool) or not isinstance(blob_port, int) or not 0 <= blob_port < 65536
    ):
        raise FederationConfigError(
            source, "federation.blob_port", "must be a port number (1-65535), or 0 for any free one"
        )
    return FederationConfig(
        split=split,
        blob_port=blob_port,
        tls=tls,
        peers=parse_peers(peers_raw, source=source),
        listen=listen,
        overflow_after_s=None
        if overflow is None
        else _seconds(overflow, "federation.overflow_after", source=source),
        lease_s=_seconds(table.get("lease", DEFAULT_LEASE_S), "federation.lease", source=source),
        advertise_interval_s=_seconds(
            table.get("advertise_interval", DEFAULT_ADVERTISE_INTERVAL_S),
            "federation.advertise_interval",
            source=source,
        ),
    )


def parse_peers(raw: Sequence[Mapping[str, Any]], *, source: str) -> tuple[PeerConfig, ...]:
    """Build the ``[[peers]]`` entries; raises :class:`FederationConfigError` naming file and key."""
    peers: list[PeerConfig] = []
    for index, entry in enumerate(raw):
        prefix = f"peers[{index}]."
        if not isinstance(entry, Mapping):
            raise FederationConfigError(source, f"peers[{index}]", "must be a table ([[peers]])")
        _reject_unknown(entry, _PEER_KEYS, source=source, prefix=prefix)
        name = _require_str(entry, "name", source=source, prefix=prefix)
        if SITE_NAME_RE.fullmatch(name) is None:
            raise FederationConfigError(
                source,
                f"{prefix}name",
                f"{name!r} is not a site name (lowercase letters, digits and '-', at most 63)",
            )
        if any(p.name == name for p in peers):
            raise FederationConfigError(
                source, f"{prefix}name", f"peer {name!r} is configured twice; keep one entry"
            )
        peers.append(
            PeerConfig(
                name=name,
                url=_https_url(
                    _require_str(entry, "url", source=source, prefix=prefix), source, f"{prefix}url"
                ),
                allow_forward_to=_bool(entry, "forward", source=source, prefix=prefix),
                allow_accept_from=_bool(entry, "accept", source=source, prefix=prefix),
                preference=_preference(entry, source=source, prefix=prefix),
                cost=_cost(entry, source=source, prefix=prefix),
                max_mbps=_max_mbps(entry, source=source, prefix=prefix),
                policy=parse_policy(entry.get("policy"), source=source, prefix=f"{prefix}policy."),
            )
        )
    return tuple(peers)


# --- helpers --------------------------------------------------------------------


def _reject_unknown(
    table: Mapping[str, Any], known: Sequence[str], *, source: str, prefix: str
) -> None:
    for key in table:
        if key not in known:
            raise FederationConfigError(
                source, f"{prefix}{key}", f"unknown key; valid keys are {', '.join(known)}"
            )


def _require_str(table: Mapping[str, Any], key: str, *, source: str, prefix: str) -> str:
    value = table.get(key)
    if value is None:
        raise FederationConfigError(source, f"{prefix}{key}", "required key is missing")
    if not isinstance(value, str) or not value:
        raise FederationConfigError(
            source, f"{prefix}{key}", f"must be a non-empty string, got {value!r}"
        )
    return value


def _bool(table: Mapping[str, Any], key: str, *, source: str, prefix: str) -> bool:
    value = table.get(key, True)
    if not isinstance(value, bool):
        raise FederationConfigError(
            source, f"{prefix}{key}", f"must be true or false, got {value!r}"
        )
    return value


def _preference(table: Mapping[str, Any], *, source: str, prefix: str) -> int:
    value = table.get("preference", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FederationConfigError(
            source,
            f"{prefix}preference",
            f"must be an integer (higher is tried first), got {value!r}",
        )
    return value


def _cost(table: Mapping[str, Any], *, source: str, prefix: str) -> float:
    value = table.get("cost", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FederationConfigError(source, f"{prefix}cost", f"must be a number, got {value!r}")
    if value < 0:
        raise FederationConfigError(source, f"{prefix}cost", f"must not be negative, got {value!r}")
    return float(value)


def _max_mbps(table: Mapping[str, Any], *, source: str, prefix: str) -> float | None:
    value = table.get("max_mbps")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FederationConfigError(
            source, f"{prefix}max_mbps", f"must be a number of megabits per second, got {value!r}"
        )
    if value <= 0:
        raise FederationConfigError(
            source,
            f"{prefix}max_mbps",
            f"must be positive, got {value!r}; leave the key out for no cap",
        )
    return float(value)


def _path(table: Mapping[str, Any], key: str, *, source: str, base_dir: Path) -> Path:
    path = Path(_require_str(table, key, source=source, prefix="federation.")).expanduser()
    return path if path.is_absolute() else base_dir / path


def _seconds(value: object, key: str, *, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FederationConfigError(source, key, f"must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise FederationConfigError(
            source, key, f"must be a positive number of seconds, got {value!r}"
        )
    return float(value)


def _https_url(url: str, source: str, key: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise FederationConfigError(
            source, key, f"{url!r} must use https:// (federation always uses mutual TLS)"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise FederationConfigError(source, key, f"{url!r} has an invalid port") from exc
    if not parts.hostname or port is None:
        raise FederationConfigError(source, key, f"{url!r} must look like https://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise FederationConfigError(source, key, f"{url!r} must be just https://host:port, no path")
    return url.rstrip("/")


def _split_host_port(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{listen!r} must be host:port, e.g. 127.0.0.1:8743")
    return host, int(port_text)
