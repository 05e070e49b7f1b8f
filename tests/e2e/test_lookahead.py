"""Look-ahead with real processes: a render server holds one task beyond its slot and starts
it the moment the slot frees; a queued task is dropped on cancel and requeued when its
server dies."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from render_server import protocol

from .harness import ROOT, Agent, Process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
LOOKAHEAD = "lookahead = 1\nlookahead_below = 60\n"
"""Into the harness's [scheduling] table: every job counts as short once a task finished."""


@pytest.fixture
def agent(tmp_path: Path, database: str, processes: list[Process]) -> Agent:
    a = Agent(tmp_path / "studio", name="studio", database=database, extra_toml=LOOKAHEAD)
    a.start()
    processes.append(a)
    return a


def _submit(agent: Agent, frames: str, resolution: str) -> str:
    result = agent.cli(
        "submit", str(SCENE), "--package", "builtin", "--json", "--frames", frames,
        "--chunk", "1", "--resolution", resolution,
    )  # fmt: skip
    body = json.loads(result.stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


def _held(agent: Agent, job_id: str, server: str) -> list[dict[str, Any]]:
    """The job's tasks the server holds (dispatched or running), in index order."""
    return [
        t
        for t in agent.job(job_id)["tasks"]
        if t["server"] == server and t["state"] in ("dispatched", "running")
    ]


def _running_and_dispatched(agent: Agent, job_id: str, server: str) -> tuple[int, int] | None:
    """(running task, dispatched task) the 1-slot ``server`` holds now, if it holds both."""
    held = _held(agent, job_id, server)
    running = [t["id"] for t in held if t["state"] == "running"]
    dispatched = [t["id"] for t in held if t["state"] == "dispatched"]
    return (running[0], dispatched[0]) if running and dispatched else None


def _wait_queued(agent: Agent, job_id: str, server: str) -> int:
    """The id of a task waiting in the 1-slot ``server``'s queue: dispatched while another
    task runs there, and still so half a second later. (A task dispatched the moment the
    one before reported done, before that completion committed, looks alike for an
    instant only.)"""
    found: list[int] = []

    def queued() -> bool:
        pair = _running_and_dispatched(agent, job_id, server)
        if pair is None:
            return False
        time.sleep(0.5)
        if _running_and_dispatched(agent, job_id, server) != pair:
            return False
        found.append(pair[1])
        return True

    wait_for(queued, 120, f"a task queued behind the one running on {server}")
    return found[0]


def _frame_files(agent: Agent, job_id: str) -> list[Path]:
    return sorted(p for p in agent.storage.glob(f"*-{job_id}/*.png"))


def test_a_one_slot_server_holds_a_second_task_and_every_frame_renders_once(
    agent: Agent, processes: list[Process]
) -> None:
    processes.append(agent.render_server("rs-1", slots=1, packages="builtin"))
    agent.wait_servers(1)
    job_id = _submit(agent, "1-6", "1280x960")
    _wait_queued(agent, job_id, "rs-1")
    detail = agent.wait_job(job_id, timeout=180)
    assert detail["job"]["state"] == "done"
    assert detail["job"]["progress"]["frames_done"] == 6
    assert all(t["attempt"] == 1 for t in detail["tasks"]), "a task was dispatched twice"
    assert len(_frame_files(agent, job_id)) == 6


def test_a_cancelled_job_s_queued_task_never_starts(agent: Agent, processes: list[Process]) -> None:
    server = agent.render_server("rs-1", slots=1, packages="builtin")
    processes.append(server)
    agent.wait_servers(1)
    job_id = _submit(agent, "1-6", "1280x960")
    queued = _wait_queued(agent, job_id, "rs-1")
    agent.post(f"/api/v1/jobs/{job_id}/cancel")
    assert agent.wait_job(job_id, timeout=60)["job"]["state"] == "cancelled"
    wait_for(
        lambda: f"dropped queued task {queued} attempt 1" in server.log(),
        30,
        f"the server to drop queued task {queued}\n{server.log()}",
    )
    assert f"task {queued} attempt 1: builtin" not in server.log(), "it was started"
    [task] = [t for t in agent.job(job_id)["tasks"] if t["id"] == queued]
    frame = int(str(task["frames"]).split("-")[0])  # one frame a task (chunk 1)
    assert not [p for p in _frame_files(agent, job_id) if p.stem.endswith(f"_{frame:04d}")]


def test_a_queued_task_of_a_killed_server_is_requeued_and_rendered_elsewhere(
    agent: Agent, processes: list[Process]
) -> None:
    doomed = agent.render_server("rs-1", slots=1, packages="builtin")
    processes.append(doomed)
    agent.wait_servers(1)
    job_id = _submit(agent, "1-6", "1280x960")
    queued = _wait_queued(agent, job_id, "rs-1")
    doomed.kill()
    processes.append(agent.render_server("rs-2", slots=1, packages="builtin"))
    detail = agent.wait_job(job_id, timeout=180)
    assert detail["job"]["state"] == "done"
    assert detail["job"]["progress"]["frames_done"] == 6
    [task] = [t for t in detail["tasks"] if t["id"] == queued]
    assert task["server"] == "rs-2"
    assert task["attempt"] == 2, "requeued once, then rendered by the other server"
    assert len(_frame_files(agent, job_id)) == 6


def test_a_paused_job_s_queued_task_goes_back_to_waiting_unstarted(
    agent: Agent, processes: list[Process]
) -> None:
    server = agent.render_server("rs-1", slots=1, packages="builtin")
    processes.append(server)
    agent.wait_servers(1)
    job_id = _submit(agent, "1-6", "1280x960")
    queued = _wait_queued(agent, job_id, "rs-1")
    agent.post(f"/api/v1/jobs/{job_id}/pause")
    wait_for(
        lambda: f"dropped queued task {queued} attempt 1: job paused" in server.log(),
        30,
        f"the server to drop queued task {queued}\n{server.log()}",
    )
    wait_for(lambda: not _held(agent, job_id, "rs-1"), 60, "the running task to end")
    [task] = [t for t in agent.job(job_id)["tasks"] if t["id"] == queued]
    assert task["state"] == "waiting"
    assert f"task {queued} attempt 1: builtin" not in server.log(), "it was started"
    agent.post(f"/api/v1/jobs/{job_id}/resume")
    detail = agent.wait_job(job_id, timeout=180)
    assert detail["job"]["state"] == "done"
    assert len(_frame_files(agent, job_id)) == 6


class ScriptedServer:
    """A render server played step by step over the real protocol (no renderer)."""

    def __init__(self, agent: Agent, name: str) -> None:
        self.url = agent.url.replace("http", "ws", 1) + "/ws/render-server"
        self.name = name
        self.session = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.beats = asyncio.create_task(self.heartbeats())

    async def heartbeats(self) -> None:
        """Every half second, so the agent does not drop the connection as silent."""
        while True:
            await asyncio.sleep(0.5)
            if self.ws is not None and not self.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.send(protocol.Heartbeat(free_slots=0))

    async def connect(
        self, *, running: list[protocol.TaskRef], queued: list[protocol.TaskRef]
    ) -> protocol.Welcome:
        self.ws = await self.session.ws_connect(self.url)
        hello = protocol.Hello(
            token="", name=self.name, host="h", cores=1, memory_mb=1024,
            packages={"builtin": "1.0.0"}, slots=1, queue=1, running=running, queued=queued,
            key="k" * 32, instance="i",
        )  # fmt: skip
        await self.ws.send_bytes(protocol.encode(hello))
        welcome = await self.receive()
        assert isinstance(welcome, protocol.Welcome), welcome
        return welcome

    async def receive(self) -> protocol.Message:
        assert self.ws is not None
        return protocol.decode((await asyncio.wait_for(self.ws.receive(), 30)).data)

    async def send(self, msg: protocol.Message) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(protocol.encode(msg))

    async def render(self, assign: protocol.Assign) -> None:
        """Start and finish the task at once, its frame sent inline."""
        await self.send(protocol.TaskStarted(task_id=assign.task_id, attempt=assign.attempt))
        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (255, 0, 0)).save(buf, format="PNG")
        data, frame = buf.getvalue(), assign.frames[0]
        name = f"{assign.output_name}_{frame:04d}.{assign.output_ext}"
        sha = hashlib.sha256(data).hexdigest()
        await self.send(
            protocol.TaskDone(
                task_id=assign.task_id, attempt=assign.attempt, started_at=0, finished_at=0,
                outputs=[protocol.Output(frame=frame, name=name, sha256=sha, size=len(data))],
                frames=[protocol.InlineFrame(frame=frame, name=name, sha256=sha, data=data)],
            )
        )  # fmt: skip

    async def close(self) -> None:
        self.beats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.beats
        if self.ws is not None:
            await self.ws.close()
        await self.session.close()


