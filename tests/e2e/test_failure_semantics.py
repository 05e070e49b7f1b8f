"""Jobs that cannot go on end or wait visibly, and this site's own faults blame no render server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from site_agent.storage import safe_name

from .harness import ROOT, Agent, Process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_job_failing_on_every_capable_server_ends_failed(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    """A parse error fails on both servers; once both are avoided the job fails with the
    reason and POV-Ray's own line, and ``submit --wait`` exits 1 (it used to wait forever)."""
    agent = sqlite_agent
    for i in range(2):
        processes.append(agent.render_server(f"pov-{i}", packages="povray"))
    agent.wait_servers(2)
    scene = tmp_path / "broken.pov"
    scene.write_text("camera { location <0, 0, -5> look_at <0, 0, 0> }\nsphere { <0,0,0>, 1 \n")
    result = agent.cli(
        "submit",
        str(scene),
        "--package",
        "povray",
        "--frames",
        "1-8",
        "--wait",
        check=False,
        timeout=150,
    )
    assert result.returncode == 1, result.stderr
    job = agent.job(result.stdout.strip())["job"]
    assert job["state"] == "failed"
    assert "capable server" in job["error"] and "avoided" in job["error"], job["error"]
    assert "last error:" in job["error"] and "Parse Error" in job["error"], job["error"]
    summary = result.stderr.strip().splitlines()[-1]
    assert "failed" in summary and "avoided" in summary and "retry" in summary, summary
    assert {t["state"] for t in agent.job(job["id"])["tasks"]} == {"failed"}


def _can_mount_tmpfs(path: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(path)]).returncode
    return ok == 0


def test_full_storage_requeues_without_blaming_servers(
    sqlite_agent: Agent, processes: list[Process]
) -> None:
    """Frames that cannot be written (a full disk) send their tasks back without a failure
    counted against the render server; the job says why, and finishes once space is freed."""
    agent = sqlite_agent
    scene = ROOT / "examples" / "textured" / "scene.json"
    body = json.loads(
        agent.cli("submit", str(scene), "--package", "builtin", "--frames", "1-2", "--json").stdout
    )
    job = body.get("job", body)
    job_dir = agent.storage / f"{safe_name(job['name'])}-{job['id']}"
    if not _can_mount_tmpfs(job_dir):
        pytest.skip("needs root to mount a small tmpfs as the job's storage folder")
    try:
        processes.append(agent.render_server("rs-1"))

        def noticed() -> bool:
            detail = agent.job(job["id"])
            return "storage full" in detail["job"]["error"]

        wait_for(noticed, 60, "the job to show that storage is full")
        detail = agent.job(job["id"])
        assert detail["job"]["state"] in ("queued", "running")
        assert all(t["failures"] == 0 for t in detail["tasks"]), detail["tasks"]
        assert not list(job_dir.glob(".*.part"))
        subprocess.run(["mount", "-o", "remount,size=64m", str(job_dir)], check=True)
        done = agent.wait_job(job["id"], timeout=120)
        assert done["job"]["state"] == "done", done["job"]
        assert done["job"]["error"] == ""
        assert all(t["failures"] == 0 for t in done["tasks"]), done["tasks"]
        assert len(list(job_dir.glob("*.png"))) == 2
    finally:
        for proc in processes:
            proc.stop()
        subprocess.run(["umount", "-l", str(job_dir)], check=False)
