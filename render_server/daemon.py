"""The render server daemon: dials the agent, says hello, heartbeats, runs tasks.

The connection is the server's (it dials out, so NAT is fine) and is re-established
with backoff whenever it drops, e.g. while the agent restarts. Tasks keep running
while disconnected; their final reports wait in ``_unreported`` and are delivered
after the next hello, which lists them so the agent keeps them assigned.

At most ``slots`` renderers run at once. An agent may assign up to ``queue`` more
tasks (look-ahead, announced in the hello): they wait in a first-in-first-out
queue and the next one starts the moment a running task's renderer exits well,
while that task's frames are still being collected, previewed and uploaded and
before its report is sent, so a slot does not sit idle for the upload or the
round trip to the agent. A queued task is not started (no TaskStarted) until
then; a Cancel drops it from the queue.

Every start is remembered in ``_starts`` while its task is held. After each
reconnect the server reports the start of every task it holds again, before any
final report, saying how long the task has run, so the agent counts the task's
timeout from its real start instead of from its dispatch even when the first
report was lost: made while disconnected, or written into a connection that had
already died unseen. The agent's start is idempotent (same start, same lease).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path

import aiohttp

from . import protocol
from .cache import AssetCache
from .packages.base import PackageAdapter, registry
from .probe import HostInfo
from .runner import PreflightCache, TaskRunner
from .workdirs import WorkdirJanitor

log = logging.getLogger(__name__)
MAX_BACKOFF_S = protocol.RECONNECT_BACKOFF_MAX_S


class RefusedError(Exception):
    """The agent refused this render server (bad token, protocol mismatch)."""


class RenderServer:
    def __init__(
        self,
        *,
        agent_url: str,
        name: str,
        slots: int,
        tags: list[str],
        token: str,
        cache_dir: Path,
        work_dir: Path,
        host: HostInfo,
        key: str = "",
        queue: int | None = None,
        renderer_env: Mapping[str, str] | None = None,
    ) -> None:
        self.agent_url = agent_url.rstrip("/")
        self.name = name
        self.slots = slots
        self.queue = 2 * slots if queue is None else max(0, queue)
        """Tasks this server keeps waiting beyond its slots (two per slot unless told; the
        agent's ``[scheduling] lookahead`` decides how many it uses)."""
        self.tags = tags
        self.token = token
        self.cache_dir = cache_dir
        self.work_dir = work_dir
        self.host = host
        self.key = key
        self.instance = uuid.uuid4().hex
        self.server_id = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: dict[tuple[int, int], asyncio.Task[None]] = {}
        """Started tasks not yet ended: rendering, or collecting and uploading their frames."""
        self._in_slots: set[tuple[int, int]] = set()
        """The started tasks that hold a slot: those whose renderer has not yet exited well."""
        self._unreported: dict[tuple[int, int], protocol.Message] = {}
        self._queued: collections.OrderedDict[tuple[int, int], protocol.Assign] = (
            collections.OrderedDict()
        )
        """Assigned tasks waiting for a slot, in arrival order."""
        self._starts: dict[tuple[int, int], float] = {}
        """Started tasks still held (running, or with their final report unsent), with the
        loop time of their start: reported again after every reconnect."""
        self._renderer_env = dict(renderer_env or {})
        self._heartbeat_s = 2.0
        self._adapters = registry()
        self._janitor = WorkdirJanitor(work_dir)
        self._preflight = PreflightCache()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            self._session = session
            self._cache = AssetCache(self.cache_dir, session, self.agent_url, self.token)
            self._janitor.sweep()
            delay = 0.2
            while True:
                try:
                    await self._connect_and_serve()
                    delay = 0.2
                except RefusedError:
                    raise
                except (aiohttp.ClientError, OSError, TimeoutError, protocol.ProtocolError) as exc:
                    log.info("agent connection lost or unavailable (%s); reconnecting", exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def _connect_and_serve(self) -> None:
        url = self.agent_url.replace("http", "ws", 1) + "/ws/render-server"
        async with self._session.ws_connect(
            url,
            max_msg_size=protocol.MAX_MESSAGE_BYTES,
            timeout=aiohttp.ClientWSTimeout(ws_close=10),
        ) as ws:
            await ws.send_bytes(protocol.encode(self._hello()))
            first = await asyncio.wait_for(ws.receive(), 15)
            if first.type != aiohttp.WSMsgType.BINARY:
                raise aiohttp.ClientError(
                    f"agent closed the connection: {ws.close_code} {first.extra or ''}"
                )
            welcome = protocol.decode(first.data)
            if isinstance(welcome, protocol.Refused):
                raise RefusedError(welcome.reason)
            if not isinstance(welcome, protocol.Welcome):
                raise protocol.ProtocolError(f"expected welcome, got {welcome.TYPE}")
            self._on_welcome(welcome)
            self._ws = ws
            log.info("connected to site %s as %s (%s)", welcome.site, self.name, welcome.server_id)
            beat = asyncio.create_task(self._heartbeats(ws), name="heartbeat")
            try:
                await self._report_starts()
                await self._flush_unreported()
                await self._receive(ws)
            finally:
                self._ws = None
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat

    def _hello(self) -> protocol.Hello:
        running = [
            protocol.TaskRef(task_id=t, attempt=a)
            for t, a in sorted({*self._tasks, *self._unreported})
        ]
        # HostInfo's fields are the hardware part of the hello, except its package
        # features, which travel as tags so jobs can require them like any tag.
        host = dataclasses.asdict(self.host)
        features = host.pop("features")
        return protocol.Hello(
            token=self.token,
            name=self.name,
            tags=sorted({*self.tags, *features}),
            slots=self.slots,
            running=running,
            queue=self.queue,
            queued=_refs(self._queued),
            key=self.key,
            instance=self.instance,
            **host,
        )

    def _on_welcome(self, welcome: protocol.Welcome) -> None:
        self.server_id = welcome.server_id
        self._heartbeat_s = welcome.heartbeat_interval_s
        keep = {(r.task_id, r.attempt) for r in welcome.keep}
        for key in [k for k in self._tasks if k not in keep]:
            log.info("agent no longer expects task %s attempt %s; stopping it", *key)
            self._tasks.pop(key).cancel()
            self._in_slots.discard(key)
        for key in [k for k in self._queued if k not in keep]:
            log.info("agent no longer expects queued task %s attempt %s; dropping it", *key)
            del self._queued[key]
        for key in [k for k in self._unreported if k not in keep]:
            del self._unreported[key]
        for key in [k for k in self._starts if k not in keep]:
            del self._starts[key]
        self._start_queued()

    async def _heartbeats(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            beat = protocol.Heartbeat(
                free_slots=self.free_slots, running=_refs(self._tasks), queued=_refs(self._queued)
            )
            await ws.send_bytes(protocol.encode(beat))
            await asyncio.sleep(self._heartbeat_s)

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - len(self._tasks) - len(self._unreported))

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for raw in ws:
            if raw.type != aiohttp.WSMsgType.BINARY:
                break
            msg = protocol.decode(raw.data)
            if isinstance(msg, protocol.Assign):
                self.admit(msg)
            elif isinstance(msg, protocol.Cancel):
                self.cancel(msg)
            elif isinstance(msg, protocol.Refused):
                raise RefusedError(msg.reason)

    def admit(self, assign: protocol.Assign) -> None:
        """Start an assigned task in a free slot, or queue it until one frees."""
        key = (assign.task_id, assign.attempt)
        if key in self._tasks or key in self._queued:
            return  # a repeated Assign of an attempt already held
        if len(self._in_slots) >= self.slots:
            if len(self._queued) >= self.queue:
                log.warning(
                    "task %s attempt %s: beyond this server's queue of %d", *key, self.queue
                )
            log.debug("task %s attempt %s: queued for the next free slot", *key)
        self._queued[key] = assign
        self._start_queued()

    def cancel(self, msg: protocol.Cancel) -> None:
        """Stop a running task (its slot goes to the next queued one) or drop a queued one."""
        key = (msg.task_id, msg.attempt)
        if self._queued.pop(key, None) is not None:
            log.info("dropped queued task %s attempt %s: %s", *key, msg.reason)
            return
        task = self._tasks.pop(key, None)
        if task is not None:
            log.info("cancelling task %s attempt %s: %s", *key, msg.reason)
            task.cancel()
            self._free_slot(key)

    def _start_queued(self) -> None:
        """Start queued tasks, oldest first, while slots are free."""
        while self._queued and len(self._in_slots) < self.slots:
            _, assign = self._queued.popitem(last=False)
            self._start(assign)

    def _free_slot(self, key: tuple[int, int]) -> None:
        """The task no longer renders (its renderer exited, or it ended or was stopped):
        its slot goes to the next queued task. Called again for the same task, it does nothing."""
        if key in self._in_slots:
            self._in_slots.discard(key)
            self._start_queued()

    def _start(self, assign: protocol.Assign) -> None:
        key = (assign.task_id, assign.attempt)
        adapter = self._adapters.get(assign.package)
        if adapter is None or assign.package not in self.host.packages:
            self._unreported[key] = protocol.TaskFailed(
                task_id=assign.task_id,
                attempt=assign.attempt,
                error=f"render server {self.name} does not have {assign.package}",
            )
            asyncio.get_running_loop().create_task(self._flush_unreported())
            return
        runner = self._runner(assign, adapter, rendered=partial(self._free_slot, key))
        log.info(
            "task %s attempt %s: %s frames %s-%s of job %s",
            assign.task_id,
            assign.attempt,
            assign.package,
            assign.frames[0],
            assign.frames[-1],
            assign.job_id,
        )
        self._in_slots.add(key)
        self._tasks[key] = asyncio.create_task(
            self._run_task(key, runner), name=f"task-{assign.task_id}"
        )

    def _runner(
        self, assign: protocol.Assign, adapter: PackageAdapter, *, rendered: Callable[[], None]
    ) -> TaskRunner:
        return TaskRunner(
            assign,
            adapter=adapter,
            cache=self._cache,
            work_root=self.work_dir,
            session=self._session,
            agent_url=self.agent_url,
            token=self.token,
            server_key=self.key,
            server_id=self.server_id,
            send=self._send_soft,
            janitor=self._janitor,
            preflight=self._preflight,
            child_env=self._renderer_env,
            rendered=rendered,
        )

    async def _run_task(self, key: tuple[int, int], runner: TaskRunner) -> None:
        """Run a task, report it, then discard its folder (off the loop, after the report)."""
        try:
            try:
                final = await runner.run()
            except Exception as exc:  # run() reports its own errors; this is the last resort
                log.exception("task %s attempt %s: runner failed", *key)
                final = protocol.TaskFailed(
                    task_id=key[0], attempt=key[1], error=f"render server error: {exc!r}"
                )
            self._tasks.pop(key, None)
            self._free_slot(key)  # a failed task's slot: the next starts before the report goes
            self._unreported[key] = final
            await self._flush_unreported()
        finally:
            self._free_slot(key)  # however it ended (a cancel frees it at once, as above)
            if key not in self._unreported:  # reported, or dropped (cancelled, not expected)
                self._starts.pop(key, None)
            self._janitor.discard(runner.workdir)

    async def _flush_unreported(self) -> None:
        for key, msg in list(self._unreported.items()):
            if self._ws is None or self._ws.closed:
                return
            try:
                await self._ws.send_bytes(protocol.encode(msg))
            except (ConnectionError, RuntimeError):
                return
            self._unreported.pop(key, None)
            self._starts.pop(key, None)

    async def _report_starts(self) -> None:
        """After a reconnect, report the start of every started task still held, with how
        long each has run (its first report may never have arrived); a task ended with its
        report unsent gets its start first, as it would have."""
        now = asyncio.get_running_loop().time()
        for key, at in list(self._starts.items()):
            if key not in self._tasks and key not in self._unreported:
                del self._starts[key]
                continue
            if self._ws is None or self._ws.closed:
                return
            again = protocol.TaskStarted(
                task_id=key[0], attempt=key[1], running_for_s=max(0.0, now - at)
            )
            try:
                await self._ws.send_bytes(protocol.encode(again))
            except (ConnectionError, RuntimeError):
                return

    async def _send_soft(self, msg: protocol.Message) -> None:
        """Best-effort send for progress messages, dropped while disconnected; a
        TaskStarted's time is kept in ``_starts`` whether or not it went (reported again
        after the next hello)."""
        if isinstance(msg, protocol.TaskStarted):
            key = (msg.task_id, msg.attempt)
            self._starts[key] = asyncio.get_running_loop().time() - msg.running_for_s
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_bytes(protocol.encode(msg))

    async def shutdown(self) -> None:
        """Stop running tasks and wait (bounded) for their folders to be deleted."""
        self._queued.clear()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self._janitor.close()


def _refs(keys: Iterable[tuple[int, int]]) -> list[protocol.TaskRef]:
    return [protocol.TaskRef(task_id=t, attempt=a) for t, a in keys]
