"""The chaos soak, short: real processes, injected faults, nothing lost; and its check can fail."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak_clients import SubmittedJob
from bench.soak_farm import Farm
from bench.soak_verify import unfinished_jobs, verify_site
from spillway.client import AgentClient, SubmitOptions, submit_scene
from spillway.core.frames import parse_frames

from .harness import ROOT

pytestmark = pytest.mark.e2e
SCENE = ROOT / "examples" / "textured" / "scene.json"


@pytest.mark.timeout(600)
def test_short_soak_on_sqlite_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = [
        *("-m", "bench.soak", "--minutes", "1.25", "--fault-interval", "4", "--seed", "3"),
        *("--backend", "sqlite", "--drain-timeout", "120", "--json", str(out)),
    ]
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the soak ends the processes it started
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail(f"the soak overran its own time limit:\n{stdout}\n{stderr[-5000:]}")
    assert out.exists(), stdout + stderr[-5000:]
    (run,) = json.loads(out.read_text())
    assert run["losses"] == 0 and run["findings"] == [], stdout
    # An agent killed while it writes a frame leaves the write's .part file; the
    # restarted agent deletes it, so none may be left when the soak checks.
    assert run["leftovers"] == [], run["leftovers"]
    assert proc.returncode == 0, stdout + stderr[-5000:]
    assert run["faults_total"] >= 8, run["faults"]
    # The seed's schedule crashes both the agent and a render server and cuts the link.
    assert {"agent kill -9", "server kill -9"} <= set(run["faults"]), run["faults"]
    assert any(kind.startswith(("link", "remote")) for kind in run["faults"]), run["faults"]
    studio = run["sites"]["studio"]
    assert run["jobs_submitted"] > 5 and studio["jobs"] == {"done": sum(studio["jobs"].values())}
    assert studio["frames"] > 30 and run["sites"]["facility"]["frames"] > 0


@pytest.mark.timeout(180)
async def test_the_check_finds_a_lost_a_corrupt_and_a_stray_frame_and_a_duplicate_task(
    tmp_path: Path,
) -> None:
    farm = Farm(tmp_path)
    site = farm.add_site("studio", f"sqlite:///{tmp_path / 'studio.db'}")
    farm.add_servers(site, 1)
    try:
        await asyncio.to_thread(site.start_agent)
        site.servers[0].start()
        async with AgentClient(site.url) as client:
            options = SubmitOptions(
                package="builtin", frames="1-3", width=32, height=24, queue_anyway=True
            )
            job = (await submit_scene(client, SCENE, options)).job
            job_id = str(job.get("job", job)["id"])
            acknowledged = [
                SubmittedJob(id=job_id, client=1, frames=parse_frames("1-3"), forwarded=False),
                SubmittedJob(id="never-made", client=1, frames=(1,), forwarded=False),
            ]
            for _ in range(600):
                if not await unfinished_jobs(site):
                    break
                await asyncio.sleep(0.2)
            clean = await verify_site(site, acknowledged[:1])
            assert clean.findings == [] and clean.frames == 3 and clean.jobs == {"done": 1}

            folder = Path((await client.job(job_id))["job"]["storage_dir"])
            frames = sorted(p for p in folder.iterdir() if p.is_file())  # not .previews/
            frames[0].write_bytes(b"not the rendered frame")
            frames[1].unlink()
            (folder / "extra_0009.png").write_bytes(b"x")
            (folder / ".extra_0001.png.123-abc-1.part").write_bytes(b"half")
            with sqlite3.connect(tmp_path / "studio.db") as db:
                db.execute(
                    "INSERT INTO tasks (job_id, idx, frames, state) "
                    "SELECT job_id, idx, frames, state FROM tasks WHERE job_id = ? AND idx = 0",
                    (job_id,),
                )
            verdict = await verify_site(site, acknowledged)
            found = "\n".join(verdict.findings)
    finally:
        await asyncio.to_thread(farm.close)
    assert "acknowledged job never-made is gone" in found
    assert f"frame 1: file {frames[0]} has" in found
    assert f"frame 2: file {frames[1]} unreadable" in found
    assert "stray file extra_0009.png" in found
    assert "task 0 has 2 task rows" in found
    assert len(verdict.leftovers) == 1 and ".extra_0001.png.123-abc-1.part" in verdict.leftovers[0]


def test_soak_refuses_bad_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "must be > 0" in result.stderr
    assert "Traceback" not in result.stderr
