"""Simulated render servers: real WebSocket clients speaking the real protocol.

Each one says hello, then for every Assign sends TaskStarted and TaskDone with a
tiny PNG per frame inline, as a real render server sends small frames, at once
or after about ``render_s`` of simulated rendering (0.5x to 1.5x, varying per task). With ``SPILLWAY_BENCH_HTTP_FRAMES=1`` (or ``inline=False``) each frame is
PUT through the real upload endpoint first instead, as large frames are. Many of
them share one process and one event loop (the load generator).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
from PIL import Image

from render_server import protocol

INLINE_DEFAULT = os.environ.get("SPILLWAY_BENCH_HTTP_FRAMES", "") != "1"


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 80, 40)).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class FarmStats:
    """What the simulated servers saw; times from ``time.perf_counter``."""

    total_tasks: int
    dispatchable_at: float = 0.0
    """When the job became dispatchable (the submit POST returned)."""
    assigns: list[tuple[float, float]] = field(default_factory=list)
    """Per Assign: when it arrived, and since when its server was ready (its last TaskDone)."""
    first_assign_at: float | None = None
    last_assign_at: float = 0.0
    completed: int = 0
    last_done_at: float = 0.0
    done_times: list[float] = field(default_factory=list)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)
    first_assign: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        """Per Assign, the time from when the task could have been dispatched (the job was
        posted, or the server's previous TaskDone was sent) to the Assign arriving."""
        posted = self.dispatchable_at
        return [max(0.0, at - max(ready, posted)) for at, ready in self.assigns]

    @property
    def reassign_latencies(self) -> list[float]:
        """The same for Assigns after a server's own TaskDone only, leaving out the burst of
        first Assigns when the job is posted to a farm that is all idle at once."""
        return [max(0.0, at - ready) for at, ready in self.assigns if ready > self.dispatchable_at]


class SimServer:
    def __init__(
        self,
        name: str,
        agent_url: str,
        session: aiohttp.ClientSession,
        stats: FarmStats,
        *,
        complete: bool = True,
        inline: bool = INLINE_DEFAULT,
        render_s: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.name = name
        self.agent_url = agent_url
        self.session = session
        self.stats = stats
        self.complete = complete
        self.inline = inline
        self.render_s = render_s
        self._spread = random.Random(name)  # the same render times in every run
        self.clock = clock
        self.server_id = ""
        self.ready_at = 0.0
        self.connected = asyncio.Event()
        self._png = tiny_png()
        self._sha = hashlib.sha256(self._png).hexdigest()

    async def run(self) -> None:
        url = self.agent_url.replace("http", "ws", 1) + "/ws/render-server"
        async with self.session.ws_connect(
            url, max_msg_size=protocol.MAX_MESSAGE_BYTES, heartbeat=None, autoping=True
        ) as ws:
            await ws.send_bytes(
                protocol.encode(
                    protocol.Hello(
                        token="",
                        name=self.name,
                        host="sim",
                        cores=2,
                        memory_mb=4096,
                        os="sim",
                        packages={"builtin": "1.0.0"},
                        slots=1,
                    )
                )
            )
            welcome = protocol.decode((await asyncio.wait_for(ws.receive(), 30)).data)
            if not isinstance(welcome, protocol.Welcome):
                raise RuntimeError(f"{self.name}: expected welcome, got {welcome}")
            self.server_id = welcome.server_id
            self.connected.set()
            beat = asyncio.create_task(self._heartbeats(ws, welcome.heartbeat_interval_s))
            try:
                async for raw in ws:
                    if raw.type != aiohttp.WSMsgType.BINARY:
                        break
                    msg = protocol.decode(raw.data)
                    if isinstance(msg, protocol.Assign):
                        await self._on_assign(ws, msg)
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat

    async def _heartbeats(self, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await ws.send_bytes(protocol.encode(protocol.Heartbeat(free_slots=1)))

    async def _on_assign(self, ws: aiohttp.ClientWebSocketResponse, msg: protocol.Assign) -> None:
        stats = self.stats
        now = self.clock()
        stats.assigns.append((now, self.ready_at))
        stats.last_assign_at = max(stats.last_assign_at, now)
        if stats.first_assign_at is None:
            stats.first_assign_at = now
            stats.first_assign.set()
        if not self.complete:
            return
        await ws.send_bytes(
            protocol.encode(protocol.TaskStarted(task_id=msg.task_id, attempt=msg.attempt))
        )
        if self.render_s:
            # "Rendering", each task for a different time (0.5x to 1.5x render_s): on a farm
            # completions are spread out, not in lock-step across every server.
            await asyncio.sleep(self.render_s * self._spread.uniform(0.5, 1.5))
        outputs = []
        inline = []
        for frame in msg.frames:
            name = f"{msg.output_name}_{frame:04d}.png"
            outputs.append(
                protocol.Output(frame=frame, name=name, sha256=self._sha, size=len(self._png))
            )
            if self.inline:
                inline.append(
                    protocol.InlineFrame(frame=frame, name=name, sha256=self._sha, data=self._png)
                )
                continue
            url = (
                f"{self.agent_url}/api/v1/servers/{self.server_id}/tasks/{msg.task_id}"
                f"/attempts/{msg.attempt}/frames/{frame}"
            )
            async with self.session.put(
                url,
                data=self._png,
                headers={"X-Sha256": self._sha, "Content-Type": "application/octet-stream"},
            ) as resp:
                if resp.status != 201:
                    stats.errors.append(f"PUT frame {frame}: {resp.status} {await resp.text()}")
        await ws.send_bytes(
            protocol.encode(
                protocol.TaskDone(
                    task_id=msg.task_id,
                    attempt=msg.attempt,
                    outputs=outputs,
                    started_at=now,
                    finished_at=time.time(),
                    frames=inline,
                )
            )
        )
        self.ready_at = self.clock()
        stats.completed += 1
        stats.done_times.append(self.ready_at)
        stats.last_done_at = self.ready_at
        if stats.completed >= stats.total_tasks:
            stats.all_done.set()


@contextlib.asynccontextmanager
async def sim_farm(
    agent_url: str,
    count: int,
    stats: FarmStats,
    *,
    complete: bool = True,
    prefix: str = "sim",
    inline: bool = INLINE_DEFAULT,
    render_s: float = 0.0,
) -> AsyncIterator[tuple[aiohttp.ClientSession, list[SimServer]]]:
    """``count`` connected simulated servers for the duration of the block."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        servers = [
            SimServer(
                f"{prefix}-{i:04d}",
                agent_url,
                session,
                stats,
                complete=complete,
                inline=inline,
                render_s=render_s,
            )
            for i in range(count)
        ]
        tasks: list[asyncio.Task[None]] = []
        for i, s in enumerate(servers):
            tasks.append(asyncio.create_task(s.run(), name=s.name))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # do not SYN-flood the listen backlog
        try:
            await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in servers)), 120)
            yield session, servers
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
