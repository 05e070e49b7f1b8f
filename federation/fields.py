"""Typed reads from decoded msgpack maps, for :mod:`federation.protocol`.

Each read checks one field and raises :class:`ProtocolError` naming it by its
full path (``body.manifest[2].sha256``), so a peer's developer sees exactly what
was wrong. Keys that are not read are ignored (forward compatibility).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from federation.errors import ProtocolError

__all__ = ["Fields", "is_safe_relpath", "is_sha256", "sha256_item", "str_item"]

T = TypeVar("T")

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MISSING: Any = object()


def is_sha256(value: object) -> bool:
    """True for 64 lowercase hex digits."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def is_safe_relpath(value: object) -> bool:
    """True for a relative POSIX path that cannot escape the directory it is joined to."""
    if not isinstance(value, str) or not value or "\\" in value or "\x00" in value:
        return False
    if value.startswith("/") or (len(value) > 1 and value[1] == ":"):  # also "C:..."
        return False
    return all(part not in ("", ".", "..") for part in value.split("/"))


class Fields:
    """Checked access to the fields of one decoded map."""

    __slots__ = ("_data", "_where")

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ProtocolError(f"{where} must be a map, got {_kind(data)}", field=where)
        self._data: Mapping[str, Any] = data
        self._where = where

    def _get(self, key: str, default: Any) -> Any:
        value = self._data.get(key, _MISSING)
        if value is _MISSING or value is None and default is None:
            if default is _MISSING:
                raise ProtocolError(
                    f"required field {self._path(key)} is missing", field=self._path(key)
                )
            return default
        return value

    def _path(self, key: str) -> str:
        return f"{self._where}.{key}"

    def _fail(self, key: str, expected: str, value: object) -> ProtocolError:
        return ProtocolError(
            f"field {self._path(key)} must be {expected}, got {_kind(value)}",
            field=self._path(key),
        )

    def text(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is not default and not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int = 0) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(key, "an integer", value)
        if value < minimum:
            raise self._fail(key, f"an integer >= {minimum}", value)
        return value

    def flag(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is not default and not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def sha256(self, key: str) -> str:
        value = self._get(key, _MISSING)
        if not is_sha256(value):
            raise self._fail(key, "a sha256 (64 lowercase hex digits)", value)
        return str(value)

    def relpath(self, key: str) -> str:
        value = self._get(key, _MISSING)
        if not is_safe_relpath(value):
            raise self._fail(key, "a relative POSIX path without '..', '\\\\' or NUL", value)
        return str(value)

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            raise self._fail(key, f"one of {', '.join(allowed)}", value)
        return str(value)

    def mapping(self, key: str, default: Any = _MISSING) -> Any:
        """A map with string keys and any msgpack values (an opaque document)."""
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self._fail(key, "a map with string keys", value)
        return value

    def str_map(self, key: str, default: Any = _MISSING) -> Any:
        value = self.mapping(key, default)
        if value is not default and not all(isinstance(v, str) for v in value.values()):
            raise self._fail(key, "a map of strings to strings", value)
        return value

    def sub(self, key: str) -> Fields:
        return Fields(self._get(key, _MISSING), self._path(key))

    def items(
        self, key: str, item: Callable[[Any, str], T], default: Any = _MISSING
    ) -> tuple[T, ...] | Any:
        """A list, each element converted by ``item(element, path)``."""
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, list):
            raise self._fail(key, "a list", value)
        return tuple(item(v, f"{self._path(key)}[{i}]") for i, v in enumerate(value))


def str_item(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{where} must be a string, got {_kind(value)}", field=where)
    return value


def sha256_item(value: object, where: str) -> str:
    if not is_sha256(value):
        raise ProtocolError(
            f"{where} must be a sha256 (64 lowercase hex digits), got {_kind(value)}", field=where
        )
    return str(value)


def _kind(value: object) -> str:
    if isinstance(value, str):
        return repr(value[:80])
    return type(value).__name__
