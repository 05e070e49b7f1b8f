"""Reading a .blend at submit time: its files, frame range, the features its render
needs and the overrides next to its own settings (one headless Blender run).

Only Blender scenes need it; other submissions never load this module or its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from spillway.client.errors import SubmissionError
from spillway.packages import PackageError

if TYPE_CHECKING:
    from spillway.packages import SceneFrames
    from spillway.packages.blender import BlenderScanner, BlendScene

__all__ = ["SceneRead", "read_blend"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SceneRead:
    """What reading a scene at submit time found."""

    files: tuple[Path, ...]  # dependencies, relative to the scene's folder
    frames: SceneFrames | None  # the frames it renders by itself
    features: tuple[str, ...]  # package features a server needs to render it as asked
    notes: tuple[str, ...] = ()  # the overrides next to the scene's own values, for the user


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
