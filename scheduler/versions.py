"""Lenient comparison of render-package versions against PEP 440 specifiers.

Render packages report versions such as ``3.7.0.10.unofficial`` or
``4.2.0-beta``; only the leading dotted number is compared. Parsing is memoised
because dispatch asks the same few (specifier, version) questions many times.
"""

from __future__ import annotations

import functools
import re

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = ["lenient_version", "parse_specifier", "satisfies"]

_LEADING_NUMBER = re.compile(r"\s*[vV]?([0-9]+(?:\.[0-9]+)*)")


@functools.lru_cache(maxsize=1024)
def lenient_version(text: str) -> Version | None:
    """Return the leading numeric dotted part of ``text`` as a Version, or None."""
    match = _LEADING_NUMBER.match(text)
    if match is None:
        return None
    try:
        return Version(match.group(1))
    except InvalidVersion:  # pragma: no cover - the regex only admits valid releases
        return None


@functools.lru_cache(maxsize=1024)
def parse_specifier(text: str) -> SpecifierSet | None:
    """Parse a PEP 440 specifier set such as ``>=3.0,<4``; None when it is invalid."""
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


@functools.lru_cache(maxsize=8192)
def satisfies(version: str, specifier: str) -> bool:
    """Whether a reported package version satisfies a specifier set.

    An empty specifier accepts anything; an unreadable version or specifier
    never satisfies a non-empty one.
    """
    if not specifier.strip():
        return True
    spec = parse_specifier(specifier)
    parsed = lenient_version(version)
    if spec is None or parsed is None:
        return False
    return spec.contains(parsed, prereleases=True)
