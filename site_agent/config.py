"""Site configuration: one TOML file, parsed once in ``main()`` into frozen dataclasses.

Defaults live here and nowhere else. Unknown keys are errors that name the file
and the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORT = 8700
DEFAULT_AGENT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


class ConfigError(Exception):
    """The site configuration is missing, unreadable or invalid."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    client_tokens: tuple[str, ...] = ()
    """Bearer tokens accepted from clients; empty means loopback-only, unauthenticated."""
    server_token: str = ""
    """Enrollment token render servers present in their hello; empty means loopback-only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    max_request_mb: int = 16
    """Largest JSON request body."""
    max_blob_mb: int = 4096
    """Largest single uploaded asset or frame."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulingConfig:
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 10.0
    """A server silent for this long is offline and its tasks are requeued."""
    bad_server_threshold: int = 3
    """Failures of one server on one job after which the job avoids that server."""
    lease_check_interval_s: float = 1.0
    stall_after_s: float = 0.0
    """A job no online server can run fails after waiting this long; 0: it waits for one."""
    lookahead: int = 2
    """Tasks per slot a render server may hold queued beyond its slots (look-ahead), each
    started the moment a slot frees; 0: never more tasks than slots. A queue deeper than one
    task per slot is refilled in batches (half of it at a time), so fewer dispatch rounds."""
    lookahead_below_s: float = 2.0
    """Only jobs whose finished tasks took less than this on average are queued ahead."""


MAX_WORKERS = 16
"""The most connection workers ``workers = "auto"`` starts (one per core but one, up to this)."""
MIN_CORES_FOR_WORKERS = 4
"""``workers = "auto"`` on a host with fewer cores: none (the agent's own process serves all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    workers: int = 0
    """Connection worker processes serving render servers' sockets; 0: the agent's own process."""


def auto_workers(cores: int | None) -> int:
    """One worker per core but one (the arbiter's), at most MAX_WORKERS; none on small hosts."""
    if cores is None or cores < MIN_CORES_FOR_WORKERS:
        return 0
    return min(cores - 1, MAX_WORKERS)


def parse_workers(value: Any, where: str) -> int:
    """A ``workers`` setting: a whole number from 0 to 64, or "auto" (:func:`auto_workers`)."""
    if value == "auto":
        return auto_workers(os.cpu_count())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 64:
        raise ConfigError(f'{where} must be a whole number from 0 to 64, or "auto"')
    return value


WEBHOOK_EVENTS = (
    "job.submitted",
    "job.started",
    "job.done",
    "job.failed",
    "job.cancelled",
    "job.forwarded",
    "job.accepted",
)
"""What a ``[[webhooks]]`` endpoint can be told about (its ``events``; all by default)."""
_WEBHOOK_KEYS = {"name", "url", "events", "secret", "timeout"}


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """One ``[[webhooks]]`` endpoint: where to POST which job events, signed with ``secret``."""

    name: str
    """Shown in ``spillway webhooks``; defaults to the URL's host (and port)."""
    url: str
    events: tuple[str, ...] = WEBHOOK_EVENTS
    secret: str
    """Standard Webhooks style: ``whsec_`` + base64 of the key, or any other text (its UTF-8 bytes)."""
    timeout_s: float = 10.0
    """Per delivery attempt; a slower answer counts as a failed attempt (retried)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteConfig:
    name: str
    host: str
    port: int
    database: str
    storage: Path
    assets: Path
    base_dir: Path
    auth: AuthConfig
    limits: LimitsConfig
    scheduling: SchedulingConfig
    agent: AgentConfig = AgentConfig()
    federation: dict[str, Any] | None = None
    """Raw ``[federation]`` table and ``[[peers]]``, parsed by the federation package."""
    webhooks: tuple[WebhookConfig, ...] = ()
    source: str = "<memory>"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


_TOP_KEYS = {
    "name",
    "listen",
    "database",
    "storage",
    "assets",
    "auth",
    "limits",
    "scheduling",
    "federation",
    "peers",
    "webhooks",
    "agent",
}


def load_config(path: Path) -> SiteConfig:
    """Read and validate a site TOML file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; see configs/studio.toml for an example"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(raw, source=str(path), base_dir=path.resolve().parent)


def parse_config(raw: dict[str, Any], *, source: str, base_dir: Path) -> SiteConfig:
    _no_unknown(raw, _TOP_KEYS, source, "")
    name = _req_str(raw, "name", source)
    if not name.replace("-", "").isalnum() or not name[0].isalnum() or len(name) > 63:
        raise ConfigError(
            f"{source}: name {name!r} must be letters, digits and dashes (at most 63)"
        )
    host, port = parse_listen(str(raw.get("listen", f"127.0.0.1:{DEFAULT_PORT}")), source)
    database = str(raw.get("database", "sqlite:spillway.db"))
    storage = _path(base_dir, _req_str(raw, "storage", source))
    assets = _path(base_dir, str(raw["assets"])) if "assets" in raw else storage / ".assets"
    federation = None
    if "federation" in raw or "peers" in raw:
        federation = {"federation": raw.get("federation", {}), "peers": raw.get("peers", [])}
    return SiteConfig(
        name=name,
        host=host,
        port=port,
        database=database,
        storage=storage,
        assets=assets,
        base_dir=base_dir,
        auth=_section(AuthConfig, raw.get("auth", {}), source, "auth"),
        limits=_section(LimitsConfig, raw.get("limits", {}), source, "limits"),
        scheduling=_section(SchedulingConfig, raw.get("scheduling", {}), source, "scheduling"),
        agent=_agent(raw.get("agent", {}), source),
        federation=federation,
        webhooks=parse_webhooks(raw.get("webhooks", []), source),
        source=source,
    )


def _agent(raw: Any, source: str) -> AgentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [agent] must be a table")
    _no_unknown(raw, {"workers"}, source, "agent")
    return AgentConfig(workers=parse_workers(raw.get("workers", 0), f"{source}: [agent] workers"))


def parse_webhooks(raw: Any, source: str) -> tuple[WebhookConfig, ...]:
    """``[[webhooks]]``: each endpoint checked, with the file, the entry and the key named."""
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        raise ConfigError(f"{source}: webhooks must be an array of tables ([[webhooks]])")
    hooks = [_webhook(entry, f"{source}: [[webhooks]] #{i + 1}") for i, entry in enumerate(raw)]
    names = [hook.name for hook in hooks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(
            f"{source}: two [[webhooks]] are named {twice[0]!r}; give each a distinct name"
        )
    return tuple(hooks)


def _webhook(raw: dict[str, Any], where: str) -> WebhookConfig:
    unknown = sorted(set(raw) - _WEBHOOK_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}'; known keys: {', '.join(sorted(_WEBHOOK_KEYS))}"
        )
    url = raw.get("url")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/:]+(:\d{1,5})?(/\S*)?", url):
        raise ConfigError(f"{where}: url must be an http(s) URL, e.g. https://ci.example/hooks")
    secret = raw.get("secret")
    if not isinstance(secret, str) or len(secret) < 16:
        raise ConfigError(
            f"{where}: secret must be a string of at least 16 characters (receivers check "
            "each delivery's signature with it), e.g. whsec_ followed by base64"
        )
    events = raw.get("events", list(WEBHOOK_EVENTS))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ConfigError(f'{where}: events must be a non-empty list such as ["job.done"]')
    bad = sorted(set(events) - set(WEBHOOK_EVENTS))
    if bad:
        raise ConfigError(
            f"{where}: unknown event {bad[0]!r}; known events: {', '.join(WEBHOOK_EVENTS)}"
        )
    timeout = raw.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"{where}: timeout must be a number of seconds above 0")
    name = raw.get("name", urlsplit(url).netloc)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}", name):
        raise ConfigError(f"{where}: name must be letters, digits, '.', '_', ':' or '-'")
    return WebhookConfig(
        name=name,
        url=url,
        events=tuple(dict.fromkeys(events)),
        secret=secret,
        timeout_s=float(timeout),
    )


