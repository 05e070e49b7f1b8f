"""Acceptance of the single-site farm: real agent, real render servers, real renderer."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .harness import ROOT, Agent, Process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SCENE = ROOT / "examples" / "textured" / "scene.json"


def submit(agent: Agent, *args: str) -> str:
    result = agent.cli("submit", str(SCENE), "--package", "builtin", "--json", *args)
    body = json.loads(result.stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


def start_servers(
    agent: Agent, processes: list[Process], *names: str, **kwargs: Any
) -> dict[str, Process]:
    servers = {}
    for name in names:
        servers[name] = agent.render_server(name, **kwargs)
        processes.append(servers[name])
    agent.wait_servers(len(names))
    return servers


def assert_all_frames(
    agent: Agent, detail: dict[str, Any], frames: range, size: tuple[int, int]
) -> None:
    job = detail["job"]
    assert job["state"] == "done", detail
    stored = {f["frame"]: f for f in agent.get(f"/api/v1/jobs/{job['id']}/frames")["frames"]}
    assert sorted(stored) == list(frames)
    job_dir = Path(job["storage_dir"])
    files = sorted(job_dir.glob("*.png"))
    assert len(files) == len(frames), files
    for f in stored.values():
        with Image.open(job_dir / f["name"]) as img:
            img.verify()
        with Image.open(job_dir / f["name"]) as img:
            assert img.size == size


def test_job_splits_across_two_servers_concurrently(agent: Agent, processes: list[Process]) -> None:
    start_servers(agent, processes, "rs-a", "rs-b")
    job_id = submit(agent, "--frames", "1-24")
    detail = agent.wait_job(job_id)
    assert_all_frames(agent, detail, range(1, 25), (320, 240))

    by_server: dict[str, set[int]] = {}
    for frame in detail["frames"]:
        by_server.setdefault(frame["server"], set()).add(frame["frame"])
    assert set(by_server) == {"rs-a", "rs-b"}
    assert by_server["rs-a"] and by_server["rs-b"]
    assert not by_server["rs-a"] & by_server["rs-b"]

    intervals = {
        name: [(t["started_at"], t["finished_at"]) for t in detail["tasks"] if t["server"] == name]
        for name in ("rs-a", "rs-b")
    }
    overlap = any(
        a0 < b1 and b0 < a1 for a0, a1 in intervals["rs-a"] for b0, b1 in intervals["rs-b"]
    )
    assert overlap, f"the two servers never rendered at the same time: {intervals}"

    # Frames are retrievable through the API too, byte-identical to storage.
    first = detail["frames"][0]
    out = agent.root / "download"
    agent.cli("download", job_id, str(out))
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f["name"] for f in detail["frames"])
    assert (out / first["name"]).read_bytes() == (
        Path(detail["job"]["storage_dir"]) / first["name"]
    ).read_bytes()


def test_unmatched_job_waits_with_reason_until_capable_server_joins(
    agent: Agent, processes: list[Process]
) -> None:
    start_servers(agent, processes, "plain")
    job_id = submit(agent, "--frames", "1-4", "--tags", "lighting", "--queue-anyway")
    time.sleep(1.5)
    detail = agent.job(job_id)
    assert detail["job"]["state"] == "queued"
    assert "lighting" in (detail["job"]["why_waiting"] or "")
    shown = agent.cli("job", job_id).stdout
    assert "lighting" in shown, shown

    processes.append(agent.render_server("lit", tags="lighting"))
    detail = agent.wait_job(job_id)
    assert_all_frames(agent, detail, range(1, 5), (320, 240))
    assert {f["server"] for f in detail["frames"]} == {"lit"}


def test_killed_render_server_loses_no_frames(agent: Agent, processes: list[Process]) -> None:
    servers = start_servers(agent, processes, "victim", "survivor")
    job_id = submit(agent, "--frames", "1-16", "--chunk", "2", "--resolution", "640x480")

    def victim_running() -> bool:
        return any(
            t["server"] == "victim" and t["state"] == "running" for t in agent.job(job_id)["tasks"]
        )

    wait_for(victim_running, 60, "a task to run on the victim")
    servers["victim"].kill()

    detail = agent.wait_job(job_id, timeout=180)
    assert_all_frames(agent, detail, range(1, 17), (640, 480))


def test_agent_restart_mid_job_loses_no_frames(agent: Agent, processes: list[Process]) -> None:
    start_servers(agent, processes, "rs-a", "rs-b")
    job_id = submit(agent, "--frames", "1-20", "--chunk", "2", "--resolution", "480x360")

    def some_done() -> bool:
        return agent.job(job_id)["job"]["progress"]["frames_done"] >= 4

    wait_for(some_done, 60, "a few frames to finish")
    job_dir = Path(agent.job(job_id)["job"]["storage_dir"])
    agent.kill()
    # A frame write the kill cut short leaves its temp file; the restarted agent deletes it.
    cut_short = job_dir / ".scene_0099.png.4242-0a0b0c0d-7.part"
    cut_short.write_bytes(b"half a frame")
    time.sleep(1.0)
    agent.start()
    assert not cut_short.exists()

    detail = agent.wait_job(job_id, timeout=180)
    assert_all_frames(agent, detail, range(1, 21), (480, 360))


def test_disabled_server_gets_no_work_until_enabled(agent: Agent, processes: list[Process]) -> None:
    start_servers(agent, processes, "keep", "rest")
    assert "now disabled" in agent.cli("disable", "rest").stdout
    job_id = submit(agent, "--frames", "1-6")
    detail = agent.wait_job(job_id)
    assert {f["server"] for f in detail["frames"]} == {"keep"}
    statuses = {s["name"]: s["status"] for s in agent.get("/api/v1/servers")["servers"]}
    assert statuses["rest"] == "disabled"

    agent.cli("enable", "rest")
    agent.cli("disable", "keep")
    job_id = submit(agent, "--frames", "1-3")
    detail = agent.wait_job(job_id)
    assert {f["server"] for f in detail["frames"]} == {"rest"}
