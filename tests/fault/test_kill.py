"""Render servers killed with SIGKILL at awkward moments: every job still completes with every frame.

And no frame is stored twice with different contents: the frames table and the
files in network storage agree, one file per frame, no temp files left behind.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e.harness import ROOT, Agent, Process, wait_for
from PIL import Image

from .conftest import assert_only_previews_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
STALLER = Path(__file__).with_name("stalling_server.py")


@pytest.fixture
def agent(sqlite_agent: Agent) -> Agent:
    return sqlite_agent


def submit(agent: Agent, frames: str, *args: str) -> str:
    result = agent.cli(
        "submit", str(SCENE), "--package", "builtin", "--json", "--frames", frames, *args
    )
    body = json.loads(result.stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


def start(agent: Agent, processes: list[Process], name: str, **kwargs: Any) -> Process:
    proc = agent.render_server(name, packages="builtin", **kwargs)
    processes.append(proc)
    return proc


def staller(agent: Agent, processes: list[Process], name: str, mode: str, ready: Path) -> Process:
    proc = Process(
        [sys.executable, str(STALLER), agent.url, name, mode, str(ready)],
        agent.root / f"{name}.log",
        env={"PYTHONPATH": str(ROOT)},
    )
    proc.start()
    processes.append(proc)
    return proc


def assert_frames_consistent(
    agent: Agent, db: Path, job_id: str, frames: range, size: tuple[int, int]
) -> None:
    detail = agent.wait_job(job_id, timeout=180)
    job = detail["job"]
    assert job["state"] == "done", detail
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT frame, name, sha256, size FROM frames WHERE job_id = ? ORDER BY frame",
            (job_id,),
        ).fetchall()
    assert [r[0] for r in rows] == list(frames)
    job_dir = Path(job["storage_dir"])
    on_disk = sorted(p.name for p in job_dir.iterdir() if p.name != ".previews")
    assert on_disk == sorted(r[1] for r in rows), "extra, missing or temp files in the job folder"
    assert_only_previews_of(job_dir, [r[1] for r in rows])
    for frame, name, digest, length in rows:
        data = (job_dir / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"frame {frame}: file and table disagree"
        assert len(data) == length
        with Image.open(job_dir / name) as img:
            assert img.size == size
            assert img.getpixel((0, 0)) != (255, 0, 0), (
                f"frame {frame} kept the killed server's pixels"
            )


@pytest.mark.parametrize("mode", ["stall", "wrong"])
def test_server_killed_during_frame_upload(
    agent: Agent, processes: list[Process], tmp_path: Path, mode: str
) -> None:
    """``stall``: killed halfway through a PUT. ``wrong``: uploaded other pixels, killed before TaskDone."""
    ready = tmp_path / "ready"
    victim = staller(agent, processes, "victim", mode, ready)
    agent.wait_servers(1)
    job_id = submit(agent, "1-6")
    wait_for(ready.exists, 60, f"the victim to reach its {mode} state\n{victim.log()}")
    start(agent, processes, "survivor", slots=2)
    victim.kill()
    assert_frames_consistent(agent, tmp_path / "site.db", job_id, range(1, 7), (320, 240))
    assert list((agent.storage).rglob("*.part")) == []


def test_server_killed_and_restarted_under_the_same_name(
    agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    phoenix = start(agent, processes, "phoenix", slots=2)
    start(agent, processes, "steady")
    agent.wait_servers(2)
    job_id = submit(agent, "1-12", "--resolution", "480x360")

    def phoenix_running() -> bool:
        return any(
            t["server"] == "phoenix" and t["state"] == "running" for t in agent.job(job_id)["tasks"]
        )

    wait_for(phoenix_running, 60, "a task to run on phoenix")
    phoenix.kill()
    reborn = start(agent, processes, "phoenix", slots=2)
    assert_frames_consistent(agent, tmp_path / "site.db", job_id, range(1, 13), (480, 360))
    servers = agent.get("/api/v1/servers")["servers"]
    assert sorted(s["name"] for s in servers) == ["phoenix", "steady"], servers
    assert reborn.proc is not None and reborn.proc.poll() is None
