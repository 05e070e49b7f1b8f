"""The agent with connection workers ([agent] workers = 2): real agent, render servers, renderer.

Representative single-site and identity cases run unchanged against such an agent;
the fault cases kill a worker and the agent itself and check that no frame is lost
and no worker process is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from . import test_server_identity as identity
from . import test_single_site as single
from .harness import Agent, Process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
WORKERS_TOML = "[agent]\nworkers = 2\n"


def worker_agent(tmp_path: Path, database: str, processes: list[Process]) -> Agent:
    agent = Agent(tmp_path / "studio", name="studio", database=database, extra_toml=WORKERS_TOML)
    agent.start()
    processes.append(agent)
    wait_for(lambda: len(worker_pids(agent)) == 2, 30, "two connection workers")
    return agent


@pytest.fixture
def agent(tmp_path: Path, database: str, processes: list[Process]) -> Agent:
    return worker_agent(tmp_path, database, processes)


@pytest.fixture
def sqlite_agent(tmp_path: Path, processes: list[Process]) -> Agent:
    return worker_agent(tmp_path, f"sqlite:///{tmp_path / 'site.db'}", processes)


def worker_pids(agent: Agent) -> list[int]:
    """The agent's child processes that are alive (its connection workers)."""
    assert agent.proc is not None
    pids: list[int] = []
    for task in Path(f"/proc/{agent.proc.pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return [p for p in pids if alive(p)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def server_sockets(port: int) -> set[str]:
    """Inodes of the established TCP connections accepted on ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


def sockets_held(pid: int) -> set[str]:
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[8:-1])
    return held


def workers_holding_servers(agent: Agent) -> dict[int, int]:
    """For each worker, how many of the connections accepted on the agent's port it holds."""
    accepted = server_sockets(agent.port)
    return {pid: len(sockets_held(pid) & accepted) for pid in worker_pids(agent)}


def test_job_splits_across_two_servers_on_workers(agent: Agent, processes: list[Process]) -> None:
    single.test_job_splits_across_two_servers_concurrently(agent, processes)
    # The render servers' WebSockets are held by the workers.
    assert sum(workers_holding_servers(agent).values()) >= 2, workers_holding_servers(agent)
    assert "connection workers started" in agent.log()


def test_agent_restart_mid_job_on_workers(sqlite_agent: Agent, processes: list[Process]) -> None:
    old = set(worker_pids(sqlite_agent))
    single.test_agent_restart_mid_job_loses_no_frames(sqlite_agent, processes)
    # The killed agent's workers exited by themselves (their link closed).
    assert not [p for p in old if alive(p)]


def test_identity_refusals_on_workers(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    identity.test_a_name_held_by_a_live_server_is_refused_on_the_newcomers_console(
        sqlite_agent, processes, tmp_path
    )


def test_enrollment_token_alone_cannot_take_over_on_workers(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    identity.test_the_enrollment_token_alone_cannot_take_over_a_server(
        sqlite_agent, processes, tmp_path
    )


def test_killed_worker_loses_no_frames_and_is_restarted(
    sqlite_agent: Agent, processes: list[Process]
) -> None:
    agent = sqlite_agent
    single.start_servers(agent, processes, "rs-a", "rs-b")
    job_id = single.submit(agent, "--frames", "1-16", "--chunk", "2", "--resolution", "640x480")

    def running() -> bool:
        return any(t["state"] == "running" for t in agent.job(job_id)["tasks"])

    wait_for(running, 60, "a task to run")
    holding = workers_holding_servers(agent)
    victim = max(holding, key=lambda pid: holding[pid])
    assert holding[victim] >= 1, holding
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        pids = worker_pids(agent)
        return victim not in pids and len(pids) == 2

    wait_for(replaced, 30, "the worker to be started again")
    detail = agent.wait_job(job_id, timeout=180)
    single.assert_all_frames(agent, detail, range(1, 17), (640, 480))
    assert "exited with status -9" in agent.log(), agent.log()[-3000:]

    # Stopping the agent stops its workers: none is left behind.
    pids = worker_pids(agent)
    agent.stop()
    assert agent.proc is not None and agent.proc.returncode == 0, agent.log()[-3000:]
    deadline = time.monotonic() + 10
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]
