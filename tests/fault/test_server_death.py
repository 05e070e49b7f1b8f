"""A render server stopped or killed mid-task: heartbeat timing and renderer children."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from e2e.harness import ROOT, Agent, Process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
HEARTBEAT_TIMEOUT = 3.0  # the harness agent's [scheduling] heartbeat_timeout


def _slow_job(agent: Agent) -> str:
    """One big chunk of large builtin frames: minutes of rendering in one child process."""
    result = agent.cli(
        "submit", str(SCENE), "--package", "builtin", "--json", "--frames", "1-20",
        "--chunk", "20", "--resolution", "1280x960",
    )  # fmt: skip
    body = json.loads(result.stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


def _running_on(agent: Agent, job_id: str, server: str) -> bool:
    return any(
        t["server"] == server and t["state"] == "running" for t in agent.job(job_id)["tasks"]
    )


def _renderers_in(folder: Path) -> list[int]:
    """Pids of live processes whose command line names a path under ``folder``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(folder).encode() in cmdline and b"render-server" not in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _busy_server(agent: Agent, processes: list[Process], name: str) -> tuple[Process, str]:
    """A render server ``name`` running a task of a slow job; returns it and the job's id."""
    server = agent.render_server(name, packages="builtin")
    processes.append(server)
    agent.wait_servers(1)
    job_id = _slow_job(agent)
    wait_for(lambda: _running_on(agent, job_id, name), 60, "the task to start")
    return server, job_id


def test_a_killed_render_server_takes_its_renderer_with_it(
    sqlite_agent: Agent, processes: list[Process]
) -> None:
    agent = sqlite_agent
    server, job_id = _busy_server(agent, processes, "doomed")
    work = agent.root / "work" / "doomed"
    wait_for(lambda: bool(_renderers_in(work)), 30, "the renderer child to start")
    server.kill()
    wait_for(lambda: not _renderers_in(work), 5, "the orphaned renderer to end")


def test_a_stopped_render_server_is_requeued_after_one_heartbeat_timeout(
    sqlite_agent: Agent, processes: list[Process]
) -> None:
    agent = sqlite_agent
    server, job_id = _busy_server(agent, processes, "frozen")
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:

        def requeued() -> bool:
            return all(t["server"] != "frozen" for t in agent.job(job_id)["tasks"])

        wait_for(requeued, 30, "the stopped server's task to be requeued", interval=0.1)
        took = time.monotonic() - stopped
    finally:
        server.kill()
    # Last heard at most one heartbeat interval before the stop; one check interval of slack.
    assert took < HEARTBEAT_TIMEOUT + 2.0, f"requeued {took:.1f}s after SIGSTOP"
    servers = {s["name"]: s for s in agent.get("/api/v1/servers")["servers"]}
    assert servers["frozen"]["status"] == "offline"


def test_sigterm_stops_a_render_server_and_hands_its_task_back(
    sqlite_agent: Agent, processes: list[Process]
) -> None:
    agent = sqlite_agent
    server, job_id = _busy_server(agent, processes, "leaving")
    work = agent.root / "work" / "leaving"
    wait_for(lambda: bool(_renderers_in(work)), 30, "the renderer child to start")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0, server.log()
    assert not _renderers_in(work)
    wait_for(
        lambda: all(t["server"] != "leaving" for t in agent.job(job_id)["tasks"]),
        HEARTBEAT_TIMEOUT + 5,
        "the task to be handed back",
    )
