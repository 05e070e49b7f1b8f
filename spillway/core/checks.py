"""Value constraints for wire fields, attached to field types with ``Annotated``.

The wire codec (:mod:`spillway.core.wire`) decodes a field by its type and then
applies the constraints found in the type's ``Annotated`` metadata, so a
protocol states what a valid value is next to the field itself::

    epoch: Annotated[int, at_least(0)]
    missing: tuple[Sha256, ...]

A refused value gives ``<path>: expected <what>, got <value>``. The predicates
are plain functions too, for boundaries that check values outside the codec.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

__all__ = [
    "RELPATH",
    "SHA256",
    "Check",
    "CheckFields",
    "NonNegative",
    "RelPath",
    "Sha256",
    "at_least",
    "is_safe_relpath",
    "is_sha256",
]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: object) -> bool:
    """True for 64 lowercase hex digits."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def is_safe_relpath(value: object) -> bool:
    """True for a relative POSIX path that cannot escape the directory it is joined to.

    Refused: empty, absolute (``/x``, ``C:...``), backslashes, NUL, and any empty,
    ``.`` or ``..`` component (so ``a//b`` and ``./a`` too: the path is already
    normalised, exactly one spelling per file).
    """
    if not isinstance(value, str) or not value or "\\" in value or "\x00" in value:
        return False
    if value.startswith("/") or (len(value) > 1 and value[1] == ":"):  # also "C:..."
        return False
    return all(part not in ("", ".", "..") for part in value.split("/"))


@dataclass(frozen=True, slots=True)
class Check:
    """``Annotated[T, Check(ok, expected)]``: refuse a decoded ``T`` for which ``ok`` is False.

    ``expected`` says what a valid value is ("a sha256 (64 lowercase hex digits)");
    it becomes the error message, so phrase it for the peer's developer.
    """

    ok: Callable[[Any], bool]
    expected: str


@dataclass(frozen=True, slots=True, init=False)
class CheckFields:
    """``Annotated[Record, CheckFields(name=Check, ...)]``: constrain fields of a nested record.

    For a record shared between protocols that validate it differently: the
    record's definition stays plain and the stricter protocol names the checks
    where it uses it. A refused field is reported at its own path
    (``body.manifest[2].sha256``).
    """

    checks: tuple[tuple[str, Check], ...]

    def __init__(self, **checks: Check) -> None:
        object.__setattr__(self, "checks", tuple(sorted(checks.items())))


def at_least(minimum: int) -> Check:
    """An integer (not a bool) no smaller than ``minimum``."""

    def ok(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    return Check(ok, f"an integer >= {minimum}")


SHA256 = Check(is_sha256, "a sha256 (64 lowercase hex digits)")
RELPATH = Check(is_safe_relpath, "a relative POSIX path without '..', '\\\\' or NUL")

Sha256 = Annotated[str, SHA256]
"""A content hash: 64 lowercase hex digits."""
RelPath = Annotated[str, RELPATH]
"""A path relative to a root it cannot leave (see :func:`is_safe_relpath`)."""
NonNegative = Annotated[int, at_least(0)]
"""A count, size or epoch: an integer >= 0."""
