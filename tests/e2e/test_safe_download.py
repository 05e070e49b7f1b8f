"""`spillway download` against a real agent, render server and renderer.

Two jobs with one name into one folder, frames damaged or deleted in storage,
and the CLI writing into a pipe whose reader has gone.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.error
from pathlib import Path

import pytest

from .harness import ROOT, Agent, Process, spillway_cmd

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SCENE = ROOT / "examples" / "textured" / "scene.json"


def render(agent: Agent, *args: str) -> dict:
    result = agent.cli(
        "submit", str(SCENE), "--package", "builtin", "--name", "scene", "--json", *args
    )
    job_id = json.loads(result.stdout)["job"]["id"]
    detail = agent.wait_job(job_id)
    assert detail["job"]["state"] == "done", detail
    return detail


def frame_names(folder: Path) -> dict[str, bytes]:
    """The frame files in a folder (a job's storage folder also holds ``.previews/``)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_download_keeps_other_jobs_frames_and_skips_bad_ones(
    agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    processes.append(agent.render_server("rs-1"))
    agent.wait_servers(1)
    first = render(agent, "--frames", "1-3", "--resolution", "64x48")
    second = render(agent, "--frames", "1-3", "--resolution", "48x32")
    first_id, second_id = first["job"]["id"], second["job"]["id"]
    storage = Path(first["job"]["storage_dir"])
    out = tmp_path / "out"

    agent.cli("download", first_id, str(out))
    assert frame_names(out) == frame_names(storage)
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(
            (storage / path.name).stat().st_mode
        )

    # Same job name, so the same file names: the second job must not replace the first.
    refused = agent.cli("download", second_id, str(out), check=False)
    assert refused.returncode == 1, refused
    assert "3 files already exist with different content" in refused.stderr
    assert frame_names(out) == frame_names(storage)
    agent.cli("download", second_id, str(out), "--overwrite")
    assert frame_names(out) == frame_names(Path(second["job"]["storage_dir"]))

    # Damage frame 2 and delete frame 3 in storage: frame 1 still comes, 2 and 3 are named.
    damaged = storage / "scene_0002.png"
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (storage / "scene_0003.png").unlink()
    again = tmp_path / "again"
    result = agent.cli("download", first_id, str(again), check=False)
    assert result.returncode == 1, result
    assert list(frame_names(again)) == ["scene_0001.png"]
    assert "frame 2: damaged in storage" in result.stderr
    assert "frame 3: missing from storage" in result.stderr

    with pytest.raises(urllib.error.HTTPError) as corrupt:
        agent.get(f"/api/v1/jobs/{first_id}/frames/2")
    assert corrupt.value.code == 409
    assert json.loads(corrupt.value.read())["error"]["code"] == "frame_corrupt"
    with pytest.raises(urllib.error.HTTPError) as missing:
        agent.get(f"/api/v1/jobs/{first_id}/frames/3")
    body = json.loads(missing.value.read())["error"]
    assert (missing.value.code, body["code"]) == (404, "frame_missing")
    assert f"frame 3 of job {first_id} is missing from storage" in body["message"]

    # Re-rendered as the message says, a second download fetches just those two.
    agent.cli("retry", first_id, "--frames", "2,3")
    detail = agent.wait_job(first_id)
    assert detail["job"]["state"] == "done", detail
    again_result = agent.cli("download", first_id, str(again))
    assert again_result.stdout.startswith("downloaded 2 frames"), again_result.stdout
    assert "1 already present" in again_result.stdout
    assert frame_names(again) == frame_names(storage)


def test_output_into_a_closed_pipe_ends_quietly(agent: Agent) -> None:
    """`spillway jobs | head -1` once head has gone: no message, the SIGPIPE status."""
    for argv in (["jobs"], ["servers"], ["jobs", "--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            result = subprocess.run(
                spillway_cmd(*argv, "--agent", agent.url),
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                timeout=60,
            )
        finally:
            os.close(write_end)
        assert (result.returncode, result.stderr) == (141, ""), argv