def parse_listen(value: str, source: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{source}: listen {value!r} must look like 127.0.0.1:8700")
    return host.strip("[]"), int(port_text)


def _path(base_dir: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base_dir / p).resolve()


def _req_str(raw: dict[str, Any], key: str, source: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: missing required key '{key}' (a string)")
    return value


def _no_unknown(raw: dict[str, Any], known: set[str], source: str, prefix: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        where = f"[{prefix}] " if prefix else ""
        raise ConfigError(
            f"{source}: unknown key {where}'{unknown[0]}'; known keys: {', '.join(sorted(known))}"
        )


_SUFFIX_ALIASES = {
    "heartbeat_interval": "heartbeat_interval_s",
    "heartbeat_timeout": "heartbeat_timeout_s",
    "lease_check_interval": "lease_check_interval_s",
    "stall_after": "stall_after_s",
    "lookahead_below": "lookahead_below_s",
}
_ZERO_ALLOWED = frozenset({"lookahead"})
"""Settings for which 0 means off (every other number must be greater than 0)."""


def _section(cls: Any, raw: Any, source: str, name: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    fields = cls.__dataclass_fields__
    known = {_inverse_alias(f) for f in fields}
    _no_unknown(raw, known, source, name)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        field_name: str = _SUFFIX_ALIASES.get(str(key), str(key))
        if field_name in _ZERO_ALLOWED and type(value) is int and value == 0:
            values[field_name] = 0
            continue
        values[field_name] = _setting(
            fields[field_name].default, value, f"{source}: [{name}] {key}"
        )
    return cls(**values)


def _setting(default: Any, value: Any, where: str) -> Any:
    """Check a value against the type of its default; numbers must be positive."""
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where} must be a list of non-empty strings")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number")
    if isinstance(default, int) and not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number")
    if value <= 0:
        raise ConfigError(f"{where} must be greater than 0")
    return type(default)(value)


def _inverse_alias(field_name: str) -> str:
    for alias, target in _SUFFIX_ALIASES.items():
        if target == field_name:
            return alias
    return field_name
