"""Forwarded jobs that cannot go on end at the origin too.

A frame that is corrupt at the remote: the origin records the good frames and fails
the job naming the bad one, acknowledges the remote's notification, and nothing
loops. A job whose capable servers at the remote all fail it: the remote fails it
and the origin hears so, with the renderer's error."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from e2e.federation_harness import running_pair
from e2e.harness import ROOT, wait_for

from .conftest import assert_only_previews_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
POVRAY = ROOT / "examples" / "povray"


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_corrupt_remote_frame_fails_the_origin_job_and_keeps_the_good_frames(
    tmp_path: Path,
) -> None:
    with running_pair(tmp_path, {"fac-pov": "povray"}) as fed:
        studio, facility = fed["studio"], fed["facility"]
        body = json.loads(
            studio.cli(
                "submit",
                str(POVRAY / "scene.pov"),
                "--package",
                "povray",
                "--frames",
                "1-4",
                "--resolution",
                "64x48",
                "--json",
            ).stdout
        )
        job_id = str(body.get("job", body)["id"])
        wait_for(lambda: bool(studio.job(job_id)["job"]["remote_job_id"]), 60, "the commit")
        remote_id = studio.job(job_id)["job"]["remote_job_id"]
        # The origin is down while the remote renders, so the frame rots before it is fetched.
        studio.kill()
        remote = facility.wait_job(remote_id, timeout=90)
        assert remote["job"]["state"] == "done"
        bad = min(remote["frames"], key=lambda f: f["frame"])
        path = Path(remote["job"]["storage_dir"]) / bad["name"]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        studio.start()

        detail = studio.wait_job(job_id, timeout=60)
        job = detail["job"]
        assert job["state"] == "failed", job
        assert f"frame(s) could not be fetched: {bad['frame']}" in job["error"], job["error"]
        # The remote checks a frame's bytes before serving it, so it refuses the corrupt one.
        assert "frame_corrupt" in job["error"] and "not served" in job["error"], job["error"]
        frames = studio.get(f"/api/v1/jobs/{job_id}/frames")["frames"]
        assert sorted(f["frame"] for f in frames) == [2, 3, 4]
        studio_dir = Path(job["storage_dir"])
        on_disk = sorted(p.name for p in studio_dir.iterdir() if p.name != ".previews")
        assert on_disk == sorted(f["name"] for f in frames)
        # A refused frame leaves nothing: not even the preview fetched before its main file.
        assert_only_previews_of(studio_dir, [f["name"] for f in frames])
        final = f"notify:{remote_id}:1:final"

        def acknowledged() -> bool:
            db = tmp_path / "facility.db"
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
                rows = conn.execute(
                    "SELECT delivered_at FROM fed_outbox WHERE id = ?", (final,)
                ).fetchall()
            return bool(rows) and rows[0][0] is not None

        wait_for(acknowledged, 30, "the remote's final notification to be acknowledged")
        time.sleep(1)
        assert "Traceback" not in studio.log()


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_forwarded_job_failing_on_every_remote_server_fails_at_the_origin(
    tmp_path: Path,
) -> None:
    scene = tmp_path / "broken.pov"
    scene.write_text("camera { location <0, 0, -5> look_at <0, 0, 0> }\nsphere { <0,0,0>, 1 \n")
    with running_pair(tmp_path / "sites", {"fac-pov": "povray"}) as fed:
        studio = fed["studio"]
        result = studio.cli(
            "submit",
            str(scene),
            "--package",
            "povray",
            "--frames",
            "1-8",
            "--resolution",
            "64x48",
            "--wait",
            check=False,
            timeout=120,
        )
        assert result.returncode == 1, result.stderr
        job = studio.job(result.stdout.strip())["job"]
        assert job["state"] == "failed" and job["placement"] == "facility", job
        assert job["error"].startswith("at facility:"), job["error"]
        assert "the only capable server (fac-pov)" in job["error"], job["error"]
        assert "Parse Error" in job["error"], job["error"]
        assert "at facility:" in result.stderr.strip().splitlines()[-1]
