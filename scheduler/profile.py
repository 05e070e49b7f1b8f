"""Job profiles, render-server capabilities, and why a server can or cannot run a job.

:func:`explain` is the single matching rule; dispatch and placement use it (or
its fast boolean twin :func:`matches`) so the reasons shown to users are the
same rules the scheduler applies.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from scheduler.errors import ProfileError
from scheduler.versions import parse_specifier, satisfies
from spillway.packages.features import FEATURE_HINTS, describe_feature, feature_package
from spillway.packages.requirements import RequirementError, parse_requirement

__all__ = [
    "ONLINE_STATUSES",
    "JobProfile",
    "Match",
    "Mismatch",
    "ServerStatus",
    "ServerView",
    "explain",
    "explain_unmatched",
    "matches",
]

_PACKAGE_NAME = re.compile(r"[a-z][a-z0-9_-]*")


class ServerStatus(StrEnum):
    """Render-server states as reported by the site agent."""

    IDLE = "idle"
    BUSY = "busy"
    OFFLINE = "offline"
    DISABLED = "disabled"


ONLINE_STATUSES = frozenset({ServerStatus.IDLE.value, ServerStatus.BUSY.value})
"""Statuses in which a server accepts work; anything else (incl. unknown) is offline."""


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ProfileError(f"{name} must be at least {minimum}, got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobProfile:
    """What a job needs from a render server, plus its per-task policy."""

    package: str
    version: str = ""
    min_memory_mb: int = 0
    min_cores: int = 1
    gpu: bool = False
    tags: frozenset[str] = frozenset()
    max_servers: int = 0
    task_timeout_s: float = 3600.0
    max_attempts: int = 3
    engine: str = ""
    features: frozenset[str] = frozenset()
    """Package features a server must report among its tags (``blender:oidn``)."""

    def __post_init__(self) -> None:
        self._check_package_and_version()
        for name, minimum in (("min_memory_mb", 0), ("min_cores", 0), ("max_servers", 0)):
            _check_int(name, getattr(self, name), minimum)
        _check_int("max_attempts", self.max_attempts, 1)
        timeout = self.task_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ProfileError(f"task_timeout_s must be a number of seconds, got {timeout!r}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ProfileError(
                f"task_timeout_s must be a positive number of seconds, got {timeout}"
            )
        if not isinstance(self.gpu, bool):
            raise ProfileError(f"gpu must be true or false, got {self.gpu!r}")
        if not isinstance(self.engine, str):
            raise ProfileError(f"engine must be a string such as 'cycles', got {self.engine!r}")
        object.__setattr__(self, "tags", self._checked_names("tags", self.tags))
        object.__setattr__(self, "features", self._checked_names("features", self.features))
        for feature in self.features:
            if feature_package(feature) != self.package:
                raise ProfileError(
                    f"feature {feature!r} is not a {self.package} feature; "
                    f"{self.package} features are named {self.package}:FEATURE"
                )

    def _check_package_and_version(self) -> None:
        if not isinstance(self.package, str) or not _PACKAGE_NAME.fullmatch(self.package):
            raise ProfileError(
                f"bad package name {self.package!r}: use lowercase letters, digits, '-' or '_', "
                "starting with a letter, e.g. povray, blender or builtin"
            )
        if not isinstance(self.version, str):
            raise ProfileError(f"version must be a string such as '>=3.7', got {self.version!r}")
        compact = "".join(self.version.split())
        if compact and parse_specifier(compact) is None:
            raise ProfileError(
                f"bad version specifier {self.version!r} for {self.package}: "
                "use PEP 440 forms like >=3.7, ==3.4.* or >=3.0,<4"
            )
        object.__setattr__(self, "version", compact)

    @staticmethod
    def _checked_names(field: str, names: object) -> frozenset[str]:
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise ProfileError(f"{field} must be a set of strings, got {names!r}")
        name_set = frozenset(names)
        for name in name_set:
            if not isinstance(name, str) or not name.strip() or "," in name:
                raise ProfileError(
                    f"bad {field[:-1]} {name!r}: {field} are non-empty names without commas"
                )
        return name_set

    @classmethod
    def from_requirement(cls, requirement: str, **kwargs: Any) -> JobProfile:
        """Build a profile from ``"povray>=3.7"``; other fields come from ``kwargs``."""
        clash = sorted({"package", "version"} & kwargs.keys())
        if clash:
            raise ProfileError(
                f"{', '.join(clash)} given twice: put the package and version in the "
                f"requirement only, e.g. {requirement!r}"
            )
        try:
            name, spec = parse_requirement(requirement)
        except RequirementError as exc:
            raise ProfileError(str(exc)) from None
        try:
            return cls(package=name, version=spec, **kwargs)
        except TypeError as exc:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ProfileError(f"bad profile option: {exc}; known options are {known}") from exc

    @property
    def requirement(self) -> str:
        """The package requirement, e.g. ``"povray>=3.7"`` or just ``"povray"``."""
        return f"{self.package}{self.version}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe dict (tags as a sorted list) that :meth:`from_dict` reads back."""
        result: dict[str, object] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
        }
        result["tags"] = sorted(self.tags)
        # Left out when empty: a peer or store that predates features reads the dict as before.
        if self.features:
            result["features"] = sorted(self.features)
        else:
            del result["features"]
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> JobProfile:
        """Build a profile from a dict such as one made by :meth:`to_dict`."""
        if not isinstance(data, Mapping):
            raise ProfileError(f"a job profile must be an object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(key) for key in data if key not in names)
        if unknown:
            raise ProfileError(
                f"unknown job profile keys: {', '.join(unknown)}; known keys are {', '.join(names)}"
            )
        if "package" not in data:
            raise ProfileError('a job profile needs a \'package\', e.g. {"package": "povray"}')
        values: dict[str, Any] = dict(data)
        tags = values.get("tags", [])
        if isinstance(tags, str) or not isinstance(tags, list | tuple | set | frozenset):
            raise ProfileError(f"tags must be a list of strings, got {tags!r}")
        values["tags"] = frozenset(tags)
        features = values.get("features", [])
        if isinstance(features, str) or not isinstance(features, list | tuple | set | frozenset):
            raise ProfileError(f"features must be a list of strings, got {features!r}")
        values["features"] = frozenset(features)
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerView:
    """What the scheduler knows about one render server."""

    id: str
    name: str
    cores: int
    memory_mb: int
    gpus: int
    packages: Mapping[str, str]
    tags: frozenset[str]
    slots: int
    free_slots: int
    status: str
    ahead_slots: int = 0
    """Free places in the server's queue: tasks it would take beyond its slots, each to
    start the moment a slot frees (look-ahead, :mod:`scheduler.lookahead`)."""

    @property
    def online(self) -> bool:
        """Whether the server accepts work (status idle or busy)."""
        return self.status in ONLINE_STATUSES


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """The server can run the job."""

    server_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    """The server cannot run the job, and why."""

    server_id: str
    reasons: tuple[str, ...]


def _package_reason(profile: JobProfile, server: ServerView) -> str | None:
    version = server.packages.get(profile.package)
    if version is None:
        return f"has no {profile.package}"
    if not satisfies(version, profile.version):
        return f"{profile.package} {version} does not satisfy {profile.version}"
    return None


def _features_text(features: Iterable[str]) -> str:
    return " and ".join(describe_feature(f) for f in sorted(features))


def _feature_reason(profile: JobProfile, server: ServerView) -> str | None:
    missing = profile.features - server.tags
    if not missing:
        return None
    version = server.packages.get(profile.package)
    has = f"has {profile.package} {version}" if version else f"has no {profile.package}"
    return f"needs {profile.package} with {_features_text(missing)}; {has} without it"


def _reasons(profile: JobProfile, server: ServerView) -> list[str]:
    reasons: list[str] = []
    package = _package_reason(profile, server)
    if package is not None:
        reasons.append(package)
    elif (feature := _feature_reason(profile, server)) is not None:
        reasons.append(feature)
    if server.memory_mb < profile.min_memory_mb:
        reasons.append(f"{server.memory_mb} MiB memory < {profile.min_memory_mb} MiB required")
    if server.cores < profile.min_cores:
        reasons.append(f"{server.cores} cores < {profile.min_cores} required")
    if profile.gpu and server.gpus < 1:
        reasons.append("no GPU")
    missing = profile.tags - server.tags
    if missing:
        reasons.append(f"missing tags: {', '.join(sorted(missing))}")
    return reasons


def explain(profile: JobProfile, server: ServerView) -> Match | Mismatch:
    """Whether ``server`` is capable of running jobs with ``profile``, with reasons if not.

    Capability only: status and free slots are ignored. ``engine`` is not
    matched because servers do not advertise engines separately; ``features``
    (``blender:oidn``) are matched against the tags the server reports.
    """
    reasons = _reasons(profile, server)
    if reasons:
        return Mismatch(server_id=server.id, reasons=tuple(reasons))
    return Match(server_id=server.id)


def matches(profile: JobProfile, server: ServerView) -> bool:
    """Fast boolean form of :func:`explain` (no reason strings are built)."""
    version = server.packages.get(profile.package)
    return (
        version is not None
        and server.memory_mb >= profile.min_memory_mb
        and server.cores >= profile.min_cores
        and (server.gpus >= 1 or not profile.gpu)
        and profile.tags <= server.tags
        and profile.features <= server.tags
        and satisfies(version, profile.version)
    )


def _servers(count: int) -> str:
    return f"{count} server" if count == 1 else f"{count} servers"


def _grouped_reasons(profile: JobProfile, servers: Sequence[ServerView]) -> tuple[bool, list[str]]:
    """Count why servers fail; return (no server has the package, summary parts)."""
    counts: Counter[tuple[str, str]] = Counter()
    package_failures = 0
    for server in servers:
        reasons = _reasons(profile, server)
        version = server.packages.get(profile.package)
        if _package_reason(profile, server) is not None:
            package_failures += 1
            reasons = reasons[1:]
            counts[("missing", "") if version is None else ("version", version)] += 1
        elif _feature_reason(profile, server) is not None:
            reasons = reasons[1:]
            missing = _features_text(profile.features - server.tags)
            counts[("feature", f"{version} without {missing}")] += 1
        for reason in reasons:
            counts["other", reason] += 1
    all_lack_package = package_failures == len(servers)
    parts: list[str] = []
    order = {"version": 0, "feature": 0, "missing": 1, "other": 2}
    ranked = sorted(counts.items(), key=lambda item: (order[item[0][0]], -item[1], item[0][1]))
    for (kind, text), count in ranked:
        if kind == "missing":
            if not all_lack_package:
                parts.append(
                    f"{_servers(count)} {'has' if count == 1 else 'have'} no {profile.package}"
                )
        elif kind in ("version", "feature"):
            parts.append(
                f"{_servers(count)} {'has' if count == 1 else 'have'} {profile.package} {text}"
            )
        else:
            parts.append(f"{_servers(count)}: {text}")
    return all_lack_package, parts


def _no_server_has_features(profile: JobProfile, servers: Sequence[ServerView]) -> bool:
    """Whether the job needs features that no server with the right package has."""
    return bool(profile.features) and not any(
        profile.features <= s.tags for s in servers if _package_reason(profile, s) is None
    )


def explain_unmatched(
    profile: JobProfile, servers: Sequence[ServerView], avoid: frozenset[str] = frozenset()
) -> str:
    """Summarise, for users, why no server is running a job with ``profile``.

    ``avoid`` holds servers excluded for this job after repeated failures.
    Reasons are grouped and counted, e.g. ``"no server has povray>=3.8; 2
    servers have povray 3.7.0.10"``.
    """
    if not servers:
        return "no render servers are registered"
    capable = [server for server in servers if matches(profile, server)]
    if not capable:
        all_lack_package, parts = _grouped_reasons(profile, servers)
        if all_lack_package:
            lead = f"no server has {profile.requirement}"
        elif _no_server_has_features(profile, servers):
            hints = sorted({FEATURE_HINTS[f] for f in profile.features if f in FEATURE_HINTS})
            lead = f"needs {profile.requirement} with {_features_text(profile.features)}"
            lead += f" ({'; '.join(hints)})" if hints else ""
        else:
            lead = f"no server can run {profile.requirement} with this profile"
        shown = parts[:5]
        if len(parts) > 5:
            more = len(parts) - 5
            shown.append(f"and {more} more reason{'' if more == 1 else 's'}")
        return "; ".join([lead, *shown])
    usable = [server for server in capable if server.id not in avoid]
    if not usable:
        noun = (
            "the only capable server is"
            if len(capable) == 1
            else f"all {len(capable)} capable servers are"
        )
        return f"{noun} avoided for this job after repeated failures"
    online = [server for server in usable if server.online]
    if not online:
        if len(usable) == 1:
            return "1 server matches but it is offline/disabled"
        return f"{len(usable)} servers match but all are offline/disabled"
    return f"{_servers(len(online))} online can run {profile.requirement}; waiting for a free slot"
