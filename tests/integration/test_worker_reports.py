"""Inline frames written by a connection worker, recorded by the agent over a real store.

The worker's own code writes (or refuses to write) a TaskDone's frames, and the
agent's report path records them, both fenced: the worker writes only attempts it
assigned and saw no Cancel for, and the agent still ignores a stale attempt's
report, recording none of its files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

from aiohttp import web
from test_dispatch_faults import RecordingSocket, add_job, connect

from render_server import protocol
from site_agent.connections import ConnectionRegistry
from site_agent.dispatcher import Dispatcher
from site_agent.lifecycle import Lifecycle
from site_agent.reports import TaskReports
from site_agent.storage import FrameStorage
from site_agent.store import ServerRecord, Store, TaskState
from site_agent.worker import Worker, _Conn, _note_fence
from site_agent.worker_link import (
    LinkMessage,
    LinkWriter,
    Report,
    Written,
    decode_batch,
    encode_batch,
)

PNG = b"\x89PNG\r\n\x1a\n not really a picture"
SHA = hashlib.sha256(PNG).hexdigest()


class Link:
    """Stands in for the worker's link: keeps what the worker forwards."""

    def __init__(self) -> None:
        self.sent: list[LinkMessage] = []

    def send(self, msg: LinkMessage) -> None:
        self.sent.append(msg)


class Farm:
    def __init__(self, store: Store, tmp_path: Path) -> None:
        self.store = store
        self.lifecycle = Lifecycle(store)
        self.registry = ConnectionRegistry()
        self.dispatcher = Dispatcher(store, self.lifecycle, self.registry)
        self.storage = FrameStorage(tmp_path / "frames", max_frame_bytes=1 << 20)
        self.reports = TaskReports(
            store, self.lifecycle, self.registry, self.dispatcher, self.storage
        )
        self.link = Link()
        self.worker = Worker(cast(LinkWriter, self.link), self.storage)
        self.conn = _Conn(id=1, ws=cast(web.WebSocketResponse, None), name="r1", slots=2)
        self.server: ServerRecord
        self.ws: RecordingSocket

    async def start(self) -> None:
        self.server, self.ws = await connect(self.store, self.registry, "r1")
        await add_job(self.lifecycle, "j1", created_at=1.0)

    async def dispatch(self) -> list[protocol.Assign]:
        """One round; the worker sees the Assigns go out, as it does on its connection."""
        before = len(self.ws.sent)
        await self.dispatcher.dispatch_once()
        assigns = [m for m in self.ws.sent[before:] if isinstance(m, protocol.Assign)]
        for assign in assigns:
            _note_fence(self.conn, protocol.encode(assign))
        return assigns

    async def report_done(self, assign: protocol.Assign, name: str = "") -> LinkMessage:
        """The server's TaskDone through the worker, then what it forwarded through the agent."""
        frame = assign.frames[0]
        name = name or f"shot_{frame:04d}.png"
        done = protocol.TaskDone(
            task_id=assign.task_id,
            attempt=assign.attempt,
            outputs=[protocol.Output(frame=frame, name=name, sha256=SHA, size=len(PNG))],
            started_at=1.0,
            finished_at=2.0,
            frames=[protocol.InlineFrame(frame=frame, name=name, sha256=SHA, data=PNG)],
        )
        await self.worker._write_done(self.conn, done, protocol.encode(done))
        # Through the link's codec, as the agent reads it.
        [forwarded] = decode_batch(encode_batch([self.link.sent[-1]])[4:])
        if isinstance(forwarded, Written):
            await self.reports.done(self.server.id, forwarded.done, forwarded.files)
        else:
            assert isinstance(forwarded, Report)
            msg = protocol.decode(forwarded.data)
            assert isinstance(msg, protocol.TaskDone)
            await self.reports.done(self.server.id, msg)
        return forwarded

    def job_dir(self) -> Path:
        return self.storage.job_dir("shot j1", "j1")


async def test_the_worker_writes_the_frames_and_the_agent_records_them(
    store: Store, tmp_path: Path
) -> None:
    farm = Farm(store, tmp_path)
    await farm.start()
    assign, _ = await farm.dispatch()
    forwarded = await farm.report_done(assign)
    assert isinstance(forwarded, Written)
    # Forwarded without the bytes: they are on disk already, durably.
    assert forwarded.done.frames and all(not f.data for f in forwarded.done.frames)
    path = farm.job_dir() / f"shot_{assign.frames[0]:04d}.png"
    assert path.read_bytes() == PNG
    task = await store.get_task(assign.task_id)
    assert task is not None and task.state == TaskState.DONE
    [record] = await store.frames_of("j1", assign.frames)
    assert (record.name, record.sha256, record.size) == (path.name, SHA, len(PNG))
    await farm.lifecycle.close()


async def test_an_attempt_cancelled_through_the_worker_is_left_to_the_agent(
    store: Store, tmp_path: Path
) -> None:
    farm = Farm(store, tmp_path)
    await farm.start()
    assign, _ = await farm.dispatch()
    # Taken back (requeued) and the server told to stop it: the Cancel passes the worker.
    await farm.lifecycle.requeue_server(farm.server.id, at=5.0)
    conn = farm.registry.get(farm.server.id)
    assert conn is not None and conn.release(assign.task_id, assign.attempt) is not None
    cancel = protocol.Cancel(task_id=assign.task_id, attempt=assign.attempt, reason="requeued")
    _note_fence(farm.conn, protocol.encode(cancel))
    forwarded = await farm.report_done(assign)
    assert isinstance(forwarded, Report)  # whole: the worker wrote nothing
    assert not farm.job_dir().exists()
    task = await store.get_task(assign.task_id)
    assert task is not None and task.state == TaskState.WAITING  # the agent ignored it
    assert await store.frames_of("j1", assign.frames) == []
    await farm.lifecycle.close()


async def test_a_report_stale_in_the_agent_records_nothing_the_worker_wrote(
    store: Store, tmp_path: Path
) -> None:
    farm = Farm(store, tmp_path)
    await farm.start()
    assign, _ = await farm.dispatch()
    # The agent dropped the server (silent) and requeued its task; the worker read the
    # TaskDone before the close reached it, so it wrote the frame.
    conn = farm.registry.get(farm.server.id)
    assert conn is not None and farm.registry.remove(conn)
    await farm.lifecycle.requeue_server(farm.server.id, at=5.0)
    forwarded = await farm.report_done(assign)
    assert isinstance(forwarded, Written)
    task = await store.get_task(assign.task_id)
    assert task is not None and task.state == TaskState.WAITING  # ignored as stale
    assert await store.frames_of("j1", assign.frames) == []  # nothing of it recorded
    # Its file stays under the attempt's own name until the next attempt replaces it.
    assert (farm.job_dir() / f"shot_{assign.frames[0]:04d}.png").exists()
    await farm.lifecycle.close()


async def test_a_name_another_frame_might_hold_is_left_to_the_agent(
    store: Store, tmp_path: Path
) -> None:
    farm = Farm(store, tmp_path)
    await farm.start()
    assign, _ = await farm.dispatch()
    forwarded = await farm.report_done(assign, name="beauty.png")
    assert isinstance(forwarded, Report)  # the agent checks the name against the store
    [record] = await store.frames_of("j1", assign.frames)
    assert record.name == "beauty.png" and record.sha256 == SHA
    await farm.lifecycle.close()
