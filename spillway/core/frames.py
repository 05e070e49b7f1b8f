"""Frame-spec syntax: parse ``1-240x10,300`` into frames and format frames back.

A frame spec is a comma-separated list of items; each item is a single frame
(``7``), an inclusive range (``1-240``) or a stepped range (``1-240x10``).
Frames are whole numbers from 0 to :data:`MAX_FRAME`.  Clients check a spec
before submitting it and the agent parses it again, so both read it here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

__all__ = ["MAX_FRAME", "FrameSpecError", "format_frames", "parse_frames"]


class FrameSpecError(ValueError):
    """A frame spec cannot be used as given; the message says how to write it."""


MAX_FRAME = 9_999_999
"""Largest frame number accepted (output names pad to at least four digits)."""

_FORMS = "use forms like 1-240, 1-240x10 or 1,5,10-20"
_NUMBER = re.compile(r"[0-9]+")


def _bad(spec: str, problem: str) -> FrameSpecError:
    return FrameSpecError(f"bad frame spec {spec!r}: {problem}; {_FORMS}")


def _number(spec: str, item: str, text: str) -> int:
    text = text.strip()
    if not text:
        raise _bad(spec, f"{item!r} is missing a number")
    if text.startswith("-") and _NUMBER.fullmatch(text[1:].strip()):
        raise _bad(spec, f"{text!r} is negative; frames start at 0")
    if not _NUMBER.fullmatch(text):
        raise _bad(spec, f"{text!r} is not a whole number")
    value = int(text)
    if value > MAX_FRAME:
        raise _bad(spec, f"frame {value} is above the largest allowed frame {MAX_FRAME}")
    return value


_STEPPED = re.compile(r"\s*[0-9]+\s*[xX]")


def _split_step(text: str) -> tuple[str, str | None]:
    """Split ``"240x10"`` into ``("240", "10")``; text without a step gives ``(text, None)``."""
    if _STEPPED.match(text):
        body, _, step = text.replace("X", "x").partition("x")
        return body, step
    return text, None


def _step(spec: str, item: str, text: str) -> int:
    stripped = text.strip()
    if stripped.startswith("-") or (_NUMBER.fullmatch(stripped) and int(stripped) == 0):
        raise _bad(spec, f"step {stripped!r} in {item!r} must be 1 or more")
    if not _NUMBER.fullmatch(stripped):
        raise _bad(spec, f"step {stripped!r} in {item!r} is not a whole number")
    return int(stripped)


def _parse_item(spec: str, item: str) -> range:
    """Turn one comma-separated item into the range of frames it names."""
    if item.startswith("-") and item[1:2].isdigit():
        raise _bad(spec, f"{item!r} is negative; frames start at 0")
    start_text, has_end, rest = item.partition("-")
    if not has_end:
        if _split_step(start_text)[1] is not None:
            raise _bad(
                spec, f"{item!r} has a step but no range; a step needs a range like 1-240x10"
            )
        start = _number(spec, item, start_text)
        return range(start, start + 1)
    start = _number(spec, item, start_text)
    end_text, step_text = _split_step(rest)
    if "-" in end_text and not end_text.lstrip().startswith("-"):
        raise _bad(spec, f"{item!r} has more than one '-'")
    end = _number(spec, item, end_text)
    if end < start:
        raise _bad(spec, f"{item!r} ends before it starts; write it as {end}-{start}")
    step = 1 if step_text is None else _step(spec, item, step_text)
    return range(start, end + 1, step)


def _too_many(spec: str, count: int, max_frames: int) -> FrameSpecError:
    return FrameSpecError(
        f"bad frame spec {spec!r}: it names {count} frames, more than the limit of {max_frames}; "
        "split it into several jobs or use a step such as 1-240x10"
    )


def parse_frames(spec: str, *, max_frames: int = 1_000_000) -> tuple[int, ...]:
    """Parse a frame spec into its sorted unique frames.

    Raises :class:`FrameSpecError` for an empty or malformed spec, a range that
    ends before it starts, a step below 1, a frame above :data:`MAX_FRAME`, or
    more than ``max_frames`` distinct frames.
    """
    if not spec.strip():
        raise _bad(spec, "it is empty")
    ranges: list[range] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise _bad(spec, "it has an empty item between commas")
        ranges.append(_parse_item(spec, item))
    if sum(len(r) for r in ranges) <= max_frames:
        frames: set[int] = set()
        for r in ranges:
            frames.update(r)
        return tuple(sorted(frames))
    # Overlapping items may still fit the limit; count exactly with a bitmap
    # (bounded by MAX_FRAME) instead of materialising every repeat.
    bitmap = bytearray(max(r[-1] for r in ranges if r) + 1)
    for r in ranges:
        bitmap[r.start : r.stop : r.step] = b"\x01" * len(r)
    count = bitmap.count(1)
    if count > max_frames:
        raise _too_many(spec, count, max_frames)
    return tuple(itertools.compress(range(len(bitmap)), bitmap))


def format_frames(frames: Iterable[int]) -> str:
    """Format frames as a compact spec that :func:`parse_frames` reads back.

    Consecutive runs become ``a-b``, evenly stepped runs of three or more become
    ``a-bxN``; anything else is listed with commas. Duplicates and order are
    ignored; no frames give ``""``. Runs in linear time.
    """
    ordered = sorted(set(frames))
    if ordered and ordered[0] < 0:
        raise FrameSpecError(f"cannot format frame {ordered[0]}: frames start at 0")
    parts: list[str] = []
    count = len(ordered)
    index = 0
    while index < count:
        first = ordered[index]
        end = index + 1
        if end < count:
            step = ordered[end] - first
            while end + 1 < count and ordered[end + 1] - ordered[end] == step:
                end += 1
            if step == 1 or end >= index + 2:
                last = ordered[end]
                parts.append(f"{first}-{last}" if step == 1 else f"{first}-{last}x{step}")
                index = end + 1
                continue
        parts.append(str(first))
        index += 1
    return ",".join(parts)
