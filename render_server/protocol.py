"""The wire protocol between a site agent and its render servers.

This module is the only definition of that protocol. Messages travel as msgpack
maps over one WebSocket per render server (the server dials out, so it works
through NAT). Every map carries ``type`` and ``v`` (the protocol version);
the remaining keys are the message's fields, by name. Decoding validates types
and raises :class:`ProtocolError` for anything malformed; nothing is ever
unpickled.

Rendered frames travel over HTTP (``PUT /api/v1/servers/{server}/tasks/{task}/attempts/{attempt}/frames/{frame}``),
fenced by task id, attempt and server like every other task report, except
small ones: when every frame of a task is at most INLINE_FRAME_BYTES and all
of them together at most INLINE_TOTAL_BYTES, they ride in ``TaskDone.frames``
(msgpack bin) and the agent stores them exactly as it stores an upload.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, get_type_hints

import msgpack

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
INLINE_FRAME_BYTES = 1024 * 1024
"""A frame at most this big may travel inline in TaskDone."""
INLINE_TOTAL_BYTES = 3 * 1024 * 1024
"""Inline frames of one TaskDone together; leaves room under MAX_MESSAGE_BYTES."""


class ProtocolError(Exception):
    """A message could not be decoded or does not fit the protocol."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRef:
    task_id: int
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    frame: int
    name: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InlineFrame:
    """A small rendered frame sent inside TaskDone instead of its own HTTP upload."""

    frame: int
    name: str
    sha256: str
    data: bytes


# --- render server -> agent --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    TYPE: ClassVar[str] = "hello"
    token: str
    name: str
    host: str
    cores: int
    memory_mb: int
    gpus: list[str] = field(default_factory=list)
    os: str = ""
    cpu_model: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    slots: int = 1
    running: list[TaskRef] = field(default_factory=list)
    """Tasks still running on the server, reported after a reconnect."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    TYPE: ClassVar[str] = "heartbeat"
    free_slots: int
    running: list[TaskRef] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted:
    TYPE: ClassVar[str] = "task_started"
    task_id: int
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskLog:
    TYPE: ClassVar[str] = "task_log"
    task_id: int
    attempt: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDone:
    TYPE: ClassVar[str] = "task_done"
    task_id: int
    attempt: int
    outputs: list[Output]
    started_at: float
    finished_at: float
    log_tail: str = ""
    frames: list[InlineFrame] = field(default_factory=list)
    """Small frames sent inline (not uploaded over HTTP); empty from older senders."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed:
    TYPE: ClassVar[str] = "task_failed"
    task_id: int
    attempt: int
    error: str
    log_tail: str = ""


# --- agent -> render server --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    server_id: str
    site: str
    heartbeat_interval_s: float
    keep: list[TaskRef] = field(default_factory=list)
    """Of the tasks the server reported running, those the agent still expects."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Assign:
    TYPE: ClassVar[str] = "assign"
    task_id: int
    attempt: int
    job_id: str
    job_name: str
    package: str
    version: str
    engine: str
    scene: str
    manifest: list[Asset]
    frames: list[int]
    output_name: str
    output_ext: str
    width: int
    height: int
    timeout_s: float
    threads: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    TYPE: ClassVar[str] = "cancel"
    task_id: int
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    TYPE: ClassVar[str] = "refused"
    reason: str


Message = (
    Hello
    | Heartbeat
    | TaskStarted
    | TaskLog
    | TaskDone
    | TaskFailed
    | Welcome
    | Assign
    | Cancel
    | Refused
)
MESSAGES: dict[str, type[Any]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Heartbeat,
        TaskStarted,
        TaskLog,
        TaskDone,
        TaskFailed,
        Welcome,
        Assign,
        Cancel,
        Refused,
    )
}
NESTED = (TaskRef, Asset, Output, InlineFrame)


def encode(msg: Message) -> bytes:
    """Serialise a message to msgpack bytes."""
    body = _plain(msg)
    body["type"] = msg.TYPE
    body["v"] = PROTOCOL_VERSION
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def _plain(value: Any) -> Any:
    """Dataclasses to dicts, recursively; faster than dataclasses.asdict, which deep-copies."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name, _, _ in _schema(type(value))}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def decode(data: bytes) -> Message:
    """Parse and validate one message; raises ProtocolError with the offending field named."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES} byte limit"
        )
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=MAX_MESSAGE_BYTES)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"not a msgpack message: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("a message must be a msgpack map")
    version = raw.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {version!r}; this side speaks {PROTOCOL_VERSION}"
        )
    kind = raw.pop("type", None)
    cls = MESSAGES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    return _build(cls, raw, kind)  # type: ignore[no-any-return]


def _build(cls: type[Any], raw: dict[str, Any], where: str) -> Any:
    values: dict[str, Any] = {}
    for name, hint, required in _schema(cls):
        if name not in raw:
            if required:
                raise ProtocolError(f"{where}: missing field '{name}'")
            continue
        value = raw[name]
        # Fast path for the common case (an exact scalar); a bool is never taken for an int.
        values[name] = (
            value
            if type(value) is hint and hint in _SCALARS
            else _coerce(hint, value, f"{where}.{name}")
        )
    return cls(**values)


_SCALARS = frozenset({int, str, bool, float, bytes})
_SCHEMAS: dict[type[Any], tuple[tuple[str, Any, bool], ...]] = {}


def _schema(cls: type[Any]) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type hint, required) per field, computed once per message class."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        hints = get_type_hints(cls)
        schema = _SCHEMAS[cls] = tuple(
            (
                f.name,
                hints[f.name],
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            )
            for f in dataclasses.fields(cls)
        )
    return schema


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the field type ``hint``; returns it converted (int -> float)."""
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{where}: expected a number")
        return float(value)
    if hint is bytes:
        if not isinstance(value, bytes):
            raise ProtocolError(f"{where}: expected bytes (msgpack bin)")
        return value
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ProtocolError(f"{where}: expected {hint.__name__}")
        return value
    if hint in NESTED:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected a map")
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is list:
        return _coerce_list(hint, value, where)
    if origin is dict:
        return _coerce_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(hint, value, where)
    raise ProtocolError(f"{where}: unsupported field type {hint!r}")  # pragma: no cover


def _coerce_list(hint: Any, value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"{where}: expected a list")
    (item,) = typing.get_args(hint)
    return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]


def _coerce_dict(hint: Any, value: Any, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: expected a map")
    key_t, val_t = typing.get_args(hint)
    return {
        _coerce(key_t, k, where): _coerce(val_t, v, f"{where}[{k!r}]") for k, v in value.items()
    }


def _coerce_union(hint: Any, value: Any, where: str) -> Any:
    for option in typing.get_args(hint):
        if option is type(None) and value is None:
            return None
        try:
            return _coerce(option, value, where)
        except ProtocolError:
            continue
    raise ProtocolError(f"{where}: unexpected value {value!r}")
