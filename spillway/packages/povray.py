"""Dependency scanner of POV-Ray scenes: ``#include`` files and image, font and density files.

Includes are followed recursively; a reference is looked up in the directories
POV-Ray would search (its ``+L`` library paths), so the render server's preflight
check and the submitter's scan read a scene the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from spillway.packages.paths import missing_error, relative_reference

__all__ = ["STANDARD_FILES", "PovrayScanner", "find_dependencies", "references", "strip_comments"]

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


class PovrayScanner:
    """Finds the files a .pov scene includes or reads, relative to its folder."""

    name = "povray"

    async def scan(self, scene: Path) -> list[Path]:
        # Reads a few small text files; not worth a thread.
        return _scan_local(scene)


def _scan_local(scene: Path) -> list[Path]:
    return [Path(p) for p in find_dependencies(scene, [scene.resolve().parent])]
