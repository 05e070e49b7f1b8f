"""Task work dirs removed off the event loop, so a finished task frees its slot at once.

Deleting a task's folder (its scene, linked assets and rendered frames) took a
third of the render server's CPU when it ran on the event loop before the
task's report. A finished folder is now renamed aside, which is one quick
system call and frees its name for the next task, and deleted in a worker
thread. Deletion failures are logged and never fail a task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from pathlib import Path

log = logging.getLogger(__name__)
TRASH_PREFIX = ".trash-"
TASK_PREFIX = "task-"


class WorkdirJanitor:
    """Owns the deletion of task folders under one work root.

    ``discard`` returns at once; the folder's name is free when it returns.
    ``close`` waits (bounded) for deletions still running.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending: set[asyncio.Task[None]] = set()

    def sweep(self) -> None:
        """Delete what an earlier run left behind (it was killed mid-task or mid-deletion).

        Call before any task starts: every task folder found then is stale.
        """
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name.startswith(TRASH_PREFIX):
                self._delete_later(entry)
            elif entry.name.startswith(TASK_PREFIX) and entry.is_dir():
                self.discard(entry)

    def discard(self, folder: Path) -> None:
        """Remove ``folder`` (if it exists) without blocking; its name is free on return."""
        trash = self.root / f"{TRASH_PREFIX}{uuid.uuid4().hex}"
        try:
            os.rename(folder, trash)
        except FileNotFoundError:
            return
        except OSError as exc:
            # Not renamable (e.g. another file system): delete in place, now, so the
            # next task of the same name never finds a half-deleted folder.
            log.warning("cannot move %s aside (%s); deleting it in place", folder, exc)
            _remove(folder)
            return
        self._delete_later(trash)

    @property
    def pending(self) -> int:
        """Deletions still running."""
        return len(self._pending)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Wait up to ``timeout_s`` for running deletions; what is left stays in the trash."""
        if not self._pending:
            return
        _done, left = await asyncio.wait(set(self._pending), timeout=timeout_s)
        if left:
            log.warning(
                "%d task folders still being deleted at shutdown; the next start removes them",
                len(left),
            )

    def _delete_later(self, path: Path) -> None:
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(_remove, path),
            name=f"delete-{path.name}",
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def _remove(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        log.warning("could not delete %s after its task: %s", path, exc)
