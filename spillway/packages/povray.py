"""Dependency scanner of POV-Ray scenes and INI files: the files ``povray`` will open.

An INI file (``povray scene.ini``) names the scene, more INI files and library
paths; a scene names ``#include`` files and image, font, density and data
files.  Each name is looked up as POV-Ray does (:mod:`spillway.packages.povray_names`):
the scene folder, then the INI's library paths, trying the type's extensions
for an extension-less name.  Includes are followed recursively.

A name built while POV-Ray parses (``#include concat("part", str(I,0,0), ".inc")``)
cannot be found by reading the file: it is reported as :class:`Unresolved`,
with the glob pattern its literal parts allow, and the submitter must add the
files with ``--asset`` (:class:`UnresolvedReferenceError` says which).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from spillway.packages.errors import ScanError
from spillway.packages.paths import missing_error, relative_reference
from spillway.packages.povray_ini import is_ini, read_ini
from spillway.packages.povray_names import IMAGE_TYPES, STANDARD_FILES, candidates

__all__ = [
    "STANDARD_FILES",
    "Dependencies",
    "PovrayScanner",
    "Unresolved",
    "UnresolvedReferenceError",
    "find_dependencies",
    "references",
    "scan_dependencies",
    "search_dirs",
    "strip_comments",
]

_STRING = r'"(?:[^"\\\n]|\\.)*"'
_NAME = r"[A-Za-z_]\w*"
_FILE_KEYWORDS = "|".join((*IMAGE_TYPES, "pot", "ttf", "df3"))
# What may follow: a literal, a string function call, or an identifier.
_EXPR = rf"({_STRING}|{_NAME}\s*\(|{_NAME})"
_INCLUDE = re.compile(rf"#\s*include\s+{_EXPR}")
_TYPED = re.compile(rf"\b({_FILE_KEYWORDS})\s+{_EXPR}")
_UNTYPED = re.compile(
    rf"\b(?:image_map|bump_map|normal_map|material_map|image_pattern|height_field)\s*\{{\s*{_EXPR}"
)
_FOPEN = re.compile(rf"#\s*fopen\s+{_NAME}\s+{_EXPR}\s+read\b")
_WORD = re.compile(_NAME)
_LITERAL = re.compile(_STRING)
_DECLARE = re.compile(rf"#\s*(?:declare|local)\s+({_NAME})\s*=\s*{_EXPR}")
_FOPEN_WRITE = re.compile(rf"#\s*fopen\s+{_NAME}\s+({_STRING})\s+(?:write|append)\b")
# Words that may follow a map's brace without being a file name.
_NOT_NAMES = frozenset((*IMAGE_TYPES, "pot", "ttf", "df3", "function", "gamma", "premultiplied"))
_TEXT_SUFFIXES = frozenset({".inc", ".pov", ".mcr", ".mac"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Unresolved:
    """A file name POV-Ray computes while parsing, so scanning cannot tell which file it is."""

    source: str  # the file holding the reference, relative to the scene folder
    line: int
    expression: str  # as written, e.g. concat("part", str(I,0,0), ".inc")
    pattern: str  # glob the computed name must match, e.g. part*.inc
    kind: str  # "include", an image type, "ttf", "df3", "fopen" or "" (untyped image)

    def satisfied_by(self, names: Iterable[str]) -> bool:
        """Whether one of ``names`` (relative posix paths) can be the file it names."""
        tries = [str(c) for c in candidates(self.pattern, self.kind)]
        return any(fnmatch.fnmatchcase(n, t) for n in names for t in tries)

    def describe(self) -> str:
        return f"{self.source} line {self.line}: {self.expression}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependencies:
    """What a scan found: files (relative to the scene folder) and names it could not resolve."""

    files: tuple[PurePosixPath, ...]
    unresolved: tuple[Unresolved, ...] = ()


class UnresolvedReferenceError(ScanError):
    """The scene computes file names while parsing, and no --asset matches them."""

    def __init__(self, message: str, *, unresolved: Sequence[Unresolved]) -> None:
        super().__init__(message)
        self.unresolved = tuple(unresolved)


def strip_comments(text: str) -> str:
    """Remove // and (nesting) /* */ comments, leaving string literals and line breaks intact."""
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
                if text[i] == "\n":
                    out.append("\n")  # keep line numbers
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


@dataclass(frozen=True, slots=True)
class _Ref:
    kind: str
    name: str | None  # None: computed while parsing
    line: int
    expression: str
    pattern: str


