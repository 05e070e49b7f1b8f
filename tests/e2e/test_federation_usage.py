"""Accounting at both sites, and a bandwidth cap held: two real agents over mutual TLS.

- studio: a built-in-tracer server only, so POV-Ray jobs go to the facility; its
  ``[[peers]]`` entry for the facility caps transfers at ``max_mbps = 16`` (2 MB/s):
  the assets going out and the frames coming back must all pass its one bucket, and
  the upload may not beat ``cap * elapsed + burst``.
- facility: one POV-Ray server.

The studio renders one job itself, forwards one with a 6 MB extra asset (the cap)
and one whose scene does not parse (two failed attempts). Then the usage each
site reports of the other must add up: core-seconds, frames and failed attempts
the facility spent for the studio, bytes out at one end = bytes in at the other.
Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from federation.bandwidth import TokenBucket

from .federation_harness import (
    BACKENDS,
    Federation,
    PeerLink,
    pair_servers,
    running,
    site_databases,
)
from .harness import ROOT, Agent

pytestmark = [pytest.mark.e2e, pytest.mark.povray, pytest.mark.timeout(300)]
SITES = ("studio", "facility")
CAP_MBPS = 16
CAP_BYTES_S = CAP_MBPS * 1_000_000 / 8
BURST_BYTES = TokenBucket(CAP_BYTES_S).burst
"""What an idle bucket saves (a quarter second of the cap): the most a window may exceed it by."""
ASSET_BYTES = 6_000_000
LINKS = {
    "studio": [PeerLink("facility", keys=f"max_mbps = {CAP_MBPS}")],
    "facility": [PeerLink("studio")],
}


@pytest.fixture(scope="module", params=BACKENDS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("usage")
    with site_databases(request, SITES, "usage_") as databases:
        fed = Federation(root, SITES, links=LINKS, databases=databases)
        with running(fed, pair_servers({"fac-1": "povray"}), [("studio", "facility")]):
            yield fed


def submit(agent: Agent, scene: Path, *args: str) -> str:
    return agent.submit(str(scene), "--resolution", "64x48", *args)


def usage(agent: Agent, *args: str) -> dict[str, Any]:
    return json.loads(agent.cli("usage", "--json", *args).stdout)  # type: ignore[no-any-return]


def capped_bytes(agent: Agent, peer: str) -> float:
    """The agent's /metrics count of bytes ``peer``'s bandwidth cap let through."""
    with urllib.request.urlopen(agent.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            wanted = sample.name == "spillway_federation_capped_bytes_total"
            if wanted and sample.labels == {"peer": peer}:
                return float(sample.value)
    raise AssertionError(f"no capped bytes for {peer} in /metrics")


def by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_usage_adds_up_at_both_sites_and_the_bandwidth_cap_holds(
    pair: Federation, tmp_path: Path
) -> None:
    studio, facility = pair["studio"], pair["facility"]
    scenes = tmp_path / "scenes"
    shutil.copytree(ROOT / "examples" / "povray", scenes)
    (scenes / "plates.bin").write_bytes(os.urandom(ASSET_BYTES))
    (scenes / "broken.pov").write_text("#version 3.7;\nsphere { <0, 0, 0>, 1 pigment {\n")

    local = submit(
        studio,
        ROOT / "examples" / "textured" / "scene.json",
        "--package",
        "builtin",
        "--frames",
        "1-2",
    )
    capped = submit(
        studio,
        scenes / "scene.pov",
        "--package",
        "povray",
        "--frames",
        "1-2",
        "--asset",
        str(scenes / "plates.bin"),
    )
    broken = submit(
        studio, scenes / "broken.pov", "--package", "povray", "--frames", "1", "--max-attempts", "2"
    )
    jobs = {j: studio.wait_job(j, timeout=180)["job"] for j in (local, capped, broken)}
    assert jobs[local]["state"] == "done" and jobs[local]["placement"] == "local"
    assert jobs[capped]["state"] == "done" and jobs[capped]["placement"] == "facility"
    assert jobs[broken]["state"] == "failed" and jobs[broken]["placement"] == "facility"

    # The cap: between the job's creation at the studio and its creation at the facility
    # (the upload and more), at most 2 MB/s and what the idle bucket had saved went out.
    remote = facility.job(jobs[capped]["remote_job_id"])["job"]
    transfer = jobs[capped]["transfer"]
    assert transfer["bytes_sent"] >= ASSET_BYTES
    elapsed = remote["created_at"] - jobs[capped]["created_at"]
    assert transfer["bytes_sent"] <= CAP_BYTES_S * elapsed + BURST_BYTES, (elapsed, transfer)

    here = usage(studio)
    there = usage(facility)
    assert here["group"] == "peer" and there["site"] == "facility"
    mine, for_studio = by(here["rows"], "peer"), by(there["rows"], "peer")
    assert set(mine) == {"", "facility"} and set(for_studio) == {"studio"}
    # The studio's own job, rendered here.
    assert mine[""]["frames"] == 2 and mine[""]["jobs"] == 1 and mine[""]["core_seconds"] > 0
    # What the facility did for the studio, as each of them counts it.
    ours, theirs = mine["facility"], for_studio["studio"]
    assert ours["jobs"] == theirs["jobs"] == 2
    assert ours["frames"] == theirs["frames"] == 2
    assert ours["failed_attempts"] == theirs["failed_attempts"] == 2
    assert theirs["core_seconds"] > 0
    assert abs(ours["core_seconds"] - theirs["core_seconds"]) < 0.01
    assert ours["bytes_out"] == theirs["bytes_in"] >= ASSET_BYTES
    assert ours["bytes_in"] == theirs["bytes_out"] > 0  # the frames fetched back
    # Every byte both ways with the capped peer went through its bucket (so the bucket's
    # window bound, tests/unit/test_fed_bandwidth.py, covers the frames coming back too).
    assert capped_bytes(studio, "facility") == ours["bytes_out"] + ours["bytes_in"]

    # Per job: the studio's job and the facility's job for it carry the same figures.
    here_jobs = by(usage(studio, "--by-job", "--peer", "facility")["rows"], "job_id")
    there_jobs = by(usage(facility, "--by-job")["rows"], "job_id")
    for job_id in (capped, broken):
        mine_row, their_row = here_jobs[job_id], there_jobs[jobs[job_id]["remote_job_id"]]
        assert their_row["origin_job_id"] == job_id
        for key in ("frames", "failed_attempts", "bytes_in", "bytes_out"):
            swapped = {"bytes_in": "bytes_out", "bytes_out": "bytes_in"}.get(key, key)
            assert mine_row[key] == their_row[swapped], (key, mine_row, their_row)
        assert abs(mine_row["core_seconds"] - their_row["core_seconds"]) < 0.01
    assert here_jobs[broken]["failed_attempts"] == 2 and here_jobs[broken]["frames"] == 0

    # Time windows, the table and bad input.
    assert usage(studio, "--since", "2999-01-01")["rows"] == []
    assert usage(studio, "--until", "2000-01-01T00:00:00Z")["rows"] == []
    table = studio.cli("usage").stdout
    assert "facility" in table and "(here)" in table and "TOTAL" in table, table
    bad = studio.cli("usage", "--since", "last tuesday", check=False)
    assert bad.returncode == 2, bad
    assert "since='last tuesday' is not a time" in bad.stderr, bad.stderr
