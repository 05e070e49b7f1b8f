"""The renderers' reaper: one watchdog process per render server that kills its renderers
when the render server dies, however it dies.

A renderer runs in its own session (so a timeout or cancel kills its whole
process group), which also means nothing kills it when the render server itself
is killed: it would run on, orphaned, until its chunk ends. Each renderer
therefore carries a marker in its environment (``SPILLWAY_RENDERER_OF``, a
random value per render server process), and the reaper, a small child process
started once in a session of its own (a kill of the render server's process
group leaves it alive), holds the read end of a pipe whose write end only the
render server holds. When the render server ends, the kernel closes that end;
the reaper reads end-of-file, kills the process group of every process that
carries the marker (found in ``/proc``), looks again a moment later (a renderer
being started at that instant), and exits.

This replaced starting every renderer through ``setpriv --pdeathsig KILL``: an
extra exec per renderer (~0.8 ms of CPU per task on a 2-core VM, ~1.1 ms of
wall time) for what one idle process now does for all of them. It also kills
what a renderer started in its own process group, where the parent-death
signal reached the renderer alone.

Run as ``python -m render_server.reaper MARKER`` with the pipe as its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger(__name__)
MARKER_ENV = "SPILLWAY_RENDERER_OF"
RESCAN_DELAYS_S = (0.2, 1.0)
"""After the first sweep, look again this long later: a renderer whose spawn was under way
when the render server died may exec only after the first sweep."""
STOPPING = b"stopping\n"
"""Written by a render server that stops gracefully (its renderers already ended): one
sweep, no second look, so the stop does not wait for the delays above."""


class Reaper:
    """The render server's side: starts the watchdog and names the marker renderers carry.

    ``env`` is what to add to each renderer's environment. ``watch`` keeps a watchdog
    running for as long as it runs (one killed by someone is started again).
    """

    def __init__(self) -> None:
        self.marker = secrets.token_hex(16)
        self.env = {MARKER_ENV: self.marker}
        self._proc: asyncio.subprocess.Process | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Keep a watchdog running for the block (see :meth:`watch`), then end it."""
        await self.start()
        watch = asyncio.create_task(self.watch(), name="renderers-reaper")
        try:
            yield
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await self.close()

    async def start(self) -> None:
        """Start the watchdog; returns once it runs (its stdin is this process's pipe)."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "render_server.reaper",
            self.marker,
            stdin=asyncio.subprocess.PIPE,
            start_new_session=True,
            # Never a renderer's sweep target, nor in the render server's group.
            env={k: v for k, v in os.environ.items() if k != MARKER_ENV},
        )

    async def watch(self) -> None:
        """Run until cancelled, restarting a watchdog that ended (then cancel leaves it to
        end with this process: its pipe closes)."""
        while True:
            if self._proc is None:
                await self.start()
            assert self._proc is not None
            status = await self._proc.wait()
            log.warning("the renderers' reaper exited (status %s); starting another", status)
            self._proc = None
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        """End the watchdog now and wait for it: told that this is a graceful stop, it
        sweeps once (nothing should be left to find) and exits without looking again."""
        proc, self._proc = self._proc, None
        if proc is None or proc.stdin is None:
            return
        with contextlib.suppress(ConnectionError):
            proc.stdin.write(STOPPING)
            await proc.stdin.drain()
        proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)


def reaper_supported() -> bool:
    """Whether the reaper can find processes here (Linux's /proc with environments)."""
    return Path("/proc/self/environ").exists()


def marked_processes(marker: str, *, proc: Path = Path("/proc")) -> list[int]:
    """Pids of live processes whose environment carries ``MARKER_ENV=marker``."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    own = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def sweep(marker: str) -> int:
    """Kill every marked process and its process group; how many were found."""
    pids = marked_processes(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            pgid = os.getpgid(pid)
            if pgid != os.getpgid(0):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0]:
        print("usage: python -m render_server.reaper MARKER  (stdin: the render server's pipe)")
        return 2
    marker = argv[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C goes to the render server
    said = b""
    while chunk := sys.stdin.buffer.read(4096):  # waits for end-of-file
        said += chunk
    sweep(marker)
    if said == STOPPING:  # a graceful stop: no spawn can be under way
        return 0
    for delay in RESCAN_DELAYS_S:
        time.sleep(delay)
        sweep(marker)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
