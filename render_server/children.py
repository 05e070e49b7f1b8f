"""Renderer child processes that end with their render server.

A renderer runs in its own session (so a timeout or cancel kills its whole
process group), which also means nothing kills it when the render server itself
is killed: it would run on, orphaned, until its chunk ends. On Linux the child
asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``).

Where util-linux's ``setpriv`` can set that signal, the renderer is started
through it (``setpriv --pdeathsig KILL -- RENDERER ...``, which execs the
renderer in the same process) instead of running Python code in the child
between fork and exec. Without such code the child is started with vfork,
which costs the render server a fraction of a fork of its whole address space
(1.3 ms of CPU per renderer on a 2-core VM, plus the copy-on-write faults
after it) and does not hold its event loop while the child runs Python. The
one difference: ``setpriv`` cannot check that the render server is still
alive once the signal is set, so a render server killed in the moment
between starting a renderer and ``setpriv`` setting its signal leaves that
renderer running, until it next writes output to its closed pipe (SIGPIPE)
or its chunk ends.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


@functools.cache
def death_signal_prefix() -> tuple[str, ...]:
    """The argv prefix that starts a renderer with SIGKILL as its parent-death signal; () where
    there is no ``setpriv`` that can (then use :func:`die_with_parent`).

    Checked once per process by running it (``--pdeathsig`` needs util-linux 2.33).
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        return ()
    prefix = (setpriv, "--pdeathsig", "KILL", "--")
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return prefix if ok else ()


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies; None off Linux.

    The libc function is looked up before the fork (once per process), so the child only
    calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


@functools.cache
def _prctl() -> Callable[..., int]:
    # From the symbols already loaded (libc), as site_agent.files finds syncfs: looking
    # libc up by name (ctypes.util.find_library) runs `ldconfig -p`, which cost every
    # task about 5 ms on the render server's event loop.
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


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
