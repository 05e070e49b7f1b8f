"""POV-Ray INI files: the options an artist's ``povray scene.ini`` run takes from them.

Only what the farm must know is read: the scene (``Input_File_Name``), other
INI files it pulls in, library paths, the output name, the image size and the
animation range.  Everything else (antialiasing, clock, ``Cyclic_Animation``,
...) is left to POV-Ray, which reads the same file on the render server.

Both spellings are understood: ``Key=value`` lines and command-line switches
(``+W320``, ``+KFF20``, ``+Lincludes``); a bare file name is the scene, or
another INI file when it ends in ``.ini``.  ``;`` starts a comment.  Labelled
``[sections]`` are skipped: POV-Ray reads them only when asked by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spillway.packages.errors import ScanError

__all__ = ["PovrayIni", "ini_frames", "is_ini", "read_ini"]

MAX_INI_DEPTH = 10
"""INI files including INI files deeper than this are a loop."""

_KEYS = {
    "input_file_name": "input",
    "output_file_name": "output",
    "library_path": "library",
    "include_ini": "include_ini",
    "include_header": "header",
    "width": "width",
    "height": "height",
    "initial_frame": "initial_frame",
    "final_frame": "final_frame",
    "subset_start_frame": "subset_start",
    "subset_end_frame": "subset_end",
    "frame_step": "frame_step",
}
_DISPLAY = {name: key.title() for key, name in _KEYS.items()}
# Longest prefixes first: +KFI before +K..., +SF before +S..., +HI before +H.
_SWITCHES = (
    ("kfi", "initial_frame"),
    ("kff", "final_frame"),
    ("stp", "frame_step"),
    ("sf", "subset_start"),
    ("ef", "subset_end"),
    ("hi", "header"),
    ("i", "input"),
    ("o", "output"),
    ("l", "library"),
    ("w", "width"),
    ("h", "height"),
)
_SECTION = re.compile(r"\s*\[.*\]\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class PovrayIni:
    """What an INI file (and the INI files it includes) sets; None where it sets nothing."""

    files: tuple[str, ...] = ()  # the INI files it includes, as named
    input: str | None = None
    output: str | None = None
    header: str | None = None
    library: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    initial_frame: int | None = None
    final_frame: int | None = None
    subset_start: float | None = None
    subset_end: float | None = None
    frame_step: int | None = None

    @property
    def animated(self) -> bool:
        """Whether POV-Ray renders an animation (more than one frame) from these settings."""
        first, last = self.frame_range
        return last > first

    @property
    def frame_range(self) -> tuple[int, int]:
        """(Initial_Frame, Final_Frame) with POV-Ray's defaults (1, 1)."""
        first = 1 if self.initial_frame is None else self.initial_frame
        last = 1 if self.final_frame is None else self.final_frame
        return first, last

    def frames_spec(self) -> str | None:
        """The frames ``povray scene.ini`` renders as a frame spec, or None for a still."""
        if not self.animated:
            return None
        first, last = self.frame_range
        start = _subset(self.subset_start, first, last, first)
        end = _subset(self.subset_end, first, last, last)
        start, end = max(first, start), min(last, end)
        if end < start:
            return None
        step = self.frame_step or 1
        return f"{start}-{end}" if step == 1 else f"{start}-{end}x{step}"


def _subset(value: float | None, first: int, last: int, default: int) -> int:
    """POV-Ray's Subset_*_Frame: a frame number, or a fraction (0..1) of the animation."""
    if value is None:
        return default
    if 0 < value < 1:
        return first + round(value * (last - first))
    return int(value)


def is_ini(path: Path | str) -> bool:
    """Whether POV-Ray reads this file as an INI file (by its extension, as POV-Ray does)."""
    return str(path).lower().endswith(".ini")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _strip_comment(line: str) -> str:
    quote = ""
    for i, char in enumerate(line):
        if char in "\"'":
            quote = "" if quote == char else (quote or char)
        elif char == ";" and not quote:
            return line[:i]
    return line


def _items(text: str) -> Iterator[tuple[str, str]]:
    """(setting, raw value) pairs of one INI file's unlabelled part, in order."""
    for raw in text.splitlines():
        if _SECTION.match(raw):
            return
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if "=" in line and line[0] not in "+-":
            key, _, value = line.partition("=")
            name = _KEYS.get(key.strip().lower())
            if name is not None:
                yield name, _unquote(value)
            continue
        for word in line.split():
            yield from _switch(word)


def _switch(word: str) -> Iterator[tuple[str, str]]:
    if "=" in word and word[0] not in "+-":  # an option among switches: declare=fp=0
        key, _, value = word.partition("=")
        name = _KEYS.get(key.lower())
        if name is not None:
            yield name, _unquote(value)
        return
    if word[0] not in "+-":
        yield ("include_ini" if is_ini(word) else "input"), _unquote(word)
        return
    body = word[1:]
    for prefix, name in _SWITCHES:
        if body.lower().startswith(prefix) and body[len(prefix) :]:
            yield name, _unquote(body[len(prefix) :])
            return


def _number(name: str, value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ScanError(f"{where}: {_DISPLAY[name]} = {value!r} is not a number") from None


def read_ini(path: Path) -> PovrayIni:
    """What ``path`` and the INI files it includes (relative to its folder) set.

    Later settings override earlier ones, as in POV-Ray; library paths add up.
    Raises ScanError for an unreadable or looping INI file or a non-numeric size or frame.
    """
    values: dict[str, Any] = {"files": (), "library": ()}
    _read(path, values, ())
    return PovrayIni(**values)


def _read(path: Path, values: dict[str, Any], chain: tuple[str, ...]) -> None:
    if len(chain) > MAX_INI_DEPTH or str(path) in chain:
        raise ScanError(f"INI file {path.name} includes itself; remove the loop")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ScanError(f"cannot read INI file {path}: {err.strerror or err}") from None
    for name, value in _items(text):
        if not value:  # "Final_Frame=" sets nothing (templates leave values blank)
            continue
        if name == "include_ini":
            values["files"] = (*values["files"], value)
            _read(path.parent / value, values, (*chain, str(path)))
        elif name == "library":
            values["library"] = (*values["library"], value)
        elif name in ("input", "output", "header"):
            values[name] = value
        elif name in ("subset_start", "subset_end"):
            values[name] = _number(name, value, path.name)
        else:
            values[name] = int(_number(name, value, path.name))


def ini_frames(path: Path) -> tuple[str, int, int]:
    """(frame spec, Initial_Frame, Final_Frame) that ``povray path`` renders.

    A still (no animation) is its one frame, Initial_Frame.
    """
    ini = read_ini(path)
    first, last = ini.frame_range
    spec = ini.frames_spec()
    if spec is None:
        return str(first), first, first
    return spec, first, last
