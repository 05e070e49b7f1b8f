"""One msgpack codec for the project's wire protocols.

A protocol defines its messages as frozen dataclasses, each with a class-level
``TYPE`` tag, and builds one :class:`Codec` over them. The codec turns a message
into a map of its fields by name (readable keys, never pickle) and back,
driven by the dataclass field types:

- ``int``, ``str``, ``bool``, ``bytes`` (msgpack bin), ``float`` (an int is
  accepted and converted), ``Any`` (taken as it is);
- nested dataclasses (maps), ``list[T]`` and ``tuple[T, ...]`` (lists),
  ``dict[K, V]`` and ``Mapping[K, V]`` (maps), enums (by value), ``T | None``
  (other field types are refused when the codec first meets the class);
- ``Annotated[T, Check(...)]`` and ``Annotated[Record, CheckFields(...)]``
  constraints (:mod:`spillway.core.constraints`), applied after the type check.

Decoding checks every field and raises the protocol's own error type naming
the value's full path (``task_done.frames[0].data: expected bytes ...``), with
the path in its ``field`` attribute. Keys a message does not define are
ignored, so a newer peer can add optional fields; a missing field takes its
default or is an error. Each message class's field table is built once, when
the codec is made (so an unsupported field type fails at import): decoding is on the render servers' hot path (thousands of
messages a second), so a field whose value already has the exact expected
scalar type costs one type comparison.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, ClassVar, Protocol, TypeVar

import msgpack

from spillway.core.constraints import Check, CheckFields

__all__ = ["Codec", "ErrorFactory", "Tagged"]

T = TypeVar("T")

Where = str | tuple[Any, str | int]
"""Where a value sits, built lazily: a root name, or (parent path, ".field" or list index)."""
Decoder = Callable[[Any, Where], Any]
Encoder = Callable[[Any], Any]

_MISSING: Any = object()


class Tagged(Protocol):
    """A message class: a dataclass with a class-level ``TYPE`` tag."""

    TYPE: ClassVar[str]


class ErrorFactory(Protocol):
    """The protocol's error type: called with the message and the offending field's path."""

    def __call__(self, message: str, /, *, field: str | None = None) -> Exception: ...


class _FieldError(Exception):
    """A value does not fit its field; the codec re-raises it as the protocol's error."""

    def __init__(self, message: str, field: str) -> None:
        self.field = field
        super().__init__(message)


class Codec:
    """One wire protocol: its message classes, version, size limit and error type."""

    def __init__(
        self,
        *,
        messages: Iterable[type[Tagged]],
        version: int,
        error: ErrorFactory,
        max_bytes: int,
        noun: str = "message",
    ) -> None:
        self.types: Mapping[str, type[Any]] = {cls.TYPE: cls for cls in messages}
        self.version = version
        self.max_bytes = max_bytes
        self._error = error
        self._noun = noun
        self._compiler = _Compiler()
        for cls in self.types.values():  # refuse a field type it cannot carry now, not mid-session
            self._compiler.record(cls)

    # --- one record <-> its map of fields ------------------------------------------

    def to_fields(self, value: Any) -> dict[str, Any]:
        """A dataclass's fields by name, as plain msgpack-able values (lists and dicts)."""
        result: dict[str, Any] = self._compiler.record(type(value)).encode(value)
        return result

    def from_fields(self, cls: type[T], raw: object, where: str) -> T:
        """Build ``cls`` from a decoded map; raises the protocol's error naming the bad field."""
        try:
            result: T = self._compiler.record(cls).decode(raw, where)
        except _FieldError as exc:
            raise self._error(str(exc), field=exc.field) from None
        return result

    # --- framing ------------------------------------------------------------------------

    def check_version(self, version: object) -> None:
        if version != self.version:
            raise self._error(
                f"unsupported protocol version {version!r}; this side speaks {self.version}: "
                "upgrade the older side",
                field="v",
            )

    def message_type(self, name: object) -> type[Any]:
        """The message class tagged ``name``; raises the protocol's error for an unknown tag."""
        cls = self.types.get(name) if isinstance(name, str) else None
        if cls is None:
            raise self._error(
                f"unknown message type {name!r}; known types: {', '.join(sorted(self.types))}",
                field="type",
            )
        return cls

    def unpack(self, data: object) -> dict[str, Any]:
        """msgpack bytes to a map, refusing oversized input before parsing it."""
        noun = self._noun
        if not isinstance(data, bytes | bytearray | memoryview):
            raise self._error(f"the {noun} must be bytes, got {type(data).__name__}")
        if len(data) > self.max_bytes:
            raise self._error(
                f"{noun} of {len(data)} bytes exceeds the {self.max_bytes} byte limit"
            )
        try:
            raw = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=self.max_bytes)
        except Exception as exc:  # msgpack raises several unrelated types for bad input
            raise self._error(f"not a msgpack {noun}: {exc}") from None
        if not isinstance(raw, dict):
            raise self._error(f"the {noun} must be a msgpack map, got {type(raw).__name__}")
        return raw

    def encode(self, msg: Tagged) -> bytes:
        """The message as one msgpack map: its fields plus ``type`` and ``v``."""
        body = self.to_fields(msg)
        body["type"] = msg.TYPE
        body["v"] = self.version
        data: bytes = msgpack.packb(body, use_bin_type=True)
        return data

    def decode(self, data: object) -> Any:
        """Parse and validate a map made by :meth:`encode`."""
        raw = self.unpack(data)
        self.check_version(raw.pop("v", None))
        cls = self.message_type(raw.pop("type", None))
        return self.from_fields(cls, raw, cls.TYPE)


