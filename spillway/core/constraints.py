"""Constraints on wire fields: ``Annotated[T, Check(...)]`` and ``Annotated[Record,
CheckFields(...)]``, applied by the wire codec (:mod:`spillway.core.wire`) after a
field's type check. The predicates they use are in :mod:`spillway.core.checks`
(which re-exports these names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from spillway.core.checks import is_safe_relpath, is_sha256

__all__ = [
    "RELPATH",
    "SHA256",
    "Check",
    "CheckFields",
    "NonNegative",
    "RelPath",
    "Sha256",
    "at_least",
]


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
