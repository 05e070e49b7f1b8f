"""Split jobs: one job rendered at two sites at once, over mutual TLS on loopback.

- studio: one built-in-tracer server with one slot;
- facility: one built-in-tracer server with two slots.

A job submitted at the studio with ``--split`` stays there; the studio sends
parts of its chunks (from the end) to the facility as the facility advertises
free slots, and renders the rest itself. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .federation_harness import (
    BACKENDS,
    Federation,
    site_databases,
    split_with_frozen_facility,
    wait_advertised,
)
from .harness import ROOT, Process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
SITES = ("studio", "facility")
FRAMES = 24


@pytest.fixture(scope="module", params=BACKENDS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("split")
    with site_databases(request, SITES, "split_") as databases:
        fed = Federation(root, SITES, databases=databases)
        started: list[Process] = []
        try:
            for site in SITES:
                fed[site].start()
                started.append(fed[site])
            started.append(fed["studio"].render_server("studio-rs", packages="builtin"))
            started.append(fed["facility"].render_server("fac-rs", packages="builtin", slots=2))
            for site in SITES:
                fed[site].wait_servers(1)
            wait_advertised(fed["studio"], "facility", 1)
            yield fed
        finally:
            for proc in reversed(started):
                proc.stop()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frame_numbers(spec_rows: list[dict[str, Any]]) -> list[int]:
    return [int(f["frame"]) for f in spec_rows]


def test_a_split_job_renders_at_both_sites_and_no_frame_twice(pair: Federation) -> None:
    studio, facility = pair["studio"], pair["facility"]
    result = studio.cli(
        "submit",
        str(SCENE),
        "--package",
        "builtin",
        "--frames",
        f"1-{FRAMES}",
        "--chunk",
        "2",
        "--split",
        "--json",
    )
    job_id = json.loads(result.stdout)["job"]["id"]
    detail = studio.wait_job(job_id, timeout=240)
    job = detail["job"]
    assert job["state"] == "done", job
    assert job["placement"] == "local" and job["split"] is True, job
    assert job["placement_reason"].startswith("split: "), job

    # Every frame is in the split job's one folder at the studio, as recorded.
    frames = detail["frames"]
    assert frame_numbers(frames) == list(range(1, FRAMES + 1))
    job_dir = Path(job["storage_dir"])
    assert sorted(p.name for p in job_dir.glob("*.png")) == sorted(f["name"] for f in frames)
    for frame in frames:
        assert sha256_file(job_dir / frame["name"]) == frame["sha256"], frame

    # Frames came from both sites.
    servers = {f["server"] for f in frames}
    assert "studio-rs" in servers, servers
    assert any(s.startswith("facility") for s in servers), servers

    # The parts: jobs of the studio placed at the facility, each of chunks of this job.
    jobs = studio.get("/api/v1/jobs")["jobs"]
    parts = [j for j in jobs if j.get("part_of") == job_id]
    assert parts and all(p["placement"] == "facility" for p in parts), parts
    assert all(p["state"] == "done" for p in parts), parts

    # No frame rendered twice: what the facility rendered for the studio and what the
    # studio's server rendered are disjoint and together are the job.
    remote: list[int] = []
    for part in parts:
        at_facility = facility.job(part["remote_job_id"])
        assert at_facility["job"]["origin_site"] == "studio"
        for task in at_facility["tasks"]:
            assert task["state"] == "done" and task["attempt"] == 1, task
        remote += frame_numbers(at_facility["frames"])
    local = [
        n
        for task in detail["tasks"]
        if task["server"] == "studio-rs"
        for n in _frames_of(task["frames"])
    ]
    assert len(remote) == len(set(remote)) and len(local) == len(set(local))
    assert not set(remote) & set(local), (remote, local)
    assert sorted(remote + local) == list(range(1, FRAMES + 1)), (remote, local)
    assert remote and local
    for task in detail["tasks"]:
        assert task["attempt"] <= 1, task  # never dispatched here after being sent
    # Each task says where it rendered: this site's server or the peer (and its server).
    where = {task["server"].split("/")[0] for task in detail["tasks"]}
    assert where == {"studio-rs", "facility"}, detail["tasks"]
    # The facility's hashes are the studio's (the same files, fetched and verified).
    for part in parts:
        at_facility = facility.job(part["remote_job_id"])
        theirs = {f["frame"]: f["sha256"] for f in at_facility["frames"]}
        ours = {f["frame"]: f["sha256"] for f in frames if f["frame"] in theirs}
        assert ours == theirs

    # spillway job says where each task rendered.
    shown = studio.cli("job", job_id).stdout
    assert "studio-rs" in shown and "facility" in shown, shown


def _frames_of(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        out += list(range(int(first), int(last or first) + 1))
    return out


@pytest.fixture(params=BACKENDS)
def lost_databases(request: pytest.FixtureRequest) -> Iterator[dict[str, str] | None]:
    """Each site's own database for the lost-peer test, on SQLite, then on PostgreSQL."""
    with site_databases(request, SITES, "lost_") as databases:
        yield databases


def test_a_lost_peer_gives_its_chunks_back_and_the_job_ends_here(
    tmp_path: Path, lost_databases: dict[str, str] | None
) -> None:
    fed = Federation(tmp_path, SITES, lease=4, databases=lost_databases)
    studio, facility = fed["studio"], fed["facility"]
    started: list[Process] = []
    try:
        # The facility's server is frozen (still connected, so still advertised): the part
        # the facility accepts is never rendered there.
        _, fac_rs, job_id = split_with_frozen_facility(fed, started, SCENE, FRAMES)
        started.append(fac_rs)

        def committed_part() -> bool:
            jobs = studio.get("/api/v1/jobs")["jobs"]
            return any(j.get("part_of") == job_id and j["remote_job_id"] for j in jobs)

        wait_for(committed_part, 60, "a part committed at the facility")
        facility.kill()

        detail = studio.wait_job(job_id, timeout=180)
        job = detail["job"]
        assert job["state"] == "done", job
        frames = detail["frames"]
        assert frame_numbers(frames) == list(range(1, FRAMES + 1))
        assert {f["server"] for f in frames} == {"studio-rs"}, frames
        job_dir = Path(job["storage_dir"])
        for frame in frames:
            assert sha256_file(job_dir / frame["name"]) == frame["sha256"], frame
        parts = [j for j in studio.get("/api/v1/jobs")["jobs"] if j.get("part_of") == job_id]
        assert parts and all(p["state"] == "cancelled" for p in parts), parts
        log = studio.log()
        for part in parts:
            assert f"part {part['id']} at facility ended cancelled" in log, log
    finally:
        for proc in started:
            if proc.proc is not None and proc.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.proc.pid, signal.SIGCONT)  # the frozen one stops cleanly
        for proc in reversed(started):
            proc.stop()
