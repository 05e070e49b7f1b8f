"""Blender scenes as the farm sees them: the files a .blend needs and how it renders.

A headless Blender reads the .blend (:mod:`spillway.packages.blender_script`)
and reports every external file (images, UDIM tiles, image sequences,
libraries and what they link in turn, sounds, fonts, caches, movie clips,
sequencer strips) with the path Blender resolves it to, and the scene's own
render settings (engine, frame range and step, samples, denoising).  Only paths
relative to the .blend (``//...``) can be rebuilt on a render host.  Names that
stand for several files (``<UDIM>`` tiles, numbered sequences, cache folders)
are expanded to the files present; when none is found the error names the
pattern and the ``--asset`` that would satisfy it.  Scanning needs Blender on
the submitter's machine.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from spillway.packages.blender_script import INSPECT_MARKER, INSPECT_SCRIPT
from spillway.packages.errors import MissingDependencyError, ScanError
from spillway.packages.features import BLENDER_OIDN
from spillway.packages.own_frames import SceneFrames
from spillway.packages.process import run_capture

__all__ = [
    "ENGINES",
    "SCAN_TIMEOUT",
    "BlendFile",
    "BlendScene",
    "BlenderScanner",
    "parse_inspection",
    "required_features",
    "resolve_files",
    "scene_from_inspection",
]

SCAN_TIMEOUT = 120.0
ENGINES: dict[str, str] = {
    "cycles": "CYCLES",
    "eevee": "BLENDER_EEVEE",
    "workbench": "BLENDER_WORKBENCH",
}
"""``--engine`` names and the engine identifiers Blender uses."""

_TILE_TOKENS = ("<UDIM>", "<UVTILE>")
_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class BlendFile:
    """One external reference of a .blend, as Blender reports it."""

    kind: str  # file, sequence, tiles or dir
    owner: str  # e.g. "image 'Wood'", for error messages
    raw: str  # as stored: "//tex/wood.png" is relative to the .blend holding it
    abs: str  # where Blender resolves it
    tiles: tuple[int, ...] = ()
    baked: bool = False  # a cache folder Blender expects files in


@dataclass(frozen=True, slots=True, kw_only=True)
class BlendScene:
    """What a .blend needs (``files``, relative to its folder) and how it renders by itself."""

    files: tuple[PurePosixPath, ...]
    engine: str  # Blender's identifier, e.g. CYCLES
    frame_start: int
    frame_end: int
    frame_step: int
    samples: int | None  # Cycles or Eevee render samples; None for other engines
    seed: int
    cycles_denoise: bool  # Cycles denoising is on (scene and a rendered view layer)
    compositor_denoise: bool  # the compositor runs a Denoise node

    @property
    def frames(self) -> SceneFrames:
        """The frames ``blender -b file.blend -a`` renders; other frames may still be asked for."""
        first, last, step = self.frame_start, self.frame_end, max(1, self.frame_step)
        spec = str(first) if first == last else f"{first}-{last}"
        if step > 1 and first != last:
            spec += f"x{step}"
        return SceneFrames(spec=spec, first=first, last=last, fixed=False)


def required_features(
    scene: BlendScene, *, engine: str = "", denoise: bool = True
) -> frozenset[str]:
    """Features a server needs to render ``scene`` as asked: OpenImageDenoise when the scene
    denoises (Cycles denoising under the engine in effect, or a compositor Denoise node),
    unless ``denoise`` is False (the ``--no-denoise`` override)."""
    effective = ENGINES.get(engine, scene.engine)
    uses = scene.compositor_denoise or (effective == "CYCLES" and scene.cycles_denoise)
    return frozenset({BLENDER_OIDN}) if uses and denoise else frozenset()


def parse_inspection(text: str) -> tuple[list[BlendFile], dict[str, Any]] | None:
    """The references and scene settings in Blender's output, or None if it printed none."""
    for line in text.splitlines():
        if line.startswith(INSPECT_MARKER):
            data = json.loads(line[len(INSPECT_MARKER) :])
            files = [
                BlendFile(
                    kind=str(f["kind"]),
                    owner=str(f["owner"]),
                    raw=str(f["raw"]),
                    abs=str(f["abs"]),
                    tiles=tuple(int(t) for t in f.get("tiles", ())),
                    baked=bool(f.get("baked", False)),
                )
                for f in data["files"]
            ]
            return files, dict(data["scene"])
    return None


