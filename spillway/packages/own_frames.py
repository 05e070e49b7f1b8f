"""The frames a scene renders by itself, as its package reads them (a record of the catalog)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SceneFrames"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SceneFrames:
    """The frames a scene renders by itself (``povray scene.ini``, a .blend's frame range)."""

    spec: str  # as a frame spec, e.g. "1-20"
    first: int  # the animation's range
    last: int
    fixed: bool = True  # other frames cannot be rendered (a POV-Ray animation's clock)
