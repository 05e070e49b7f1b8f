"""Real render packages on a real farm: POV-Ray and Blender across two render servers."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .harness import ROOT, Agent, Process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _submit(agent: Agent, scene: Path, *args: str) -> str:
    body = json.loads(agent.cli("submit", str(scene), "--json", *args).stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


def _servers(agent: Agent, processes: list[Process], package: str, count: int = 2) -> None:
    for i in range(count):
        processes.append(agent.render_server(f"{package}-{i}", packages=package))
    agent.wait_servers(count)


def _check_frames(detail: dict[str, Any], count: int, size: tuple[int, int]) -> None:
    job = detail["job"]
    assert job["state"] == "done", json.dumps(detail, indent=1)[:4000]
    job_dir = Path(job["storage_dir"])
    files = sorted(job_dir.glob("*.png"))
    assert len(files) == count
    digests = set()
    for f in files:
        with Image.open(f) as img:
            assert img.size == size
        digests.add(hashlib.sha256(f.read_bytes()).hexdigest())
    assert len(digests) == count, "animation frames should all differ"
    servers = {f["server"] for f in detail["frames"]}
    assert len(servers) == 2, f"frames should be split across both servers, got {servers}"


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_povray_animation_with_image_map_across_two_servers(
    sqlite_agent: Agent, processes: list[Process]
) -> None:
    agent = sqlite_agent
    _servers(agent, processes, "povray")
    scene = ROOT / "examples" / "povray" / "scene.pov"
    job_id = _submit(
        agent, scene, "--package", "povray>=3.7", "--frames", "1-6", "--resolution", "160x120"
    )
    detail = agent.wait_job(job_id, timeout=180)
    manifest = {a["path"] for a in detail["job"]["manifest"]}
    assert {"scene.pov", "planet.png", "props.inc"} <= manifest, (
        "dependency scan should find texture and include"
    )
    _check_frames(detail, 6, (160, 120))


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_missing_povray_texture_fails_with_povray_message(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    _servers(agent, processes, "povray", count=1)
    scene_dir = tmp_path / "pov"
    shutil.copytree(ROOT / "examples" / "povray", scene_dir)
    # The scan rejects a scene whose texture is missing before anything is uploaded...
    (scene_dir / "planet.png").unlink()
    result = agent.cli(
        "submit", str(scene_dir / "scene.pov"), "--package", "povray", "--frames", "1", check=False
    )
    assert result.returncode == 2 and "planet.png" in result.stderr
    # ...and a texture the scan could not see fails the task with POV-Ray's own message.
    (scene_dir / "scene.pov").write_text(
        (scene_dir / "scene.pov").read_text().replace('"planet.png"', 'concat("plan", "et.png")')
    )
    job_id = _submit(
        agent,
        scene_dir / "scene.pov",
        "--package",
        "povray",
        "--frames",
        "1",
        "--max-attempts",
        "1",
    )
    detail = agent.wait_job(job_id, timeout=120)
    assert detail["job"]["state"] == "failed"
    task = detail["tasks"][0]
    assert "planet.png" in task["log_tail"] + task["error"]


def _make_blend(tmp_path: Path) -> Path:
    out = tmp_path / "blend" / "scene.blend"
    out.parent.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "blender" / "tex.png", out.parent / "tex.png")
    subprocess.run(
        [
            "blender",
            "-b",
            "--factory-startup",
            "--python",
            str(ROOT / "examples" / "blender" / "make_scene.py"),
            "--",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed")
def test_blender_scene_with_external_texture_across_two_servers(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    blend = _make_blend(tmp_path)
    _servers(agent, processes, "blender")
    job_id = _submit(
        agent,
        blend,
        "--package",
        "blender>=3",
        "--engine",
        "workbench",
        "--frames",
        "1,8,16,24",
        "--resolution",
        "128x96",
    )
    detail = agent.wait_job(job_id, timeout=240)
    assert {"scene.blend", "tex.png"} <= {a["path"] for a in detail["job"]["manifest"]}
    _check_frames(detail, 4, (128, 96))


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed")
def test_unmatched_blender_version_waits_with_reason(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    blend = _make_blend(tmp_path)
    _servers(agent, processes, "blender", count=1)
    job_id = _submit(agent, blend, "--package", "blender>=4", "--frames", "1")
    time.sleep(1.0)
    why = agent.job(job_id)["job"]["why_waiting"] or ""
    assert "blender" in why and "3.4" in why and ">=4" in why, why
