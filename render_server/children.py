"""How the render server learns of its renderer processes' exits.

(What ends them when the render server itself dies is :mod:`.reaper`.)
"""

from __future__ import annotations

import asyncio
import os
import sys


def watch_children_with_pidfds() -> bool:
    """Have asyncio learn of child exits through pidfds (Linux 5.3+); whether it now does.

    Python 3.11's default child watcher starts a thread per child process that
    waits for it and then ends: a thread start and a cross-thread wake-up for
    every renderer. A pidfd is one more file descriptor in the event loop's
    selector instead. Python 3.12 already watches this way where it can, so
    this changes nothing there (and leaves the deprecated watcher API alone).
    Call it once in the running event loop, before its first child process.
    """
    if sys.version_info >= (3, 12) or not sys.platform.startswith("linux"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel older than 5.3: keep the threaded watcher
        return False
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    return True