def references(text: str) -> list[_Ref]:
    """Every file reference in a scene's source, literal or computed, in order of appearance."""
    clean = strip_comments(text)
    # Keywords inside string literals ("a png image") are not references: search a copy
    # whose literals are blanked (same offsets), read names from the original.
    masked = _LITERAL.sub(lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', clean)
    # String variables: #include Name reads the files Name was declared as.
    declared: dict[str, list[_Ref]] = {}
    for m in _DECLARE.finditer(masked):
        value = _value(clean, masked, "", m.start(2))
        if value is not None:
            declared.setdefault(m.group(1), []).append(value)
    found: list[tuple[int, _Ref]] = []
    for regex, fixed in ((_INCLUDE, "include"), (_FOPEN, "fopen"), (_UNTYPED, "")):
        for m in regex.finditer(masked):
            found += _refs(clean, masked, fixed, m.start(1), declared)
    for m in _TYPED.finditer(masked):
        found += _refs(clean, masked, m.group(1), m.start(2), declared)
    # A file the scene writes before reading it back is not an input.
    written = {_literal(clean, m.start(1)) for m in _FOPEN_WRITE.finditer(masked)}
    refs = [ref for _, ref in sorted(found, key=lambda item: item[0])]
    return [r for r in refs if r.name != "" and not (r.kind == "fopen" and r.name in written)]


def _refs(
    text: str, masked: str, kind: str, at: int, declared: dict[str, list[_Ref]]
) -> list[tuple[int, _Ref]]:
    ref = _value(text, masked, kind, at)
    if ref is None:
        return []
    if ref.name is None and ref.expression in declared:  # a string variable
        return [
            (at, replace(v, kind=kind, line=ref.line, expression=ref.expression))
            for v in declared[ref.expression]
        ]
    return [(at, ref)]


def _value(text: str, masked: str, kind: str, at: int) -> _Ref | None:
    """The string expression at ``at``: a literal, or a call or identifier (computed);
    None when it is no string (a keyword, a number)."""
    line = text.count("\n", 0, at) + 1
    if text[at] == '"':
        name = _literal(text, at)
        return _Ref(kind, name, line, f'"{name}"', name)
    word = _WORD.match(masked, at)
    token = word.group(0) if word else ""
    if not token or token in _NOT_NAMES:
        return None
    if masked[at + len(token) :].lstrip().startswith("("):
        expr = " ".join(text[at : _call_end(masked, at)].split())
        return _Ref(kind, None, line, expr, _pattern(expr))
    return _Ref(kind, None, line, token, "*")


def _literal(text: str, at: int) -> str:
    m = _LITERAL.match(text, at)
    return m.group(0)[1:-1] if m else ""


def _call_end(masked: str, at: int) -> int:
    """Where the function call starting at ``at`` ends (after its closing parenthesis, or
    the end of its line when unbalanced); string literals are blanked in ``masked``."""
    depth = 0
    for i in range(at, len(masked)):
        if masked[i] == "(":
            depth += 1
        elif masked[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    end = masked.find("\n", at)
    return len(masked) if end < 0 else end


def _pattern(expr: str) -> str:
    """Glob of the names ``concat(...)`` can give: its literal arguments, '*' for the rest."""
    m = re.fullmatch(r"concat\s*\((.*)\)", expr, re.S)
    if not m:
        return "*"
    pieces = []
    for arg in _split_args(m.group(1)):
        lit = re.fullmatch(_STRING, arg.strip())
        pieces.append(lit.group(0)[1:-1] if lit else "*")
    return re.sub(r"\*+", "*", "".join(pieces)) or "*"


def _split_args(text: str) -> list[str]:
    args, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        elif not quoted and char == "," and depth == 0:
            args.append(text[start:i])
            start = i + 1
    return [*args, text[start:]]


# --- scanning ---------------------------------------------------------------------------------


def search_dirs(scene: Path) -> list[Path]:
    """The folders POV-Ray searches for the files of ``scene`` run from its folder.

    The scene folder, then an INI file's relative library paths that stay inside it
    (absolute ones are the host's own, like POV-Ray's include folder).
    """
    folder = scene.resolve().parent
    dirs = [folder]
    if is_ini(scene):
        for lib in read_ini(scene).library:
            path = (folder / lib.replace("\\", "/")).resolve()
            if not PurePosixPath(lib).is_absolute() and path.is_relative_to(folder):
                dirs.append(path)
    return dirs


def scan_dependencies(
    scene: Path,
    dirs: Sequence[Path] | None = None,
    *,
    assets: Sequence[PurePosixPath] = (),
) -> Dependencies:
    """Every file ``povray scene`` opens (recursively), relative to the scene's folder.

    ``dirs`` are the folders searched, in order (default :func:`search_dirs`).
    ``assets`` (files the user adds) are scanned too.  Standard POV-Ray files
    not present are skipped; other missing files raise MissingDependencyError,
    references leaving the scene folder ScanError.
    """
    folder = scene.resolve().parent
    dirs = [d.resolve() for d in (dirs if dirs is not None else search_dirs(scene))]
    state = _Scan(folder, dirs)
    if is_ini(scene):
        state.ini(scene)
    else:
        state.pending.append(scene)
    state.pending += [folder / a for a in assets if PurePosixPath(a).suffix in _TEXT_SUFFIXES]
    state.run()
    if state.missing:
        raise missing_error(state.missing, where=str(folder))
    return Dependencies(files=tuple(sorted(state.found)), unresolved=tuple(state.unresolved))


class _Scan:
    """The work list of one scan."""

    def __init__(self, folder: Path, dirs: list[Path]) -> None:
        self.folder, self.dirs = folder, dirs
        self.found: dict[PurePosixPath, Path] = {}
        self.missing: list[str] = []
        self.unresolved: list[Unresolved] = []
        self.pending: list[Path] = []

    def ini(self, scene: Path) -> None:
        settings = read_ini(scene)
        for name in settings.files:
            self.add("ini", name, follow=False)
        if settings.header:
            self.add("include", settings.header, follow=True)
        if not settings.input:
            raise ScanError(
                f"{scene.name} names no scene; add Input_File_Name=scene.pov to it "
                "or submit the .pov file"
            )
        self.add("scene", settings.input, follow=True)

    def add(self, kind: str, name: str, *, follow: bool) -> None:
        rel = relative_reference(name, self.folder, kind="include" if follow else "file")
        hit = self.locate(str(rel), kind)
        if hit is None:
            tried = candidates(str(rel), kind)
            if not any(c.name in STANDARD_FILES for c in tried):
                also = f" (POV-Ray tries {', '.join(map(str, tried))})" if len(tried) > 1 else ""
                self.missing.append(f"{rel}{also}")
            return
        self.found[hit[0]] = hit[1]
        if follow:
            self.pending.append(hit[1])

    def locate(self, name: str, kind: str) -> tuple[PurePosixPath, Path] | None:
        for base in self.dirs:
            for cand in candidates(name, kind):
                path = base / cand
                if path.is_file() and path.resolve().is_relative_to(self.folder):
                    return PurePosixPath(path.resolve().relative_to(self.folder).as_posix()), path
        return None

    def run(self) -> None:
        seen: set[Path] = set()
        while self.pending:
            source = self.pending.pop().resolve()
            if source in seen or not source.is_file():
                continue
            seen.add(source)
            rel_source = source.relative_to(self.folder).as_posix()
            for ref in references(source.read_text(encoding="utf-8", errors="replace")):
                if ref.name is None:
                    self.unresolved.append(
                        Unresolved(
                            source=rel_source,
                            line=ref.line,
                            expression=ref.expression,
                            pattern=ref.pattern,
                            kind=ref.kind,
                        )
                    )
                else:
                    self.add(ref.kind, ref.name, follow=ref.kind == "include")


def find_dependencies(scene: Path, dirs: Iterable[Path]) -> list[PurePosixPath]:
    """The files of :func:`scan_dependencies` that can be found by reading; computed names are skipped."""
    return list(scan_dependencies(scene, list(dirs)).files)


def unresolved_error(scene: Path, unresolved: Sequence[Unresolved]) -> UnresolvedReferenceError:
    """An error naming each computed reference and the --asset options that would satisfy it."""
    folder = scene.resolve().parent
    lines = []
    for ref in unresolved:
        present = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and ref.satisfied_by([p.relative_to(folder).as_posix()])
        )
        present = [p for p in present if p != scene.name][:5]
        example = " ".join(f"--asset {p}" for p in present) or f"--asset {ref.pattern}"
        lines.append(
            f"{ref.describe()} names a file ({ref.pattern}) only when POV-Ray parses the "
            f"scene; add the files it can name, e.g. {example}"
        )
    return UnresolvedReferenceError("; ".join(lines), unresolved=unresolved)


class PovrayScanner:
    """Finds the files a .pov scene or a POV-Ray .ini file needs, relative to its folder."""

    name = "povray"

    async def scan(self, scene: Path) -> list[Path]:
        return await self.scan_with_assets(scene, ())

    async def scan_with_assets(self, scene: Path, assets: Sequence[PurePosixPath]) -> list[Path]:
        """Like scan; ``assets`` (relative to the scene folder) are scanned too and
        satisfy the names POV-Ray computes while parsing.  Raises
        UnresolvedReferenceError for a computed name no asset matches."""
        # Reads a few small text files; not worth a thread.
        deps = scan_dependencies(scene, assets=assets)
        names = [str(a) for a in assets] + [str(f) for f in deps.files]
        open_refs = [u for u in deps.unresolved if not u.satisfied_by(names)]
        if open_refs:
            raise unresolved_error(scene, open_refs)
        return [Path(p) for p in deps.files]
