"""Value constraints for wire fields, attached to field types with ``Annotated``.

The wire codec (:mod:`spillway.core.wire`) decodes a field by its type and then
applies the constraints found in the type's ``Annotated`` metadata, so a
protocol states what a valid value is next to the field itself::

    epoch: Annotated[int, at_least(0)]
    missing: tuple[Sha256, ...]

A refused value gives ``<path>: expected <what>, got <value>``. The predicates
are plain functions here, for boundaries that check values outside the codec;
the constraint records (:class:`Check`, :class:`CheckFields` and the annotated
types) are in :mod:`spillway.core.constraints`, loaded when first named from here,
so a client checking a manifest's paths does not create them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spillway.core.constraints import (
        RELPATH,
        SHA256,
        Check,
        CheckFields,
        NonNegative,
        RelPath,
        Sha256,
        at_least,
    )

__all__ = [
    "RELPATH",
    "SHA256",
    "Check",
    "CheckFields",
    "NonNegative",
    "RelPath",
    "Sha256",
    "at_least",
    "bad_string",
    "first_bad_string",
    "is_safe_relpath",
    "is_sha256",
    "manifest_path_problem",
    "manifest_problem",
    "path_clash",
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


MAX_COMPONENT_BYTES = 255
"""Longest file or folder name (UTF-8 bytes) most file systems store."""
MAX_PATH_BYTES = 1024
"""Longest asset path (UTF-8 bytes), well under every platform's PATH_MAX."""


def bad_string(value: str) -> str | None:
    """Why ``value`` cannot be stored, written to disk or sent on the wire; None if it can.

    Refused: text that has no UTF-8 form (lone surrogates, as Python decodes a
    non-UTF-8 file name) and NUL, which databases and file systems cut at.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text (a name from a non-UTF-8 file system?); rename it"
    if "\x00" in value:
        return "contains a NUL character"
    return None


def first_bad_string(value: object, where: str = "body") -> tuple[str, str] | None:
    """The first string in a decoded JSON value (keys too) that :func:`bad_string` refuses.

    Returns ``(where, problem)`` with ``where`` like ``body.manifest[2].path``, or None.
    """
    stack: list[tuple[str, object]] = [(where, value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, str):
            problem = bad_string(item)
            if problem is not None:
                return at, problem
        elif isinstance(item, dict):
            for key, sub in item.items():
                problem = bad_string(key) if isinstance(key, str) else None
                if problem is not None:
                    return f"{at} key {key!r}", problem
                stack.append((f"{at}.{key}", sub))
        elif isinstance(item, list):
            stack.extend((f"{at}[{i}]", sub) for i, sub in enumerate(item))
    return None


def manifest_path_problem(path: str) -> str | None:
    """Why the asset path ``path`` cannot be written under a render server's job folder.

    ``path`` is already a safe relative path (:func:`is_safe_relpath`); this adds
    what the file system needs: UTF-8, each name at most 255 bytes, the whole at
    most 1024 bytes, and no control characters.
    """
    problem = bad_string(path)
    if problem is not None:
        return problem
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        return "contains a control character"
    if len(path.encode()) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    for part in path.split("/"):
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            return f"has a name longer than {MAX_COMPONENT_BYTES} bytes ('{part[:20]}...')"
    return None


def path_clash(paths: Iterable[str]) -> tuple[str, str] | None:
    """A pair ``(file, other)`` where ``other`` needs ``file`` to be a folder, or None.

    ``tex`` and ``tex/a.png`` cannot both be written to one folder.
    """
    files = set(paths)
    for path in sorted(files):
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in files:
                return folder, path
    return None


def manifest_problem(paths: Iterable[str]) -> str | None:
    """Why these asset paths cannot be written into one job folder, or None.

    The one rule a client checks before it uploads and the agent checks at
    submit: each path passes :func:`manifest_path_problem`, and no path is the
    folder of another (:func:`path_clash`).
    """
    listed = list(paths)
    for path in listed:
        problem = manifest_path_problem(path)
        if problem is not None:
            return f"the asset path {path!r} {problem}"
    clash = path_clash(listed)
    if clash is not None:
        return (
            f"the assets '{clash[0]}' (a file) and '{clash[1]}' (inside it, as a folder) "
            "cannot both be written; rename one of them"
        )
    return None


_CONSTRAINTS = frozenset(
    {"RELPATH", "SHA256", "Check", "CheckFields", "NonNegative", "RelPath", "Sha256", "at_least"}
)


def __getattr__(name: str) -> Any:
    if name not in _CONSTRAINTS:
        raise AttributeError(f"module 'spillway.core.checks' has no attribute {name!r}")
    from spillway.core import constraints

    return getattr(constraints, name)
