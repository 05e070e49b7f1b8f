"""Make renames into folders durable: ``fsync`` of a folder, shared by concurrent callers.

A file renamed into a folder keeps its name across a power loss only once the folder
itself is synced. :func:`sync_folder` does that for a caller whose rename has
happened; callers that ask for the same folder while a sync of it runs wait for one
more sync started after it, which then covers all of them, so a burst of renames into
one folder costs about two folder syncs rather than one each.
"""

from __future__ import annotations

import os
import threading

__all__ = ["fsync_folder", "sync_folder"]


class _Folder:
    __slots__ = ("asked", "done", "running")

    def __init__(self) -> None:
        self.asked = 0
        """Tickets handed out: a caller takes one after its rename."""
        self.done = 0
        """Every ticket up to this one is covered by a finished sync."""
        self.running = False


_lock = threading.Condition()
_folders: dict[str, _Folder] = {}


def sync_folder(folder: str) -> None:
    """Return once ``folder`` was synced after this call began (blocking; call it in a
    worker thread from async code). Raises the ``OSError`` of a failed sync."""
    if os.name != "posix":  # Windows cannot open a folder to fsync it
        return
    with _lock:
        state = _folders.setdefault(folder, _Folder())
        state.asked += 1
        ticket = state.asked
        while state.done < ticket:
            if state.running:
                _lock.wait()
                continue
            # A sync that starts now covers every ticket handed out so far.
            state.running, covers = True, state.asked
            _lock.release()
            try:
                fsync_folder(folder)
            finally:
                _lock.acquire()
                state.running = False
                _lock.notify_all()
            state.done = max(state.done, covers)
        if not state.running and state.done == state.asked:
            _folders.pop(folder, None)


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """``fsync`` one folder now (POSIX; each call syncs on its own)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
