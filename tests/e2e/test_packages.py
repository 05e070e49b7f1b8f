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
    # A texture name computed while parsing: the submit names it and the --asset to add...
    (scene_dir / "planet.png").write_bytes(
        (ROOT / "examples" / "povray" / "planet.png").read_bytes()
    )
    (scene_dir / "scene.pov").write_text(
        (scene_dir / "scene.pov")
        .read_text()
        .replace('"planet.png"', 'concat("plan", str(1, 0, 0), ".png")')
    )
    args = ("--package", "povray", "--frames", "1", "--max-attempts", "1")
    result = agent.cli("submit", str(scene_dir / "scene.pov"), *args, check=False)
    assert result.returncode == 2, result.stderr
    assert 'concat("plan", str(1, 0, 0), ".png")' in result.stderr
    assert "--asset planet.png" in result.stderr
    # ...an --asset matching it is accepted, and the file POV-Ray then looks for
    # (plan1.png) fails the task with POV-Ray's own message.
    job_id = _submit(
        agent, scene_dir / "scene.pov", *args, "--asset", str(scene_dir / "planet.png")
    )
    detail = agent.wait_job(job_id, timeout=120)
    assert detail["job"]["state"] == "failed"
    task = detail["tasks"][0]
    assert "plan1.png" in task["log_tail"] + task["error"]


POVRAY_EXAMPLES = Path("/usr/share/doc/povray/examples")


def _povray_example(tmp_path: Path, name: str, small: str = "") -> Path:
    src = POVRAY_EXAMPLES / name
    if not src.is_dir():
        pytest.skip(f"{src} is missing: install Debian's povray-examples")
    folder = tmp_path / src.name
    shutil.copytree(src, folder)
    for ini in folder.glob("*.ini"):
        ini.write_text(ini.read_text() + "\n" + small)
    return folder


def _direct_povray(folder: Path, *args: str) -> list[Any]:
    out = folder.parent / "direct"
    out.mkdir()
    subprocess.run(
        ["povray", *args, "-D", "-P", f"+O{out}/"], cwd=folder, check=True, capture_output=True
    )
    return [_rgb(p) for p in sorted(out.glob("*.png"))]


def _rgb(path: Path) -> Any:
    with Image.open(path) as img:
        return img.convert("RGB").tobytes()


def _stored(detail: dict[str, Any]) -> list[Any]:
    assert detail["job"]["state"] == "done", json.dumps(detail, indent=1)[:4000]
    return [_rgb(p) for p in sorted(Path(detail["job"]["storage_dir"]).glob("*.png"))]


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_povray_ini_animation_is_povrays_own_across_two_servers(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    """POV-Ray's clockd example submitted as its .ini: frames, clock and options from the
    .ini, frames equal to ``povray clockd.ini`` in chunks of 3 over two servers."""
    agent = sqlite_agent
    _servers(agent, processes, "povray")
    folder = _povray_example(tmp_path, "animations/clockd", "Width=48\nHeight=36\n")
    job_id = _submit(agent, folder / "clockd.ini", "--package", "povray", "--chunk", "3")
    detail = agent.wait_job(job_id, timeout=240)
    assert detail["job"]["frames"] == "1-20"
    assert {a["path"] for a in detail["job"]["manifest"]} == {"clockd.ini", "clockd.pov"}
    stored = _stored(detail)
    assert stored == _direct_povray(folder, "clockd.ini")
    assert len(stored) == 20 and stored[0] != stored[-1]  # the clock runs 0 -> 1


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_povray_irregular_chunk_renders_exactly_its_frames(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    """clockd.ini frames 1,5,10-12 in one chunk (two POV-Ray runs on one server): exactly
    those five frames, each equal to the same frame of ``povray clockd.ini``."""
    agent = sqlite_agent
    _servers(agent, processes, "povray", count=1)
    folder = _povray_example(tmp_path, "animations/clockd", "Width=48\nHeight=36\n")
    args = ("--package", "povray", "--frames", "1,5,10-12", "--chunk", "5")
    job_id = _submit(agent, folder / "clockd.ini", *args)
    detail = agent.wait_job(job_id, timeout=240)
    assert len(detail["tasks"]) == 1
    stored = _stored(detail)
    direct = _direct_povray(folder, "clockd.ini")
    assert stored == [direct[f - 1] for f in (1, 5, 10, 11, 12)]
    # The render log: two POV-Ray runs, five frames rendered (none in between).
    log = agent.get(f"/api/v1/jobs/{job_id}/log?frame=1")
    assert log["truncated_bytes"] == 0
    runs = [line for line in log["text"].splitlines() if line.startswith("$ povray")]
    assert [r.split()[-5:-2] for r in runs] == [
        ["+SF1", "+EF5", "+STP4"],
        ["+SF10", "+EF12", "+STP1"],
    ]
    assert log["text"].count("Rendered 1728 of 1728 pixels") == 5


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_povray_extension_less_image_map_and_resolution_override(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    """POV-Ray's cliche example (image_map { "sign" } opens sign.png) renders as POV-Ray does."""
    agent = sqlite_agent
    _servers(agent, processes, "povray", count=1)
    folder = _povray_example(tmp_path, "advanced/cliche")
    subprocess.run(
        ["povray", "+Isign.pov", "+W40", "+H40", "-D", "+Osign.png"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    args = ("--package", "povray", "--frames", "1", "--resolution", "64x48")
    job_id = _submit(agent, folder / "cliche.pov", *args)
    detail = agent.wait_job(job_id, timeout=240)
    assert {a["path"] for a in detail["job"]["manifest"]} == {"cliche.pov", "sign.png"}
    assert _stored(detail) == _direct_povray(folder, "cliche.pov", "+W64", "+H48")
    assert "resolution 64x48" in agent.cli("job", job_id).stdout


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
    job_id = _submit(agent, blend, "--package", "blender>=4", "--frames", "1", "--queue-anyway")
    time.sleep(1.0)
    why = agent.job(job_id)["job"]["why_waiting"] or ""
    assert "blender" in why and "3.4" in why and ">=4" in why, why
