"""A scene's own render settings at submit time, and the overrides a submission asks for.

A .blend renders as it says (resolution, engine, samples, seed, denoising,
frame range); only what the submitter names with ``--resolution``,
``--engine``, ``--samples`` or ``--no-denoise`` is overridden.  Reading the
.blend (one headless Blender run) also gives its dependencies, its frame range
and the features a server needs (OpenImageDenoise for a denoising scene): that
is :mod:`spillway.client.blend_read`, loaded only for Blender scenes (its names
are still importable from here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spillway.client.errors import SubmissionError

if TYPE_CHECKING:
    from spillway.client.blend_read import SceneRead, read_blend

__all__ = ["MAX_SAMPLES", "SceneRead", "check_overrides", "override_settings", "read_blend"]

MAX_SAMPLES = 16_777_216
"""Cycles' own limit on render samples."""

_OVERRIDABLE = {
    "blender": {"engine", "samples", "denoise"},
}
_FLAGS = {"engine": "--engine", "samples": "--samples", "denoise": "--no-denoise"}


def check_overrides(package: str, *, engine: str, samples: int | None, denoise: bool) -> None:
    """Raise SubmissionError for an override ``package`` does not have or a bad value."""
    given = {
        name
        for name, value in (("engine", engine), ("samples", samples), ("denoise", not denoise))
        if value
    }
    unsupported = [name for name in _FLAGS if name in given - _OVERRIDABLE.get(package, set())]
    if unsupported:
        flags = ", ".join(_FLAGS[name] for name in unsupported)
        one = len(unsupported) == 1
        raise SubmissionError(
            f"{flags} {'does' if one else 'do'} not apply to {package} scenes; "
            f"leave {'it' if one else 'them'} out (the scene's own settings are used)"
        )
    if package == "blender" and engine:
        from spillway.packages.blender import ENGINES

        if engine not in ENGINES:
            raise SubmissionError(
                f"unknown blender engine {engine!r}; use one of: {', '.join(ENGINES)}"
            )
    if samples is not None and not 1 <= samples <= MAX_SAMPLES:
        raise SubmissionError(f"--samples must be 1 to {MAX_SAMPLES}, got {samples}")


def override_settings(
    *, width: int | None, height: int | None, samples: int | None, denoise: bool
) -> dict[str, Any]:
    """The job's ``settings``: only the overrides asked for; {} renders the scene as it is."""
    settings: dict[str, Any] = {}
    if width is not None and height is not None:
        settings.update(width=width, height=height)
    if samples is not None:
        settings["samples"] = samples
    if not denoise:
        settings["denoise"] = False
    return settings


def __getattr__(name: str) -> Any:
    if name not in ("SceneRead", "read_blend"):
        raise AttributeError(f"module 'spillway.client.scene_settings' has no attribute {name!r}")
    from spillway.client import blend_read

    return getattr(blend_read, name)