# --- compiled field tables ------------------------------------------------------------


_Field = tuple[str, str, type | None, Decoder, Encoder | None, bool]
"""name, ".name" path segment, exact scalar type taken as is, decoder, encoder (None: as is),
required."""


class _Record:
    """How one dataclass (with optional extra field checks) is read and written."""

    __slots__ = ("cls", "fields")

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.fields: tuple[_Field, ...] = ()

    def decode(self, raw: Any, path: Where) -> Any:
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise _failure(path, "a map", raw)
        values: dict[str, Any] = {}
        for name, segment, exact, decode, _, required in self.fields:
            value = raw.get(name, _MISSING)
            if value is _MISSING:
                if required:
                    parent = _render(path)
                    raise _FieldError(
                        f"{parent}: missing field '{name}' ({parent}.{name} is required)",
                        f"{parent}.{name}",
                    )
            elif type(value) is exact:
                values[name] = value
            else:
                values[name] = decode(value, (path, segment))
        return self.cls(**values)

    def encode(self, value: Any) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name, _, _, _, encode, _ in self.fields:
            item = getattr(value, name)
            body[name] = item if encode is None else encode(item)
        return body


class _Compiler:
    """Builds and caches the field table of each record class, once."""

    def __init__(self) -> None:
        self._records: dict[tuple[type[Any], CheckFields | None], _Record] = {}

    def record(self, cls: type[Any], extra: CheckFields | None = None) -> _Record:
        record = self._records.get((cls, extra))
        if record is None:
            # Registered before its fields are compiled, so a record may contain itself.
            record = self._records[(cls, extra)] = _Record(cls)
            record.fields = self._fields(cls, extra)
        return record

    def _fields(self, cls: type[Any], extra: CheckFields | None) -> tuple[_Field, ...]:
        hints = typing.get_type_hints(cls, include_extras=True)
        checks = dict(extra.checks) if extra is not None else {}
        fields = []
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if f.name in checks:
                hint = Annotated[hint, checks[f.name]]
            exact, decode = self.decoder(hint)
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            fields.append((f.name, f".{f.name}", exact, decode, self.encoder(hint), required))
        return tuple(fields)

    def decoder(self, hint: Any) -> tuple[type | None, Decoder]:
        """(exact, decode): a value of exactly type ``exact`` is valid as it is."""
        origin = typing.get_origin(hint)
        if origin is Annotated:
            return self._annotated(hint)
        if hint in _SCALARS:
            return hint, _SCALARS[hint]
        if hint is Any:
            return None, _as_is
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return None, _enum_decoder(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return None, self.record(hint).decode
        if origin is list or (origin is tuple and typing.get_args(hint)[1:] == (...,)):
            return None, _sequence_decoder(*self.decoder(typing.get_args(hint)[0]), origin)
        if origin in (dict, Mapping):
            key_t, value_t = typing.get_args(hint)
            return None, _map_decoder(self.decoder(key_t)[1], *self.decoder(value_t))
        if origin in (typing.Union, types.UnionType):
            return self._union(typing.get_args(hint))
        raise TypeError(f"the wire codec cannot carry a field of type {hint!r}")

    def _annotated(self, hint: Any) -> tuple[type | None, Decoder]:
        base = typing.get_args(hint)[0]
        metadata = hint.__metadata__
        extra = next((m for m in metadata if isinstance(m, CheckFields)), None)
        if extra is not None:
            return None, self.record(base, extra).decode
        exact, decode = self.decoder(base)
        checks = tuple(m for m in metadata if isinstance(m, Check))
        return (None, _checked(exact, decode, checks)) if checks else (exact, decode)

    def _union(self, options: tuple[Any, ...]) -> tuple[type | None, Decoder]:
        others = [o for o in options if o is not type(None)]
        if len(others) != 1 or len(options) != 2:
            raise TypeError(f"the wire codec carries only ``T | None`` unions, not {options!r}")
        exact, decode = self.decoder(others[0])
        return exact, _optional(decode)

    def encoder(self, hint: Any) -> Encoder | None:
        """How a field value becomes plain msgpack; None when it already is."""
        origin = typing.get_origin(hint)
        if origin is Annotated:
            return self.encoder(typing.get_args(hint)[0])
        if hint in _SCALARS:
            return None
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return _enum_value
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.record(hint).encode
        if origin in (list, tuple):
            item = self.encoder(typing.get_args(hint)[0])
            return list if item is None else lambda v: [item(x) for x in v]
        if origin in (dict, Mapping):
            value = self.encoder(typing.get_args(hint)[1])
            return dict if value is None else lambda v: {k: value(x) for k, x in v.items()}
        options = typing.get_args(hint)
        if len(options) == 2 and type(None) in options:
            inner = self.encoder(next(o for o in options if o is not type(None)))
            return None if inner is None else lambda v: None if v is None else inner(v)
        return _plain


# --- decoders ---------------------------------------------------------------------------


def _render(path: Where) -> str:
    parts: list[str] = []
    while isinstance(path, tuple):
        path, segment = path
        parts.append(f"[{segment}]" if isinstance(segment, int) else segment)
    parts.append(path)
    return "".join(reversed(parts))


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value[:80])
    if value is None or isinstance(value, int | float):
        return repr(value)
    return type(value).__name__