class BlenderScanner:
    """Reads a .blend with ``executable`` in background mode."""

    name = "blender"

    def __init__(self, executable: str = "blender") -> None:
        self.executable = executable

    async def scan(self, scene: Path) -> list[Path]:
        """Files the .blend references, relative to its folder."""
        return await self.scan_with_assets(scene, ())

    async def scan_with_assets(self, scene: Path, assets: Sequence[PurePosixPath]) -> list[Path]:
        """Like :meth:`scan`; ``assets`` satisfy sequences, tiles and caches found empty."""
        return [Path(p) for p in (await self.read(scene, assets)).files]

    async def read(self, scene: Path, assets: Sequence[PurePosixPath] = ()) -> BlendScene:
        """The scene's files and render settings.  Raises ScanError (Blender failed, a
        reference outside the scene folder) or MissingDependencyError."""
        scene = _existing_scene(scene)
        argv = [
            self.executable,
            "-b",
            "--factory-startup",
            str(scene),
            "--python-exit-code",
            "1",
            "--python-expr",
            INSPECT_SCRIPT,
        ]
        result = await run_capture(argv, limit_s=SCAN_TIMEOUT)
        if result is None:
            raise ScanError(f"could not run {self.executable!r} to scan {scene.name}")
        parsed = parse_inspection(result[1])
        if result[0] != 0 or parsed is None:
            tail = result[1].strip().splitlines()[-3:]
            raise ScanError(f"blender failed to scan {scene.name}: {' | '.join(tail)}")
        return scene_from_inspection(*parsed, scene.parent, assets)


def scene_from_inspection(
    refs: Sequence[BlendFile],
    settings: Mapping[str, Any],
    scene_dir: Path,
    assets: Sequence[PurePosixPath] = (),
) -> BlendScene:
    """The scene from what the inspection script reported (here or in a Blender add-on).

    Raises ScanError for a movie output (the farm renders frames; the error says how to get
    the movie), and what :func:`resolve_files` raises."""
    refusal = str(settings.get("movie_refusal", ""))
    if refusal:
        raise ScanError(refusal)
    return _scene(resolve_files(refs, scene_dir, assets), settings)


def _scene(files: Sequence[PurePosixPath], settings: Mapping[str, Any]) -> BlendScene:
    samples = settings.get("samples")
    return BlendScene(
        files=tuple(files),
        engine=str(settings["engine"]),
        frame_start=int(settings["frame_start"]),
        frame_end=int(settings["frame_end"]),
        frame_step=int(settings["frame_step"]),
        samples=None if samples is None else int(samples),
        seed=int(settings.get("seed", 0)),
        cycles_denoise=bool(settings["cycles_denoise"]),
        compositor_denoise=bool(settings["compositor_denoise"]),
    )


def _existing_scene(scene: Path) -> Path:
    scene = scene.resolve()
    if not scene.is_file():
        raise MissingDependencyError(
            f"scene {scene.name} does not exist in {scene.parent}", files=[scene.name]
        )
    return scene


# --- from Blender's references to the files to upload -----------------------------


def resolve_files(
    refs: Sequence[BlendFile], scene_dir: Path, assets: Sequence[PurePosixPath] = ()
) -> list[PurePosixPath]:
    """The files ``refs`` stand for, relative to ``scene_dir``, sorted and unique.

    Raises ScanError for a reference outside the folder or stored as an absolute
    path, and MissingDependencyError naming every missing file and unmatched pattern.
    """
    scene_dir = Path(os.path.abspath(scene_dir))
    found: set[PurePosixPath] = set()
    missing: list[str] = []
    patterns: list[str] = []
    names = [str(a) for a in assets]
    for ref in refs:
        rel = _relative(ref, scene_dir)
        if ref.kind == "file":
            if (scene_dir / rel).is_file():
                found.add(rel)
            else:
                missing.append(f"'{rel}' ({ref.owner})")
            continue
        expanded, wanted = _expand(ref, rel, scene_dir, names)
        found.update(expanded)
        missing += [f"'{m}' ({ref.owner})" for m in wanted]
        if not expanded and not wanted and (ref.kind != "dir" or ref.baked):
            patterns.append(_pattern_hint(ref, rel))
    if missing or patterns:
        raise _missing(missing, patterns, scene_dir)
    return sorted(found)


