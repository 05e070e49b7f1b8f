"""Package adapter for POV-Ray 3.7 (the ``povray`` command line).

A chunk is rendered as a POV-Ray animation whose frame numbers and clock are
the job's frame numbers (``+KFI/+KFF`` and ``+KI/+KF`` set to the chunk's first
and last frame, ``+SF/+EF`` likewise), so ``clock`` and ``frame_number`` in a
scene mean the same on every server and in every chunk.  Includes and image
files are found through ``+L`` library paths: the scene folder, then the work dir.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from render_server.packages.base import (
    MissingDependencyError,
    RenderRequest,
    check_declared_assets,
    collect_numbered,
    missing_error,
    relative_reference,
    run_capture,
)

PROBE_TIMEOUT = 10.0

# Files shipped in POV-Ray's own include directory; a scene may reference them
# without shipping them.  Listed (not looked up) so scanning works on a
# submitter's machine without POV-Ray.
STANDARD_FILES = frozenset(
    [
        "arrays.inc",
        "chars.inc",
        "colors.inc",
        "consts.inc",
        "debug.inc",
        "finish.inc",
        "functions.inc",
        "glass.inc",
        "glass_old.inc",
        "golds.inc",
        "ior.inc",
        "logo.inc",
        "makegrass.inc",
        "math.inc",
        "meshmaker.inc",
        "metals.inc",
        "rad_def.inc",
        "rand.inc",
        "screen.inc",
        "shapes.inc",
        "shapes2.inc",
        "shapes3.inc",
        "shapes_old.inc",
        "shapesq.inc",
        "skies.inc",
        "stage1.inc",
        "stars.inc",
        "stdcam.inc",
        "stdinc.inc",
        "stoneold.inc",
        "stones.inc",
        "stones1.inc",
        "stones2.inc",
        "strings.inc",
        "sunpos.inc",
        "textures.inc",
        "transforms.inc",
        "woodmaps.inc",
        "woods.inc",
        "colors_ral.inc",
        "ash.map",
        "benediti.map",
        "bubinga.map",
        "cedar.map",
        "marbteal.map",
        "orngwood.map",
        "pinkmarb.map",
        "rdgranit.map",
        "teak.map",
        "whiteash.map",
        "crystal.ttf",
        "cyrvetic.ttf",
        "povlogo.ttf",
        "timrom.ttf",
        "Mount1.png",
        "Mount2.png",
        "bumpmap_.png",
        "fract003.png",
        "mtmandj.png",
        "plasma2.png",
        "plasma3.png",
        "povmap.png",
        "test.png",
        "mtmand.pot",
        "spiral.df3",
    ]
)

_IMAGE_TYPES = (
    "png",
    "jpeg",
    "jpg",
    "tga",
    "gif",
    "ppm",
    "pgm",
    "sys",
    "tiff",
    "exr",
    "hdr",
    "iff",
)
_INCLUDE = re.compile(r'#\s*include\s+"([^"]+)"')
_TYPED_FILE = re.compile(r"\b(" + "|".join(_IMAGE_TYPES) + r'|ttf|df3)\s+"([^"]+)"')
_UNTYPED_MAP = re.compile(
    r'\b(?:image_map|bump_map|normal_map|material_map|image_pattern|height_field)\s*\{\s*"([^"]+)"'
)
_VERSION = re.compile(r"POV-Ray\s+(\d+(?:\.\d+)+)")


def strip_comments(text: str) -> str:
    """Remove // and (nesting) /* */ comments, leaving string literals intact."""
    out: list[str] = []
    i, n, depth = 0, len(text), 0
    while i < n:
        two = text[i : i + 2]
        if depth:
            if two == "/*":
                depth, i = depth + 1, i + 2
            elif two == "*/":
                depth, i = depth - 1, i + 2
            else:
                i += 1
            if not depth:
                out.append(" ")
        elif two == "/*":
            depth, i = 1, i + 2
        elif two == "//":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text[i] == '"':
            end = i + 1
            while end < n and text[end] not in '"\n':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def references(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(included files, [(file type or '', image/font file)]) named in a scene's source."""
    clean = strip_comments(text)
    includes = _INCLUDE.findall(clean)
    files = [(kind, name) for kind, name in _TYPED_FILE.findall(clean)]
    files += [("", name) for name in _UNTYPED_MAP.findall(clean)]
    return includes, files


def find_dependencies(scene: Path, search_dirs: Iterable[Path]) -> list[PurePosixPath]:
    """Every local file the scene needs (recursively through includes), relative to its folder.

    A reference is looked up in each of search_dirs in turn (POV-Ray's +L
    order).  Standard POV-Ray files not present locally are skipped; other
    missing files raise MissingDependencyError, references leaving the scene
    folder raise ScanError.
    """
    scene_dir = scene.resolve().parent
    dirs = [d.resolve() for d in search_dirs]
    found: dict[PurePosixPath, Path] = {}
    missing: list[str] = []
    pending = [scene]
    seen: set[Path] = set()
    while pending:
        source = pending.pop()
        if source in seen:
            continue
        seen.add(source)
        includes, files = references(source.read_text(encoding="utf-8", errors="replace"))
        refs = [("include", name) for name in includes] + files
        for kind, name in refs:
            rel = relative_reference(
                name, scene_dir, kind="include" if kind == "include" else "file"
            )
            hit = _locate(rel, kind, dirs)
            if hit is None:
                if rel.name not in STANDARD_FILES:
                    missing.append(str(rel))
                continue
            found[hit[0]] = hit[1]
            if kind == "include":
                pending.append(hit[1])
    if missing:
        raise missing_error(missing, where=str(scene_dir))
    return sorted(found)


def _locate(rel: PurePosixPath, kind: str, dirs: list[Path]) -> tuple[PurePosixPath, Path] | None:
    """Find rel under dirs, trying POV-Ray's implied extensions for extension-less image names."""
    candidates = [rel]
    if kind not in ("include", "") and not rel.suffix:
        exts = [kind, "jpg"] if kind == "jpeg" else [kind]
        candidates += [rel.with_suffix("." + ext) for ext in exts]
    for base in dirs:
        for cand in candidates:
            path = base / cand
            if path.is_file():
                return cand, path
    return None


class PovrayAdapter:
    """Renders .pov scenes with POV-Ray 3.7."""

    name = "povray"
    output_ext = "png"

    def __init__(self, executable: str = "povray") -> None:
        self.executable = executable

    async def probe(self) -> str | None:
        result = await run_capture([self.executable, "--version"], limit_s=PROBE_TIMEOUT)
        if result is None:
            return None
        match = _VERSION.search(result[1])
        return match.group(1) if match else None

    def command(self, req: RenderRequest) -> list[str]:
        first, last = req.first, req.last
        return [
            self.executable,
            f"+I{req.scene}",
            f"+O{req.outdir / req.scene.stem}_.png",
            f"+W{req.width}",
            f"+H{req.height}",
            "+FN",
            "-D",  # no preview window
            "-P",  # no pause at the end
            "+A0.3",
            # clock == frame_number == job frame.  The animation range ends one
            # past the chunk so the clock slope is 1 even for a one-frame chunk
            # (first == last would make it 0/0), and the output name always
            # carries the frame number; +SF/+EF limit rendering to the chunk.
            f"+KFI{first}",
            f"+KFF{last + 1}",
            f"+KI{first}",
            f"+KF{last + 1}",
            f"+SF{first}",
            f"+EF{last}",
            f"+L{req.scene.parent}",
            f"+L{req.workdir}",
            f"+WT{max(1, req.threads)}",
        ]

    def env(self, req: RenderRequest) -> dict[str, str]:
        # POV-Ray warns when $HOME/.povray/3.7/povray.conf is absent; the
        # warning is harmless and the system configuration still applies.
        return {}

    def preflight(self, req: RenderRequest) -> None:
        check_declared_assets(req)
        try:
            find_dependencies(req.scene, [req.scene.parent, req.workdir])
        except MissingDependencyError as exc:
            raise missing_error(exc.files, where=str(req.workdir)) from None

    def collect(self, req: RenderRequest) -> dict[int, Path]:
        # POV-Ray pads frame numbers to the width of the final frame (s_08, s_10).
        return collect_numbered(req, self.output_ext)

    async def scan(self, scene: Path) -> list[Path]:
        # Reads a few small text files; not worth a thread.
        return _scan_local(scene)


def _scan_local(scene: Path) -> list[Path]:
    return [Path(p) for p in find_dependencies(scene, [scene.resolve().parent])]
