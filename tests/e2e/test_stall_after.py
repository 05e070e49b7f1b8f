"""``[scheduling] stall_after``: a job no online server can run fails with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .harness import ROOT, Agent, Process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
SCENE = ROOT / "examples" / "textured" / "scene.json"


def test_a_job_no_online_server_can_run_fails_after_stall_after(
    tmp_path: Path, processes: list[Process]
) -> None:
    agent = Agent(
        tmp_path / "site",
        name="studio",
        database=f"sqlite:///{tmp_path / 'site.db'}",
        extra_toml="stall_after = 2\n",  # lands in the harness's [scheduling] table
    )
    agent.start()
    processes.append(agent)
    server = agent.render_server("rs-1", packages="builtin")
    processes.append(server)
    agent.wait_servers(1)
    # The job needs 4,096 cores, which rs-1 has not: it can only wait for another server.
    result = agent.cli(
        "submit",
        str(SCENE),
        "--package",
        "builtin",
        "--frames",
        "1-2",
        "--min-cores",
        "4096",
        "--queue-anyway",
        "--json",
    )
    body = json.loads(result.stdout)
    job_id = str(body["job"]["id"] if "job" in body else body["id"])

    detail = agent.wait_job(job_id, timeout=60)

    job = detail["job"]
    assert job["state"] == "failed", job
    assert "stall_after" in job["error"] and "4096" in job["error"], job["error"]
