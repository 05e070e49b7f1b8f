"""The render server reports a finished task before its folder is cleaned up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from render_server import protocol
from render_server.daemon import RenderServer
from render_server.probe import HostInfo, probe_features


class RecordingSocket:
    """Stands in for the agent connection: records each report and the folder's state."""

    closed = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sent: list[tuple[protocol.Message, bool]] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append((protocol.decode(data), self.folder.exists()))


class StubRunner:
    def __init__(self, workdir: Path, outcome: protocol.Message | Exception) -> None:
        self.workdir = workdir
        self.outcome = outcome

    async def run(self) -> protocol.Message:
        (self.workdir / "out").mkdir(parents=True)
        (self.workdir / "out" / "f.png").write_bytes(b"x")
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def _server(tmp_path: Path) -> RenderServer:
    return RenderServer(
        agent_url="http://127.0.0.1:9",
        name="rs",
        slots=1,
        tags=[],
        token="",
        cache_dir=tmp_path / "cache",
        work_dir=tmp_path / "work",
        host=HostInfo(host="h", cores=1, memory_mb=1),
    )


async def _run(server: RenderServer, runner: StubRunner) -> RecordingSocket:
    ws = RecordingSocket(runner.workdir)
    server._ws = ws  # type: ignore[assignment]
    key = (1, 1)
    task: asyncio.Task[Any] = asyncio.create_task(server._run_task(key, runner))  # type: ignore[arg-type]
    server._tasks[key] = task
    await task
    assert server.free_slots == 1, "the slot is free once the report is sent"
    await server._janitor.close()
    return ws


async def test_task_done_is_sent_while_the_folder_still_exists_then_it_is_deleted(
    tmp_path: Path,
) -> None:
    server = _server(tmp_path)
    done = protocol.TaskDone(task_id=1, attempt=1, outputs=[], started_at=0, finished_at=1)
    runner = StubRunner(tmp_path / "work" / "task-1-1", done)
    ws = await _run(server, runner)
    assert [(type(m).__name__, existed) for m, existed in ws.sent] == [("TaskDone", True)]
    assert not runner.workdir.exists()
    assert list((tmp_path / "work").iterdir()) == [], "nothing is left in the trash"


async def test_a_runner_that_raises_still_reports_and_frees_its_slot(tmp_path: Path) -> None:
    server = _server(tmp_path)
    runner = StubRunner(tmp_path / "work" / "task-1-1", RuntimeError("boom"))
    ws = await _run(server, runner)
    [(msg, _)] = ws.sent
    assert isinstance(msg, protocol.TaskFailed)
    assert "boom" in msg.error
    assert not runner.workdir.exists()


def test_hello_reports_package_features_among_the_tags(tmp_path: Path) -> None:
    server = RenderServer(
        agent_url="http://127.0.0.1:9",
        name="rs",
        slots=1,
        tags=["linux", "fast"],
        token="",
        cache_dir=tmp_path / "cache",
        work_dir=tmp_path / "work",
        host=HostInfo(
            host="h", cores=1, memory_mb=1, packages={"blender": "4.1"}, features=["blender:oidn"]
        ),
    )
    hello = protocol.decode(protocol.encode(server._hello()))
    assert isinstance(hello, protocol.Hello)
    assert hello.tags == ["blender:oidn", "fast", "linux"]
    assert hello.packages == {"blender": "4.1"}


async def test_only_packages_with_optional_features_are_asked_for_them() -> None:
    # Neither the built-in tracer nor POV-Ray has optional features: nothing is run.
    assert await probe_features({"builtin", "povray"}) == []
