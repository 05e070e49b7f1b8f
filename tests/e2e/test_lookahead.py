"""Look-ahead with real processes: a render server holds one task beyond its slot and starts
it the moment the slot frees; a queued task is dropped on cancel and requeued when its
server dies."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

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
