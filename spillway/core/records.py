"""Records shared by several packages, each defined once.

:class:`FileEntry` is one file by content (path, sha256, size): an asset in a
job manifest, in a render-server assignment, in a federation offer, in a
client's submission. Every package converts to and from it only at its
boundaries (a database row, a wire message, a scan of the disk).
:class:`FileKind` says what one file of a rendered frame is, wherever frame
files are listed (the render-server protocol, the store, the APIs, federation).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

if TYPE_CHECKING:
    from spillway.core.constraints import CheckFields

__all__ = [
    "FILE_ENTRY_CHECKS",
    "PREVIEW_DIR",
    "CheckedFileEntry",
    "FileEntry",
    "FileEntryError",
    "FileKind",
    "preview_name",
]

PREVIEW_DIR = ".previews"
"""The folder, inside a job's storage folder, holding the frames' previews."""


def preview_name(main_name: str) -> str:
    """The file name of the preview of a frame whose main file is ``main_name`` (unique in
    the job as main names are: ``shot_0001.exr`` -> ``shot_0001.exr.png``)."""
    return main_name + ".png"


class JobState(StrEnum):
    """A job's state, the same word in the store, the API and the client."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class TaskState(StrEnum):
    """A task's state, the same word in the store, the API and the client."""

    WAITING = "waiting"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (TaskState.DISPATCHED, TaskState.RUNNING)


class FileKind(StrEnum):
    """What one file of a rendered frame is."""

    MAIN = "main"
    """The frame's principal output (the one ``GET .../frames/{frame}`` serves); one per frame."""
    EXTRA = "extra"
    """Another file the renderer wrote for the frame (a second view, a depth map)."""
    PREVIEW = "preview"
    """A small PNG made by the render server for monitors, stored in :data:`PREVIEW_DIR`."""


class FileEntryError(ValueError):
    """A file entry breaks its contract (unsafe path, malformed hash, negative size)."""

    def __init__(self, field: str, expected: str, value: object) -> None:
        self.field = field
        super().__init__(f"file entry field {field!r} must be {expected}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """One file by content: where it goes relative to a root, its sha256 and size.

    Contract: ``path`` is a relative POSIX path that cannot leave its root
    (:func:`spillway.core.checks.is_safe_relpath`), ``sha256`` is 64 lowercase
    hex digits, ``size`` is the byte count (>= 0). Construction does not check
    it, so entries rebuilt from trusted rows stay cheap; a boundary receiving
    entries from outside calls :meth:`check` or decodes them as
    :data:`CheckedFileEntry`.
    """

    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, ``{"path", "sha256", "size"}`` (job views, database rows, submissions)."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FileEntry:
        """Rebuild an entry from its JSON form as written by :meth:`to_dict` (no contract check)."""
        return cls(path=str(d["path"]), sha256=str(d["sha256"]), size=int(d["size"]))

    def check(self) -> FileEntry:
        """Return ``self`` if it keeps the contract; raises :class:`FileEntryError` naming the field."""
        for name, check in _file_entry_checks().checks:
            value = getattr(self, name)
            if not check.ok(value):
                raise FileEntryError(name, check.expected, value)
        return self


@functools.cache
def _file_entry_checks() -> CheckFields:
    from spillway.core.constraints import RELPATH, SHA256, CheckFields, at_least

    return CheckFields(path=RELPATH, sha256=SHA256, size=at_least(0))


if TYPE_CHECKING:
    FILE_ENTRY_CHECKS: CheckFields
    """The contract of each :class:`FileEntry` field, as the wire codec applies it."""
    CheckedFileEntry = Annotated[FileEntry, _file_entry_checks()]
    """A :class:`FileEntry` field the wire codec validates against the contract when decoding."""


def __getattr__(name: str) -> Any:
    # Built when first named (by a wire protocol or a check): a client that only lists
    # and submits jobs need not load the constraint records.
    if name == "FILE_ENTRY_CHECKS":
        return _file_entry_checks()
    if name == "CheckedFileEntry":
        return Annotated[FileEntry, _file_entry_checks()]
    raise AttributeError(f"module 'spillway.core.records' has no attribute {name!r}")
