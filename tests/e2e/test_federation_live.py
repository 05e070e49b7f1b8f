"""Live federation: progress and frames reach the origin while the remote still renders.

Two real site agents over mutual TLS (SQLite, then PostgreSQL). The studio
forwards built-in tracer jobs to the facility (``--site facility``), whose one
render server takes them a frame at a time. While the facility renders, the
studio shows the facility's tasks (server ``facility/fac-1``, attempts, times)
and already holds finished frames in its own storage; pause, resume and cancel
made at either site reach the other; the facility serves the job under the
studio's job id and lists it as ``from studio``.
"""

from __future__ import annotations

import hashlib
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .federation_harness import BACKENDS, PAIR, running_pair, site_databases
from .harness import ROOT, Agent, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
FRAMES = 40


@dataclass
class Pair:
    studio: Agent
    facility: Agent


@pytest.fixture(scope="module", params=BACKENDS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("live")
    with (
        site_databases(request, PAIR) as databases,
        running_pair(root, {"fac-1": "builtin"}, databases=databases) as fed,
    ):
        yield Pair(studio=fed["studio"], facility=fed["facility"])


def submit(agent: Agent, frames: int = FRAMES) -> str:
    return agent.submit(
        str(SCENE), "--package", "builtin", "--frames", f"1-{frames}", "--site", "facility"
    )


def state(agent: Agent, job_id: str) -> str:
    return str(agent.job(job_id)["job"]["state"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def streamed_frames(studio: Agent, job_id: str) -> list[Path]:
    job = studio.job(job_id)["job"]
    return sorted(Path(job["storage_dir"]).glob("*.png")) if job["storage_dir"] else []


def test_progress_and_frames_reach_the_origin_while_the_remote_renders(pair: Pair) -> None:
    studio, facility = pair.studio, pair.facility
    started = time.monotonic()
    job_id = submit(studio)
    wait_for(lambda: streamed_frames(studio, job_id), 120, "a frame in the studio's storage")
    first_frame_s = time.monotonic() - started
    # The facility knows the job by the studio's id too, and has not finished it.
    remote = facility.job(job_id)["job"]
    assert remote["origin_job_id"] == job_id and remote["state"] in ("queued", "running"), remote
    assert state(studio, job_id) == "running"

    studio.cli("pause", job_id)  # the origin's pause reaches the remote
    wait_for(lambda: state(facility, job_id) == "paused", 30, "the facility to pause the job")
    wait_for(lambda: _settled(studio, job_id), 30, "the studio to fetch what the facility did")
    detail = studio.job(job_id)
    done = [t for t in detail["tasks"] if t["state"] == "done"]
    assert done and len(done) < FRAMES, detail["tasks"]
    for task in done:
        assert task["server"] == "facility/fac-1" and task["attempt"] == 1, task
        assert task["started_at"] is not None and task["finished_at"] >= task["started_at"]
    # Frames finished at the facility are in the studio's storage, identical at both sites;
    # the facility serves them under the studio's job id.
    studio_frames = {f["frame"]: f for f in detail["frames"] if f["sha256"]}
    assert len(studio_frames) >= len(done)
    for number, frame in list(studio_frames.items())[:3]:
        here = (Path(detail["job"]["storage_dir"]) / frame["name"]).read_bytes()
        with urllib.request.urlopen(
            f"{facility.url}/api/v1/jobs/{job_id}/frames/{number}", timeout=10
        ) as resp:
            there = resp.read()
        assert sha256(here) == sha256(there) == frame["sha256"]
    shown = studio.cli("job", job_id).stdout
    assert "facility/fac-1" in shown, shown
    listed = facility.cli("jobs").stdout
    line = next(x for x in listed.splitlines() if remote["id"] in x)
    assert "from studio" in line, listed
    assert f"from studio (its job {job_id})" in facility.cli("job", job_id).stdout

    facility.cli("resume", remote["id"])  # the facility's own users: the studio follows
    wait_for(lambda: state(studio, job_id) != "paused", 30, "the studio to resume the job")
    facility.cli("pause", remote["id"])
    wait_for(lambda: state(studio, job_id) == "paused", 30, "the studio to show the pause")
    studio.cli("resume", job_id)
    detail = studio.wait_job(job_id, timeout=240)
    assert detail["job"]["state"] == "done", detail["job"]
    print(
        f"first frame at the origin {first_frame_s:.1f}s after submit; {len(done)} of {FRAMES} "
        f"frames there when paused; done {time.monotonic() - started:.1f}s after submit"
    )
    assert {t["state"] for t in detail["tasks"]} == {"done"}
    assert {t["server"] for t in detail["tasks"]} == {"facility/fac-1"}
    job_dir = Path(detail["job"]["storage_dir"])
    remote_dir = Path(facility.job(job_id)["job"]["storage_dir"])
    names = sorted(p.name for p in job_dir.glob("*.png"))
    assert len(names) == FRAMES and names == sorted(p.name for p in remote_dir.glob("*.png"))
    for name in names:
        assert sha256((job_dir / name).read_bytes()) == sha256((remote_dir / name).read_bytes())


def _settled(studio: Agent, job_id: str) -> bool:
    """Every task the facility reported done has its frames here (none still fetching)."""
    tasks = studio.job(job_id)["tasks"]
    return any(t["state"] == "done" for t in tasks) and not any(
        t["state"] in ("running", "dispatched") for t in tasks
    )


def test_a_cancel_at_the_remote_reaches_the_origin(pair: Pair) -> None:
    studio, facility = pair.studio, pair.facility
    job_id = submit(studio)
    wait_for(lambda: _remote_running(facility, job_id), 120, "the facility to render the job")
    remote_id = facility.job(job_id)["job"]["id"]
    facility.cli("cancel", remote_id)
    detail = studio.wait_job(job_id, timeout=60)
    assert detail["job"]["state"] == "cancelled", detail["job"]
    assert "facility" in detail["job"]["error"]


def test_a_cancel_at_the_origin_reaches_the_remote(pair: Pair) -> None:
    studio, facility = pair.studio, pair.facility
    job_id = submit(studio)
    wait_for(lambda: _remote_running(facility, job_id), 120, "the facility to render the job")
    studio.cli("cancel", job_id)
    remote = facility.wait_job(job_id, timeout=60)
    assert remote["job"]["state"] == "cancelled", remote["job"]
    assert state(studio, job_id) == "cancelled"


def _remote_running(facility: Agent, job_id: str) -> bool:
    try:
        body: Any = facility.job(job_id)
    except OSError:  # 404 until the commit created it
        return False
    return bool(body["job"]["state"] == "running")
