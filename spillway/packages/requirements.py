"""Package requirements such as ``povray>=3.7``: a package name and a PEP 440 version specifier.

Clients check a requirement before submitting; the scheduler reads it into a job
profile.  Both use :func:`parse_requirement`, so they accept and reject the same text.
"""

from __future__ import annotations

import re

from spillway.packages.errors import PackageError

__all__ = ["REQUIREMENT_FORMS", "RequirementError", "parse_requirement"]

REQUIREMENT_FORMS = "use forms like povray, povray>=3.7, blender>=3.0,<4 or builtin==1.*"
_REQUIREMENT = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*?)\s*")


class RequirementError(PackageError, ValueError):
    """A package requirement cannot be read; the message shows the accepted forms."""


def _valid_specifier(text: str) -> bool:
    # Loaded here: a requirement without a version (`builtin`) needs no version parser,
    # and packaging's import is a large part of a short `spillway submit`.
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        return False
    return True


def parse_requirement(requirement: object) -> tuple[str, str]:
    """Split ``"povray >= 3.7"`` into the lowercase name and the specifier as written (stripped).

    Raises :class:`RequirementError` for anything but a string starting with a
    package name, or for a specifier ``packaging`` cannot read (whitespace ignored).
    """
    match = _REQUIREMENT.fullmatch(requirement) if isinstance(requirement, str) else None
    if match is None:
        raise RequirementError(f"bad package requirement {requirement!r}: {REQUIREMENT_FORMS}")
    name, spec = match.group(1).lower(), match.group(2)
    if spec and not _valid_specifier("".join(spec.split())):
        hint = (
            f"add an operator, e.g. {name}>={spec} or {name}=={spec}.*"
            if spec[0].isdigit()
            else REQUIREMENT_FORMS
        )
        raise RequirementError(
            f"bad package requirement {requirement!r}: {spec!r} is not a version specifier; {hint}"
        )
    return name, spec
