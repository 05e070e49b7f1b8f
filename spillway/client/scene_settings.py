"""A scene's own render settings at submit time, and the overrides a submission asks for.

A .blend renders as it says (resolution, engine, samples, seed, denoising,
frame range); only what the submitter names with ``--resolution``,
``--engine``, ``--samples`` or ``--no-denoise`` is overridden.  Reading the
.blend (one headless Blender run) also gives its dependencies, its frame range
and the features a server needs (OpenImageDenoise for a denoising scene).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from spillway.client.errors import SubmissionError
from spillway.packages import PackageError, SceneFrames

if TYPE_CHECKING:
    from spillway.packages.blender import BlenderScanner, BlendScene

__all__ = ["MAX_SAMPLES", "SceneRead", "check_overrides", "override_settings", "read_blend"]

MAX_SAMPLES = 16_777_216
"""Cycles' own limit on render samples."""

_OVERRIDABLE = {
    "blender": {"engine", "samples", "denoise"},
}
_FLAGS = {"engine": "--engine", "samples": "--samples", "denoise": "--no-denoise"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SceneRead:
    """What reading a scene at submit time found."""

    files: tuple[Path, ...]  # dependencies, relative to the scene's folder
    frames: SceneFrames | None  # the frames it renders by itself
    features: tuple[str, ...]  # package features a server needs to render it as asked
    notes: tuple[str, ...] = ()  # the overrides next to the scene's own values, for the user


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


async def read_blend(
    scanner: BlenderScanner,
    scene: Path,
    assets: Sequence[PurePosixPath],
    *,
    engine: str,
    samples: int | None,
    denoise: bool,
) -> SceneRead:
    """Read a .blend once: its files, frame range and the features its render needs."""
    from spillway.packages.blender import required_features

    try:
        blend = await scanner.read(scene, assets)
    except PackageError as err:
        raise SubmissionError(f"cannot submit {scene.name}: {err}") from None
    return SceneRead(
        files=tuple(Path(f) for f in blend.files),
        frames=blend.frames,
        features=tuple(sorted(required_features(blend, engine=engine, denoise=denoise))),
        notes=_override_notes(blend, engine=engine, samples=samples, denoise=denoise),
    )


def _override_notes(
    blend: BlendScene, *, engine: str, samples: int | None, denoise: bool
) -> tuple[str, ...]:
    """``overrides: samples 16 (scene: 64)``: what the job changes, next to the scene's values."""
    parts = []
    if engine:
        parts.append(f"engine {engine} (scene: {blend.engine})")
    if samples is not None:
        parts.append(f"samples {samples} (scene: {blend.samples if blend.samples else 'none'})")
    if not denoise:
        uses = blend.cycles_denoise or blend.compositor_denoise
        parts.append(f"no denoising (scene: {'denoises' if uses else 'does not denoise'})")
    return (f"overrides: {', '.join(parts)}",) if parts else ()