def _failure(path: Where, expected: str, value: object) -> _FieldError:
    where = _render(path)
    return _FieldError(f"{where}: expected {expected}, got {_describe(value)}", where)


def _as_is(value: Any, path: Where) -> Any:
    return value


def _scalar(kind: type, expected: str) -> Decoder:
    def decode(value: Any, path: Where) -> Any:
        # A bool is an int to isinstance, never to the protocol.
        if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            return value
        raise _failure(path, expected, value)

    return decode


def _float(value: Any, path: Where) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _failure(path, "a number", value)
    return float(value)


_SCALARS: dict[Any, Decoder] = {
    int: _scalar(int, "int"),
    str: _scalar(str, "str"),
    bool: _scalar(bool, "bool"),
    bytes: _scalar(bytes, "bytes (msgpack bin)"),
    float: _float,
}


def _checked(exact: type | None, decode: Decoder, checks: tuple[Check, ...]) -> Decoder:
    def checked(value: Any, path: Where) -> Any:
        result = value if type(value) is exact else decode(value, path)
        for check in checks:
            if not check.ok(result):
                raise _failure(path, check.expected, value)
        return result

    return checked


def _enum_decoder(kind: type[enum.Enum]) -> Decoder:
    members = {m.value: m for m in kind}
    expected = f"one of {', '.join(str(v) for v in members)}"

    def decode(value: Any, path: Where) -> Any:
        if isinstance(value, str | int) and not isinstance(value, bool) and value in members:
            return members[value]
        raise _failure(path, expected, value)

    return decode


def _sequence_decoder(exact: type | None, item: Decoder, origin: type) -> Decoder:
    def decode(value: Any, path: Where) -> Any:
        if not isinstance(value, list):
            raise _failure(path, "a list", value)
        items = [x if type(x) is exact else item(x, (path, i)) for i, x in enumerate(value)]
        return items if origin is list else tuple(items)

    return decode


def _map_decoder(key: Decoder, exact: type | None, item: Decoder) -> Decoder:
    def decode(value: Any, path: Where) -> Any:
        if not isinstance(value, dict):
            raise _failure(path, "a map", value)
        return {
            key(k, path): x if type(x) is exact else item(x, (path, f"[{k!r}]"))
            for k, x in value.items()
        }

    return decode


def _optional(decode: Decoder) -> Decoder:
    return lambda value, path: None if value is None else decode(value, path)


# --- encoders ---------------------------------------------------------------------------


def _enum_value(value: enum.Enum) -> Any:
    return value.value


def _plain(value: Any) -> Any:
    """An untyped (``Any``) value as plain msgpack: enums by value, records and tuples opened."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
