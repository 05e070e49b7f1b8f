"""The render server's task runner with a real child process as the renderer.

The "renderer" is a tiny Python script behind a test adapter, so these tests
need no render package but exercise the real spawn, output reading, failure
reporting and folder cleanup.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from render_server import protocol
from render_server.cache import AssetCache
from render_server.packages.base import (
    Capture,
    RenderRequest,
    check_declared_assets,
    missing_error,
    run_capture,
)
from render_server.runner import PreflightCache, TaskRunner
from render_server.workdirs import WorkdirJanitor
from spillway.core.records import FileEntry

LONG_LINE = 200_000
# Prints a 200 KB line with no newline, then its last words, then writes the frame
# (or not) and exits with the status given as argv[1].
SCRIPT = """
import pathlib, sys
sys.stdout.write("progress " * (200_000 // 9))
sys.stdout.write(" LAST-WORDS-" + sys.argv[1])
sys.stdout.flush()
if sys.argv[1] == "0":
    (pathlib.Path("_spillway_out") / "f_0001.png").write_bytes(b"png")
sys.exit(int(sys.argv[1]))
"""


class ScriptAdapter:
    """A render package whose renderer is a Python script; counts scene checks."""

    name = "script"
    output_ext = "png"

    def __init__(self, status: int = 0, *, fail_collect: bool = False) -> None:
        self.status = status
        self.fail_collect = fail_collect
        self.preflights = 0

    async def probe(self, capture: Capture = run_capture) -> str | None:
        return "1.0"

    def command(self, req: RenderRequest) -> list[str]:
        return [sys.executable, "-c", SCRIPT, str(self.status)]

    def env(self, req: RenderRequest) -> dict[str, str]:
        return {}

    def preflight(self, req: RenderRequest) -> None:
        self.preflights += 1
        check_declared_assets(req)

    def collect(self, req: RenderRequest) -> dict[int, list[Path]]:
        if self.fail_collect:
            raise RuntimeError("collector bug")
        return {1: [req.outdir / "f_0001.png"]}

    async def scan(self, scene: Path) -> list[Path]:
        return []


def _assign(task_id: int = 7, *, job_id: str = "j1", sha: str = "a" * 64) -> protocol.Assign:
    return protocol.Assign(
        task_id=task_id,
        attempt=1,
        job_id=job_id,
        job_name="job",
        package="script",
        version="1.0",
        engine="",
        scene="scene.txt",
        manifest=[FileEntry(path="scene.txt", sha256=sha, size=5)],
        frames=[1],
        output_name="f",
        output_ext="png",
        width=8,
        height=8,
        timeout_s=3600,
    )


class Harness:
    def __init__(self, root: Path, session: aiohttp.ClientSession) -> None:
        self.root = root
        self.work = root / "work"
        self.cache = AssetCache(root / "cache", session, "http://127.0.0.1:9", "")
        for sha in ("a" * 64, "b" * 64):  # pre-seeded, so nothing is fetched
            path = self.cache.path_for(sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"scene")
        self.session = session
        self.janitor = WorkdirJanitor(self.work)
        self.preflight = PreflightCache()
        self.sent: list[protocol.Message] = []

    async def send(self, msg: protocol.Message) -> None:
        self.sent.append(msg)

    def runner(
        self,
        adapter: ScriptAdapter,
        assign: protocol.Assign,
        rendered: Callable[[], None] | None = None,
    ) -> TaskRunner:
        return TaskRunner(
            assign,
            adapter=adapter,
            cache=self.cache,
            work_root=self.work,
            session=self.session,
            agent_url="http://127.0.0.1:9",
            token="",
            server_id="s1",
            send=self.send,
            janitor=self.janitor,
            preflight=self.preflight,
            rendered=rendered,
        )


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with aiohttp.ClientSession() as session:
        h = Harness(tmp_path, session)
        yield h
        await h.janitor.close()


async def _run(runner: TaskRunner) -> tuple[protocol.Message, float]:
    t0 = time.monotonic()
    final = await asyncio.wait_for(runner.run(), 60)
    return final, time.monotonic() - t0


async def test_a_200kb_line_without_newline_then_failure_reports_the_last_words(
    harness: Harness,
) -> None:
    final, elapsed = await _run(harness.runner(ScriptAdapter(status=1), _assign()))
    assert isinstance(final, protocol.TaskFailed), final
    assert elapsed < 30, "the failure must be reported when the renderer exits, not at timeout"
    assert "exited with status 1" in final.error
    assert final.error.endswith("LAST-WORDS-1")
    assert len(final.error) < 4000, "a long line is capped in the error"
    assert "bytes cut" in final.log_tail
    assert len(final.log_tail) < 10_000
    logs = "".join(m.text for m in harness.sent if isinstance(m, protocol.TaskLog))
    assert "LAST-WORDS-1" in logs and len(logs) < 10_000


async def test_a_200kb_line_without_newline_then_success_completes(harness: Harness) -> None:
    final, elapsed = await _run(harness.runner(ScriptAdapter(status=0), _assign()))
    assert isinstance(final, protocol.TaskDone), final
    assert elapsed < 30
    assert [f.data for f in final.frames] == [b"png"]
    assert final.log_tail.endswith("LAST-WORDS-0")


class CollectWatchingAdapter(ScriptAdapter):
    """Records, when collecting the frames, whether the slot was already given back."""

    def __init__(self, status: int, freed: list[str]) -> None:
        super().__init__(status)
        self.freed = freed

    def collect(self, req: RenderRequest) -> dict[int, list[Path]]:
        self.freed.append("collect")
        return super().collect(req)


async def test_the_slot_is_given_back_when_the_renderer_exits_before_the_upload(
    harness: Harness,
) -> None:
    events: list[str] = []
    adapter = CollectWatchingAdapter(0, events)
    final, _ = await _run(harness.runner(adapter, _assign(), lambda: events.append("rendered")))
    assert isinstance(final, protocol.TaskDone), final
    assert events == ["rendered", "collect"]


async def test_a_failed_render_does_not_give_its_slot_back_early(harness: Harness) -> None:
    # The daemon frees a failed task's slot when its report is ready.
    events: list[str] = []
    adapter = CollectWatchingAdapter(1, events)
    final, _ = await _run(harness.runner(adapter, _assign(), lambda: events.append("rendered")))
    assert isinstance(final, protocol.TaskFailed), final
    assert events == []


async def test_an_unexpected_error_fails_the_task_with_its_reason(harness: Harness) -> None:
    final, _ = await _run(harness.runner(ScriptAdapter(fail_collect=True), _assign()))
    assert isinstance(final, protocol.TaskFailed), final
    assert "RuntimeError" in final.error and "collector bug" in final.error


async def test_an_unlayable_manifest_path_fails_the_task(harness: Harness) -> None:
    assign = dataclasses.replace(
        _assign(), manifest=[FileEntry(path="x" * 300 + "/a.png", sha256="a" * 64, size=5)]
    )
    final, _ = await _run(harness.runner(ScriptAdapter(), assign))
    assert isinstance(final, protocol.TaskFailed), final
    assert "render server error" in final.error


async def test_scene_checks_are_cached_per_job_and_inputs(harness: Harness) -> None:
    adapter = ScriptAdapter()
    for task_id in (1, 2, 3):
        final, _ = await _run(harness.runner(adapter, _assign(task_id)))
        assert isinstance(final, protocol.TaskDone)
    assert adapter.preflights == 1, "chunks of one job with the same inputs check the scene once"
    await _run(harness.runner(adapter, _assign(4, sha="b" * 64)))
    await _run(harness.runner(adapter, _assign(5, job_id="j2")))
    assert adapter.preflights == 3, "another scene or another job is checked again"


# Writes f_<frame>.png for each frame argument, or exits 1 when told to fail.
RUN_SCRIPT = """
import pathlib, sys
for frame in sys.argv[1:]:
    if frame == "fail":
        print("RUN-FAILED")
        sys.exit(1)
    (pathlib.Path("_spillway_out") / f"f_{int(frame):04d}.png").write_bytes(b"png" + frame.encode())
    print(f"RUN-DONE {frame}")
"""


class RunsAdapter(ScriptAdapter):
    """A renderer taking only evenly stepped runs: one process per run (SteppedRuns)."""

    def __init__(self, runs: list[list[str]]) -> None:
        super().__init__()
        self.runs = runs

    def commands(self, req: RenderRequest) -> list[list[str]]:
        return [[sys.executable, "-c", RUN_SCRIPT, *run] for run in self.runs]

    def collect(self, req: RenderRequest) -> dict[int, list[Path]]:
        return {f: [req.outdir / f"f_{f:04d}.png"] for f in req.frames}


async def test_a_chunk_of_several_runs_renders_them_in_turn(harness: Harness) -> None:
    assign = dataclasses.replace(_assign(), frames=[1, 5, 10])
    final, _ = await _run(harness.runner(RunsAdapter([["1", "5"], ["10"]]), assign))
    assert isinstance(final, protocol.TaskDone), final
    assert sorted((f.frame, f.data) for f in final.frames) == [
        (1, b"png1"),
        (5, b"png5"),
        (10, b"png10"),
    ]
    assert final.log_tail.count("$ ") == 2
    assert final.log_tail.index("RUN-DONE 5") < final.log_tail.index("RUN-DONE 10")


async def test_a_failed_run_fails_the_chunk_and_stops_it(harness: Harness) -> None:
    assign = dataclasses.replace(_assign(), frames=[1, 5, 10])
    adapter = RunsAdapter([["1"], ["fail"], ["10"]])
    final, _ = await _run(harness.runner(adapter, assign))
    assert isinstance(final, protocol.TaskFailed), final
    assert "exited with status 1" in final.error
    assert "RUN-DONE 1" in final.log_tail and "RUN-DONE 10" not in final.log_tail


class MissingTextureAdapter(ScriptAdapter):
    def preflight(self, req: RenderRequest) -> None:
        self.preflights += 1
        raise missing_error(["tex.png"], where=str(req.workdir))


async def test_a_failed_scene_check_is_not_cached(harness: Harness) -> None:
    adapter = MissingTextureAdapter()
    for task_id in (1, 2):
        final, _ = await _run(harness.runner(adapter, _assign(task_id)))
        assert isinstance(final, protocol.TaskFailed), final
        assert "missing file 'tex.png'" in final.error
    assert adapter.preflights == 2


POVRAY_LIKE = """
import sys
print("Parser Options")
print("File 'x.pov' line 1: Possible Parse Error: Cannot find file 'part1.inc', even")
print(" after trying to append file type extension.")
print("File 'x.pov' line 1: Parse Error: Cannot open include file part1.inc.")
print("Fatal error in parser: Cannot parse input.")
print("Render failed")
sys.exit(1)
"""


class PovrayLikeAdapter(ScriptAdapter):
    def command(self, req: RenderRequest) -> list[str]:
        return [sys.executable, "-c", POVRAY_LIKE]


async def test_a_failed_render_reports_the_renderer_s_own_error_and_sends_the_whole_log(
    harness: Harness,
) -> None:
    final, _ = await _run(harness.runner(PovrayLikeAdapter(status=1), _assign()))
    assert isinstance(final, protocol.TaskFailed), final
    assert final.error == (
        "line 1: Parse Error: Cannot open include file part1.inc. (script exited with status 1)"
    ), "the real error, not POV-Ray's warning before it nor its last words"
    logs = "".join(m.text for m in harness.sent if isinstance(m, protocol.TaskLog))
    assert logs.startswith(f"$ {sys.executable} -c"), "the log shows the command that ran"
    assert logs.endswith("Fatal error in parser: Cannot parse input.\nRender failed\n")


async def test_a_short_successful_task_sends_its_whole_log_as_the_final_tail(
    harness: Harness,
) -> None:
    # The agent keeps the tail of a report as the log of an attempt that sent none.
    assign = dataclasses.replace(_assign(), frames=[1, 5])
    final, _ = await _run(harness.runner(RunsAdapter([["1"], ["5"]]), assign))
    assert isinstance(final, protocol.TaskDone), final
    assert not [m for m in harness.sent if isinstance(m, protocol.TaskLog)]
    assert final.log_tail.count("$ ") == 2 and "RUN-DONE 5" in final.log_tail


async def test_output_longer_than_the_tail_is_sent_as_a_log(harness: Harness) -> None:
    runs = [[str(f)] for f in range(1, 40)]  # a command line and a line of output each
    assign = dataclasses.replace(_assign(), frames=list(range(1, 40)))
    final, _ = await _run(harness.runner(RunsAdapter(runs), assign))
    assert isinstance(final, protocol.TaskDone), final
    logs = "".join(m.text for m in harness.sent if isinstance(m, protocol.TaskLog))
    assert logs.count("$ ") == 39 and logs.index("RUN-DONE 1\n") < logs.index("RUN-DONE 39\n")