def _ref(assign: protocol.Assign) -> protocol.TaskRef:
    return protocol.TaskRef(task_id=assign.task_id, attempt=assign.attempt)


async def _one_started_one_queued(
    agent: Agent, server: ScriptedServer
) -> tuple[str, protocol.Assign, protocol.Assign]:
    """Connect ``server``, submit a job of short tasks, and leave it holding one task
    started in its slot and one waiting in its queue: (job id, in the slot, in the queue)."""
    await server.connect(running=[], queued=[])
    job_id = await asyncio.to_thread(_submit, agent, "1-4", "64x48")
    first = await server.receive()
    assert isinstance(first, protocol.Assign)
    await server.render(first)  # the job's tasks are short from now on
    in_slot, in_queue = await server.receive(), await server.receive()
    assert isinstance(in_slot, protocol.Assign) and isinstance(in_queue, protocol.Assign)
    await server.send(protocol.TaskStarted(task_id=in_slot.task_id, attempt=in_slot.attempt))
    return job_id, in_slot, in_queue


def test_an_agent_restarted_while_a_task_waits_in_a_queue_keeps_it(agent: Agent) -> None:
    async def scenario() -> None:
        server = ScriptedServer(agent, "scripted")
        try:
            job_id, in_slot, in_queue = await _one_started_one_queued(agent, server)
            await asyncio.to_thread(
                wait_for,
                lambda: any(t["state"] == "running" for t in _held(agent, job_id, "scripted")),
                30,
                "the task in the slot to be running",
            )
            await asyncio.to_thread(agent.stop)
            await asyncio.to_thread(agent.start)
            welcome = await server.connect(running=[_ref(in_slot)], queued=[_ref(in_queue)])
            assert welcome.keep == [_ref(in_slot), _ref(in_queue)], "the queued task was dropped"
            [task] = [t for t in agent.job(job_id)["tasks"] if t["id"] == in_queue.task_id]
            assert (task["state"], task["attempt"], task["server"]) == ("dispatched", 1, "scripted")
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_start_reported_after_a_reconnect_counts_from_when_the_task_really_started(
    agent: Agent,
) -> None:
    """A queued task that started while its server was disconnected: the late TaskStarted
    says how long it has run, and the agent dates the start (and so the timeout) back."""
    ran_s = 40.0

    async def scenario() -> None:
        server = ScriptedServer(agent, "scripted")
        try:
            job_id, in_slot, in_queue = await _one_started_one_queued(agent, server)
            assert server.ws is not None
            await server.ws.close()
            # Meanwhile the queued task starts on the server; its start could not be sent.
            welcome = await server.connect(running=[_ref(in_slot), _ref(in_queue)], queued=[])
            assert welcome.keep == [_ref(in_slot), _ref(in_queue)]
            sent_at = time.time()
            await server.send(
                protocol.TaskStarted(
                    task_id=in_queue.task_id, attempt=in_queue.attempt, running_for_s=ran_s
                )
            )

            def started() -> float | None:
                [task] = [t for t in agent.job(job_id)["tasks"] if t["id"] == in_queue.task_id]
                return task["started_at"] if task["state"] == "running" else None

            await asyncio.to_thread(wait_for, started, 30, "the late start to be recorded")
            started_at = await asyncio.to_thread(started)
            assert started_at is not None
            assert sent_at - ran_s - 5 <= started_at <= sent_at - ran_s + 1, started_at - sent_at
        finally:
            await server.close()

    asyncio.run(scenario())
