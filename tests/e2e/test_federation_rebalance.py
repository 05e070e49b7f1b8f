"""A split job takes back the chunks its peer holds but has not started (real processes,
mutual TLS on loopback, SQLite and PostgreSQL).

- studio: one built-in-tracer server with one slot;
- facility: one built-in-tracer server with two slots, frozen (SIGSTOP) just before the
  job is submitted: the facility still advertises its two free slots, accepts a part of
  two chunks and hands them to the frozen server, which never renders them; after the
  heartbeat timeout the facility counts the server lost and the chunks wait there again.

The studio renders its own chunks, runs out of work with its slot idle, and asks the
facility for the part's unstarted chunks back; the facility withdraws them (the part
ends cancelled there, having rendered nothing) and the studio renders them itself.
Every frame is rendered exactly once (task records and both render servers' logs) and
all of them are in the split job's one folder at the studio.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .federation_harness import BACKENDS, Federation, site_databases, split_with_frozen_facility
from .harness import ROOT, Agent, Process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
SITES = ("studio", "facility")
FRAMES = 24
RENDERED = re.compile(r"task \d+ attempt \d+: \w+ frames (\d+)-(\d+) of job (\w+)")


@pytest.fixture(params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    with site_databases(request, SITES, "rebalance_") as databases:
        yield Federation(tmp_path, SITES, databases=databases)


def rendered_by(server: Process, job_id: str) -> list[int]:
    """Frames a render server's log says it started rendering for ``job_id``."""
    frames: list[int] = []
    for first, last, job in RENDERED.findall(server.log()):
        if job == job_id:
            frames += range(int(first), int(last) + 1)
    return frames


def usage(agent: Agent, *args: str) -> dict[str, Any]:
    return json.loads(agent.cli("usage", "--json", *args).stdout)  # type: ignore[no-any-return]


def test_the_studio_takes_back_and_renders_what_the_facility_never_started(
    pair: Federation,
) -> None:
    studio, facility = pair["studio"], pair["facility"]
    started: list[Process] = []
    frozen: Process | None = None
    try:
        studio_rs, frozen, job_id = split_with_frozen_facility(pair, started, SCENE, FRAMES)
        detail = studio.wait_job(job_id, timeout=240)
        job = detail["job"]
        assert job["state"] == "done", (job, studio.log()[-4000:])

        # Every frame is in the split job's one folder, rendered here, as recorded.
        frames = detail["frames"]
        assert [f["frame"] for f in frames] == list(range(1, FRAMES + 1))
        assert {f["server"] for f in frames} == {"studio-rs"}, frames
        job_dir = Path(job["storage_dir"])
        for frame in frames:
            digest = hashlib.sha256((job_dir / frame["name"]).read_bytes()).hexdigest()
            assert digest == frame["sha256"], frame
        # Each chunk rendered once here: one attempt each, none failed.
        for task in detail["tasks"]:
            assert (task["state"], task["attempt"], task["server"]) == ("done", 1, "studio-rs")

        # The part went to the facility and every chunk of it came back unrendered.
        parts = [j for j in studio.get("/api/v1/jobs")["jobs"] if j.get("part_of") == job_id]
        assert parts and all(p["placement"] == "facility" for p in parts), parts
        studio_log = studio.log()
        reclaimed = 0
        for part in parts:
            there = facility.job(part["remote_job_id"])
            assert there["job"]["state"] == "cancelled", there["job"]
            assert "every chunk was withdrawn: reclaimed by studio" in there["job"]["error"]
            assert there["frames"] == [] and there["tasks"] == []
            assert rendered_by(frozen, part["remote_job_id"]) == []
            found = re.findall(
                rf"reclaim studio:{part['id']}:1:\w+: facility gave back (\d+)", studio_log
            )
            reclaimed += sum(int(n) for n in found)
            wait_for(
                lambda p=part: studio.job(p["id"])["job"]["state"] == "cancelled",
                30,
                f"part {part['id']} to end at the studio",
            )
        assert reclaimed >= 1, studio_log[-4000:]

        # The renderer's own log: each frame of the job started exactly once, here.
        here = rendered_by(studio_rs, job_id)
        assert sorted(here) == list(range(1, FRAMES + 1)), here

        # The move shows in `spillway job` (the tasks rendered here) and in the parts.
        shown = studio.cli("job", job_id).stdout
        assert re.search(r"reclaimed\s+frames \S+ from facility \(part \w+\)", shown), shown
        part_shown = studio.cli("job", parts[0]["id"]).stdout
        assert re.search(r"reclaimed\s+frames \S+ from facility", part_shown), part_shown
        assert [r["peer"] for r in studio.job(job_id)["job"]["reclaimed"]] == ["facility"] * len(
            studio.job(job_id)["job"]["reclaimed"]
        )

        # Accounting agrees at both sites: the facility rendered nothing for the studio. (A
        # site records only what happened: a part whose assets were there already and that
        # rendered nothing has no row at the facility, and zeros at the studio.)
        mine = {r["job_id"]: r for r in usage(studio, "--by-job", "--peer", "facility")["rows"]}
        theirs = {r["job_id"]: r for r in usage(facility, "--by-job")["rows"]}
        zero = {"frames": 0, "failed_attempts": 0, "core_seconds": 0, "bytes_in": 0, "bytes_out": 0}
        assert {r["origin_job_id"] for r in theirs.values()} <= {p["id"] for p in parts}
        for part in parts:
            ours, its = mine[part["id"]], theirs.get(part["remote_job_id"], zero)
            assert ours["frames"] == its["frames"] == 0
            assert ours["failed_attempts"] == its["failed_attempts"] == 0
            assert ours["core_seconds"] == its["core_seconds"] == 0
            assert ours["bytes_out"] == its["bytes_in"]
        own = {r["peer"]: r for r in usage(studio)["rows"]}[""]
        assert own["frames"] == FRAMES
    finally:
        if frozen is not None and frozen.proc is not None and frozen.proc.poll() is None:
            # Killed, never resumed: it must not render what it was handed while frozen.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(frozen.proc.pid, signal.SIGKILL)
            frozen.proc.wait(10)
        for proc in reversed(started):
            proc.stop()
