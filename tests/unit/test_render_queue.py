"""The render server's look-ahead queue: tasks beyond its slots wait and start as slots free."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from render_server import protocol
from render_server.daemon import RenderServer
from render_server.packages.base import PackageAdapter
from render_server.probe import HostInfo


class GatedRunner:
    """A task that reports its start, renders until its gate opens, then uploads its frames
    until its upload gate opens (open unless a test closes it)."""

    def __init__(
        self, server: QueueServer, assign: protocol.Assign, rendered: Callable[[], None]
    ) -> None:
        self.server = server
        self.assign = assign
        self.workdir = server.work_dir / f"task-{assign.task_id}"
        self.gate = asyncio.Event()
        self.upload_gate = asyncio.Event()
        self.upload_gate.set()
        self.rendered = rendered

    async def run(self) -> protocol.Message:
        a = self.assign
        self.workdir.mkdir(parents=True)
        await self.server._send_soft(protocol.TaskStarted(task_id=a.task_id, attempt=a.attempt))
        await self.gate.wait()
        self.rendered()
        await self.upload_gate.wait()
        return protocol.TaskDone(
            task_id=a.task_id, attempt=a.attempt, outputs=[], started_at=0, finished_at=1
        )


class QueueServer(RenderServer):
    """A render server whose tasks are gated runners (no renderer, no agent)."""

    def __init__(self, tmp_path: Path, *, slots: int, queue: int | None = None) -> None:
        super().__init__(
            agent_url="http://127.0.0.1:9",
            name="rs",
            slots=slots,
            queue=queue,
            tags=[],
            token="",
            cache_dir=tmp_path / "cache",
            work_dir=tmp_path / "work",
            host=HostInfo(host="h", cores=1, memory_mb=1, packages={"builtin": "1"}),
        )
        self.runners: dict[int, GatedRunner] = {}
        self.ws = RecordingSocket(self)
        self._ws = self.ws  # type: ignore[assignment]

    def _runner(  # type: ignore[override]
        self, assign: protocol.Assign, adapter: PackageAdapter, *, rendered: Callable[[], None]
    ) -> GatedRunner:
        runner = self.runners[assign.task_id] = GatedRunner(self, assign, rendered)
        return runner


class RecordingSocket:
    """Stands in for the agent connection: each message sent, with the tasks then started."""

    closed = False

    def __init__(self, server: RenderServer) -> None:
        self.server = server
        self.sent: list[tuple[protocol.Message, set[int]]] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append((protocol.decode(data), {t for t, _ in self.server._tasks}))

    def started(self) -> list[int]:
        return [m.task_id for m, _ in self.sent if isinstance(m, protocol.TaskStarted)]


def assign(task_id: int) -> protocol.Assign:
    return protocol.Assign(
        task_id=task_id,
        attempt=1,
        job_id="j",
        job_name="j",
        package="builtin",
        version="1",
        engine="",
        scene="s.json",
        manifest=[],
        frames=[task_id],
        output_name="f",
        output_ext="png",
        timeout_s=60,
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def until(check: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_task_beyond_the_slots_waits_unstarted_and_starts_as_the_slot_frees(
    tmp_path: Path,
) -> None:
    server = QueueServer(tmp_path, slots=1)
    server.admit(assign(1))
    server.admit(assign(2))
    await settle()
    assert server.ws.started() == [1], "only the task in the slot reports a start"
    assert server.free_slots == 0
    hello = server._hello()
    assert (hello.queue, [r.task_id for r in hello.queued]) == (2, [2]), "two per slot"

    server.runners[1].gate.set()
    await until(lambda: server.ws.started() == [1, 2])
    done = [(m, tasks) for m, tasks in server.ws.sent if isinstance(m, protocol.TaskDone)]
    [(msg, started_when_sent)] = done
    assert msg.task_id == 1
    assert 2 in started_when_sent, "the queued task started before the finished one's report"
    server.runners[2].gate.set()
    await until(lambda: not server._tasks)


async def _task_1_uploading_beside_task_2(tmp_path: Path) -> QueueServer:
    """A one-slot server holding tasks 1-3: task 1's renderer has exited and its frames
    are still uploading, task 2 has taken the slot, task 3 waits."""
    server = QueueServer(tmp_path, slots=1)
    for task_id in (1, 2, 3):
        server.admit(assign(task_id))
    await settle()
    server.runners[1].upload_gate.clear()
    server.runners[1].gate.set()
    await until(lambda: server.ws.started() == [1, 2])
    return server


async def _task_3_follows_task_2(server: QueueServer) -> None:
    server.runners[2].gate.set()
    await until(lambda: server.ws.started() == [1, 2, 3])
    server.runners[3].gate.set()
    await until(lambda: not server._tasks)


async def test_the_next_task_starts_once_the_renderer_exits_while_the_frames_upload(
    tmp_path: Path,
) -> None:
    server = await _task_1_uploading_beside_task_2(tmp_path)
    assert not any(isinstance(m, protocol.TaskDone) for m, _ in server.ws.sent)
    assert set(server._tasks) == {(1, 1), (2, 1)}, "task 1 still uploads beside task 2"
    assert [r.task_id for r in server._hello().running] == [1, 2]

    server.runners[1].upload_gate.set()
    await until(lambda: any(isinstance(m, protocol.TaskDone) for m, _ in server.ws.sent))
    await settle()
    assert server.ws.started() == [1, 2], "an upload ending frees no slot: task 3 still waits"
    await _task_3_follows_task_2(server)


async def test_a_cancelled_uploading_task_frees_no_second_slot(tmp_path: Path) -> None:
    server = await _task_1_uploading_beside_task_2(tmp_path)
    server.cancel(protocol.Cancel(task_id=1, attempt=1, reason="job cancelled"))
    await settle()
    assert server.ws.started() == [1, 2], "task 2 holds the one slot"
    await _task_3_follows_task_2(server)


async def test_a_cancelled_queued_task_is_dropped_and_never_started(tmp_path: Path) -> None:
    server = QueueServer(tmp_path, slots=1)
    for task_id in (1, 2, 3):
        server.admit(assign(task_id))
    await settle()
    server.cancel(protocol.Cancel(task_id=2, attempt=1, reason="job cancelled"))
    server.runners[1].gate.set()
    await until(lambda: 3 in server.runners)
    server.runners[3].gate.set()
    await until(lambda: not server._tasks and not server._queued)
    assert server.ws.started() == [1, 3]
    assert 2 not in server.runners


async def test_cancelling_a_running_task_gives_its_slot_to_the_next_queued(
    tmp_path: Path,
) -> None:
    server = QueueServer(tmp_path, slots=1)
    server.admit(assign(1))
    server.admit(assign(2))
    await settle()
    server.cancel(protocol.Cancel(task_id=1, attempt=1, reason="timed out"))
    await until(lambda: server.ws.started() == [1, 2])
    server.runners[2].gate.set()
    await until(lambda: not server._tasks)


async def test_a_welcome_that_does_not_keep_a_queued_task_drops_it(tmp_path: Path) -> None:
    server = QueueServer(tmp_path, slots=1)
    server.admit(assign(1))
    server.admit(assign(2))
    await settle()
    keep = [protocol.TaskRef(task_id=1, attempt=1)]
    server._on_welcome(
        protocol.Welcome(server_id="s", site="x", heartbeat_interval_s=1.0, keep=keep)
    )
    assert not server._queued
    server.runners[1].gate.set()
    await until(lambda: not server._tasks)
    assert server.ws.started() == [1]


async def test_a_server_without_a_queue_starts_each_task_as_before(tmp_path: Path) -> None:
    # Slots fill first; the queue only holds what exceeds them.
    server = QueueServer(tmp_path, slots=2, queue=0)
    server.admit(assign(1))
    server.admit(assign(2))
    await settle()
    assert server.ws.started() == [1, 2]
    assert server._hello().queue == 0
    for runner in server.runners.values():
        runner.gate.set()
    await until(lambda: not server._tasks)


class FakeAgent:
    """A WebSocket endpoint that welcomes the server (keeping every task it names), records
    what it sends, and lets the test drop the connection and hold back the next one."""

    def __init__(self) -> None:
        self.received: list[protocol.Message] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.accept = asyncio.Event()
        self.accept.set()
        self.lose_starts: set[int] = set()
        """Task ids whose TaskStarted on the first connection is lost (as one written into
        a connection that had already died unseen)."""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        await self.accept.wait()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        hello = protocol.decode((await ws.receive()).data)
        assert isinstance(hello, protocol.Hello)
        keep = [*hello.running, *hello.queued]
        welcome = protocol.Welcome(server_id="s-1", site="x", heartbeat_interval_s=60, keep=keep)
        await ws.send_bytes(protocol.encode(welcome))
        self.sockets.append(ws)
        async for raw in ws:
            if raw.type == WSMsgType.BINARY:
                msg = protocol.decode(raw.data)
                lost = isinstance(msg, protocol.TaskStarted) and msg.task_id in self.lose_starts
                if not (lost and len(self.sockets) == 1):
                    self.received.append(msg)
        return ws

    def of(self, kind: type[protocol.Message]) -> list[Any]:
        return [m for m in self.received if isinstance(m, kind)]


@contextlib.asynccontextmanager
async def connected(agent: FakeAgent, tmp_path: Path) -> AsyncIterator[QueueServer]:
    """A one-slot queueing server running its real connection loop against ``agent``."""
    app = web.Application()
    app.router.add_get("/ws/render-server", agent.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = QueueServer(tmp_path, slots=1)
    server.agent_url = f"http://127.0.0.1:{port}"
    server._ws = None
    serving = asyncio.create_task(server.run())
    try:
        yield server
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await server.shutdown()
        await runner.cleanup()


async def test_a_queued_task_started_while_disconnected_reports_its_start_after_the_reconnect(
    tmp_path: Path,
) -> None:
    agent = FakeAgent()
    async with connected(agent, tmp_path) as server:
        await until(lambda: agent.sockets)
        await agent.sockets[0].send_bytes(protocol.encode(assign(1)))
        await agent.sockets[0].send_bytes(protocol.encode(assign(2)))
        await until(lambda: [m.task_id for m in agent.of(protocol.TaskStarted)] == [1])
        agent.accept.clear()  # the reconnect waits until the queued task has started
        await agent.sockets[0].close()
        await until(lambda: server._ws is None)
        server.runners[1].gate.set()
        await until(lambda: 2 in server.runners and (2, 1) in server._tasks)
        await asyncio.sleep(0.2)
        agent.accept.set()
        await until(lambda: len(agent.sockets) == 2 and agent.of(protocol.TaskDone))
        late = [m for m in agent.of(protocol.TaskStarted) if m.task_id == 2]
        assert len(late) == 1, "the start made while disconnected never reached the agent"
        assert late[0].running_for_s >= 0.2
        order = [
            (type(m).__name__, m.task_id)
            for m in agent.received
            if isinstance(m, protocol.TaskStarted | protocol.TaskDone)
        ]
        # Every held task's start is reported again after the reconnect, the late one too.
        assert order == [
            ("TaskStarted", 1),
            ("TaskStarted", 1),
            ("TaskStarted", 2),
            ("TaskDone", 1),
        ], order
        server.runners[2].gate.set()
        await until(lambda: len(agent.of(protocol.TaskDone)) == 2)


async def test_a_start_lost_on_a_dying_connection_is_reported_again_after_the_reconnect(
    tmp_path: Path,
) -> None:
    agent = FakeAgent()
    agent.lose_starts.add(1)
    async with connected(agent, tmp_path) as server:
        await until(lambda: agent.sockets)
        await agent.sockets[0].send_bytes(protocol.encode(assign(1)))
        await until(lambda: (1, 1) in server._tasks)
        await asyncio.sleep(0.3)  # the start went out (and was lost) on the first connection
        assert not agent.of(protocol.TaskStarted)
        await agent.sockets[0].close()
        await until(lambda: len(agent.sockets) == 2 and agent.of(protocol.TaskStarted))
        (again,) = agent.of(protocol.TaskStarted)
        assert again.task_id == 1
        assert again.running_for_s >= 0.3
        server.runners[1].gate.set()
        await until(lambda: agent.of(protocol.TaskDone))
        assert not server._starts, "a reported task's start is forgotten"