def _relative(ref: BlendFile, scene_dir: Path) -> PurePosixPath:
    if not ref.raw.startswith("//"):
        raise ScanError(
            f"{ref.owner} uses the absolute path '{ref.raw}', which a render host does not have; "
            "copy the file into the scene folder and make the path relative "
            "(File > External Data > Make Paths Relative)"
        )
    absolute = Path(os.path.abspath(ref.abs))
    try:
        rel = absolute.relative_to(scene_dir)
    except ValueError:
        raise ScanError(
            f"{ref.owner} references '{ref.abs}', which is outside the scene folder {scene_dir}; "
            "copy it next to the scene and reference it by a relative path"
        ) from None
    return PurePosixPath(rel.as_posix())


def _expand(
    ref: BlendFile, rel: PurePosixPath, scene_dir: Path, assets: Sequence[str]
) -> tuple[set[PurePosixPath], list[str]]:
    """(files present, tiles missing) of a sequence, tile set or cache folder."""
    if ref.kind == "tiles":
        tiles = [_tile_name(str(rel), number) for number in ref.tiles]
        present = {PurePosixPath(t) for t in tiles if (scene_dir / t).is_file() or t in assets}
        return present, [t for t in tiles if PurePosixPath(t) not in present]
    if ref.kind == "dir":
        folder = scene_dir / rel
        files = [p for p in sorted(folder.rglob("*")) if p.is_file()] if folder.is_dir() else []
        present = {PurePosixPath(p.relative_to(scene_dir).as_posix()) for p in files}
        present |= {PurePosixPath(a) for a in assets if PurePosixPath(a).is_relative_to(rel)}
        return present, []
    match = _sequence_pattern(rel)
    folder = scene_dir / rel.parent
    on_disk = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    present = {rel.parent / n for n in on_disk if match.fullmatch(n) and (folder / n).is_file()}
    present |= {PurePosixPath(a) for a in assets if _asset_in_sequence(a, rel, match)}
    return present, []


def _sequence_pattern(rel: PurePosixPath) -> re.Pattern[str]:
    """Names of the same numbered sequence as ``rel``: other digits in the last number."""
    m = _LAST_NUMBER.match(rel.name)
    if m is None:
        return re.compile(re.escape(rel.name))
    return re.compile(re.escape(m.group(1)) + r"\d+" + re.escape(m.group(3)))


def _asset_in_sequence(asset: str, rel: PurePosixPath, match: re.Pattern[str]) -> bool:
    path = PurePosixPath(asset)
    return path.parent == rel.parent and match.fullmatch(path.name) is not None


def _tile_name(path: str, number: int) -> str:
    """The file of one UDIM tile: ``<UDIM>`` -> 1002, ``<UVTILE>`` -> u2_v1."""
    u, v = (number - 1001) % 10 + 1, (number - 1001) // 10 + 1
    if "<UDIM>" in path or "<UVTILE>" in path:
        return path.replace("<UDIM>", str(number)).replace("<UVTILE>", f"u{u}_v{v}")
    # Older files keep the first tile's number (1001) in the name instead of a token.
    return re.sub(r"1\d{3}(?=\D*$)", str(number), path, count=1)


def _pattern_hint(ref: BlendFile, rel: PurePosixPath) -> str:
    if ref.kind == "dir":
        return (
            f"cache folder '{rel}' ({ref.owner}) has no files; bake it, or add its files "
            f"with --asset {rel}/FILE"
        )
    m = _LAST_NUMBER.match(rel.name)
    shown = rel.parent / (f"{m.group(1)}{'#' * len(m.group(2))}{m.group(3)}" if m else rel.name)
    return f"no file of sequence '{shown}' ({ref.owner}); put them there or add them with --asset {rel}"


def _missing(
    missing: Sequence[str], patterns: Sequence[str], scene_dir: Path
) -> MissingDependencyError:
    parts = []
    if missing:
        noun = "file" if len(missing) == 1 else "files"
        parts.append(
            f"missing {noun} {', '.join(missing)} in {scene_dir}; put "
            f"{'it' if len(missing) == 1 else 'them'} where the scene expects"
        )
    parts += patterns
    names = [m.split("'")[1] for m in missing]
    return MissingDependencyError("; ".join(parts), files=names)
