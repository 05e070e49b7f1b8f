"""The simulated farm spread over processes, so that on a many-core host the load generator
is not what limits the agent.

One process (one event loop) drives ~2,000 simulated servers at a few thousand tasks a
second at most; a many-core host could push an agent past that. ``spread_farm`` runs
``sim_farm`` in ``processes`` child processes (spawned: fresh interpreters, no inherited
loop), each with its share of the servers, and folds what they saw into one
``FarmStats`` in the parent: completions as they happen (so the parent knows when the job
is done), the first Assign at once, and every Assign's times, the completion times, errors
and the children's CPU at the end. With ``processes`` 1 the farm runs in the parent, as
before. Times are ``time.perf_counter``, which on Linux is CLOCK_MONOTONIC and so the same
clock in every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import Connection
from typing import Any

from site_agent.app import new_event_loop

from .simfarm import FarmStats, sim_farm

PROGRESS_EVERY_S = 0.01
"""How often a child reports its completion count (when it changed)."""
CONNECT_LIMIT_S = 180.0


def default_processes(servers: int) -> int:
    """One load-generator process on small hosts (as measured so far); on hosts with 8 or more
    cores, one per 4 cores, at most one per 250 servers."""
    cores = os.cpu_count() or 1
    if cores < 8:
        return 1
    return max(1, min(cores // 4, servers // 250))


def shares(count: int, processes: int) -> list[int]:
    """``count`` servers over ``processes`` children, as evenly as possible, none empty."""
    processes = max(1, min(processes, count))
    base, extra = divmod(count, processes)
    return [base + (1 if i < extra else 0) for i in range(processes)]


@contextlib.asynccontextmanager
async def spread_farm(
    agent_url: str,
    count: int,
    stats: FarmStats,
    *,
    processes: int,
    complete: bool = True,
    render_s: float = 0.0,
) -> AsyncIterator[_Children | None]:
    """``count`` connected simulated servers over ``processes`` processes for the block.

    Yields the children (whose ``mark()`` starts their CPU count), or None when the farm
    runs in this process. On leaving, the children stop and ``stats`` holds all they saw.
    """
    if processes <= 1:
        async with sim_farm(agent_url, count, stats, complete=complete, render_s=render_s):
            yield None
        return
    children = _Children(stats)
    try:
        await children.start(agent_url, shares(count, processes), complete, render_s)
        yield children
    finally:
        await children.stop()


class _Children:
    """The parent's side: the child processes and their pipes."""

    def __init__(self, stats: FarmStats) -> None:
        self.stats = stats
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        self.connected = 0
        self.finals: list[dict[str, Any]] = []
        self.cpu_s = 0.0
        self._all_connected = asyncio.Event()
        self._all_final = asyncio.Event()
        self._failure: str | None = None
        self._final_from: set[int] = set()
        self._ended: set[int] = set()

    async def start(
        self, agent_url: str, counts: list[int], complete: bool, render_s: float
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        for i, n in enumerate(counts):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_child_main,
                args=(child, agent_url, n, f"sim{i}", complete, render_s),
                name=f"loadgen-{i}",
                daemon=True,
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
            threading.Thread(
                target=_read_all,
                args=(parent, loop, self._on_message, self._ended_one),
                daemon=True,
            ).start()
        await asyncio.wait_for(self._all_connected.wait(), CONNECT_LIMIT_S)
        if self._failure:
            raise RuntimeError(f"load generator: {self._failure}")

    def mark(self) -> None:
        """Start counting the children's CPU time from now."""
        for conn in self.conns:
            conn.send(("mark",))

    def _ended_one(self, conn: Connection) -> None:
        self._ended.add(id(conn))
        if id(conn) not in self._final_from:
            self._failure = self._failure or "a load-generator process ended early"
            self._all_connected.set()
            self.stats.all_done.set()
        if len(self._ended) == len(self.conns):
            self._all_final.set()

    def _on_message(self, conn: Connection, msg: tuple[Any, ...]) -> None:
        kind, stats = msg[0], self.stats
        if kind == "connected":
            self.connected += 1
            if self.connected == len(self.procs):
                self._all_connected.set()
        elif kind == "first_assign":
            if stats.first_assign_at is None or msg[1] < stats.first_assign_at:
                stats.first_assign_at = msg[1]
            stats.first_assign.set()
        elif kind == "done":
            stats.completed += msg[1]
            stats.last_done_at = max(stats.last_done_at, msg[2])
            if stats.completed >= stats.total_tasks:
                stats.all_done.set()
        elif kind == "final":
            self.finals.append(msg[1])
            self._final_from.add(id(conn))
        elif kind == "error":
            self._failure = msg[1]
            stats.errors.append(msg[1])
            self._all_connected.set()

    async def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_final.wait(), 30)
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        stats = self.stats
        for final in self.finals:
            stats.assigns.extend(final["assigns"])
            stats.done_times.extend(final["done_times"])
            stats.last_assign_at = max(stats.last_assign_at, final["last_assign_at"])
            stats.errors.extend(final["errors"])
            self.cpu_s += final["cpu_s"]
        stats.done_times.sort()


def _child_main(
    conn: Connection, agent_url: str, count: int, prefix: str, complete: bool, render_s: float
) -> None:
    loop = new_event_loop()
    try:
        loop.run_until_complete(_child(conn, agent_url, count, prefix, complete, render_s))
    except Exception as exc:  # the parent reports it; a child has no one else to tell
        with contextlib.suppress(OSError):
            conn.send(("error", f"{prefix}: {type(exc).__name__}: {exc}"))
    finally:
        loop.close()
        conn.close()


async def _child(
    conn: Connection, agent_url: str, count: int, prefix: str, complete: bool, render_s: float
) -> None:
    stats = FarmStats(total_tasks=1 << 62)
    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    threading.Thread(
        target=_read_all,
        args=(
            conn,
            loop,
            lambda _, cmd: commands.put_nowait(cmd),
            lambda _: commands.put_nowait(("stop",)),
        ),
        daemon=True,
    ).start()
    cpu0 = time.process_time()
    async with sim_farm(
        agent_url, count, stats, complete=complete, prefix=prefix, render_s=render_s
    ):
        conn.send(("connected",))
        reporter = asyncio.create_task(_report_progress(conn, stats))
        try:
            while (command := await commands.get())[0] != "stop":
                if command[0] == "mark":
                    cpu0 = time.process_time()
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
    conn.send(
        (
            "final",
            {
                "assigns": stats.assigns,
                "done_times": stats.done_times,
                "last_assign_at": stats.last_assign_at,
                "errors": stats.errors,
                "cpu_s": time.process_time() - cpu0,
            },
        )
    )


def _read_all(
    conn: Connection,
    loop: asyncio.AbstractEventLoop,
    on_message: Callable[[Connection, tuple[Any, ...]], None],
    on_end: Callable[[Connection], None],
) -> None:
    """Read ``conn`` in this thread (blocking) and hand each message, then its end, to ``loop``.

    A thread, not ``loop.add_reader``: the event loop may make the descriptor non-blocking,
    and a pickled message read half-way then fails."""
    try:
        while True:
            msg = conn.recv()
            loop.call_soon_threadsafe(on_message, conn, msg)
    except (EOFError, OSError):
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(on_end, conn)


async def _report_progress(conn: Connection, stats: FarmStats) -> None:
    sent_first = False
    reported = 0
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        if not sent_first and stats.first_assign_at is not None:
            conn.send(("first_assign", stats.first_assign_at))
            sent_first = True
        if stats.completed != reported:
            conn.send(("done", stats.completed - reported, stats.last_done_at))
            reported = stats.completed
