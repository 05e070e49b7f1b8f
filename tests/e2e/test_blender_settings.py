"""Blender on a real farm renders as the .blend says; overrides only when asked;
a denoising scene waits, with the reason, for a server with OpenImageDenoise; a movie
output is refused, naming the fix."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from spillway.client import AgentClient, SubmitOptions, submit_scene

from .harness import ROOT, Agent, Process

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed"),
    pytest.mark.timeout(600),
]


def _make_blend(out: Path, *options: str) -> Path:
    out.parent.mkdir(parents=True)
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python"]
        + [str(ROOT / "examples" / "blender" / "make_scene.py"), "--", str(out), *options],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return out


def _submit(agent: Agent, scene: Path, *args: str) -> str:
    body = json.loads(agent.cli("submit", str(scene), "--json", *args).stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


def _rgb(path: Path) -> Any:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _frames(detail: dict[str, Any]) -> list[Path]:
    assert detail["job"]["state"] == "done", json.dumps(detail, indent=1)[:4000]
    return sorted(Path(detail["job"]["storage_dir"]).glob("*.png"))


def _server(agent: Agent, processes: list[Process]) -> dict[str, Any]:
    processes.append(agent.render_server("blender-0", packages="blender"))
    agent.wait_servers(1)
    servers: list[dict[str, Any]] = agent.get("/api/v1/servers")["servers"]
    return servers[0]


def test_blender_job_renders_as_the_blend_says(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    """No --frames, no overrides: the .blend's frame range/step, 64 samples and seed are
    used, so a frame equals ``blender -b scene.blend -f 5``; --samples 16 is an override."""
    agent = sqlite_agent
    blend = _make_blend(
        tmp_path / "blend" / "scene.blend",
        *("--engine", "CYCLES", "--samples", "64", "--seed", "5"),
        *("--resolution", "96x54", "--frames", "3-7x2"),
    )
    _server(agent, processes)
    job_id = _submit(agent, blend, "--package", "blender")
    detail = agent.wait_job(job_id, timeout=400)
    assert (detail["job"]["frames"], detail["job"]["frame_count"]) == ("3-7x2", 3)
    assert detail["job"]["settings"] == {}
    assert "overrides" not in agent.cli("job", job_id).stdout
    frames = _frames(detail)
    assert len(frames) == 3
    direct = tmp_path / "direct"
    subprocess.run(
        ["blender", "-b", str(blend), "-o", f"{direct}/f_####", "-f", "5"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    scene_render = _rgb(frames[1])
    assert np.array_equal(scene_render, _rgb(direct / "f_0005.png"))

    submitted = agent.cli(
        "submit", str(blend), "--json", "--package", "blender", "--frames", "5", "--samples", "16"
    )
    assert "overrides: samples 16 (scene: 64)" in submitted.stderr, submitted.stderr
    body = json.loads(submitted.stdout)
    override = str(body["job"]["id"] if "job" in body else body["id"])
    fewer = _frames(agent.wait_job(override, timeout=300))
    assert "overrides  samples 16" in agent.cli("job", override).stdout
    assert not np.array_equal(_rgb(fewer[0]), scene_render)


def test_denoising_scene_waits_for_openimagedenoise_and_renders_with_no_denoise(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    blend = _make_blend(
        tmp_path / "blend" / "scene.blend",
        *("--engine", "CYCLES", "--samples", "2", "--denoise"),
        *("--resolution", "32x24", "--frames", "1"),
    )
    server = _server(agent, processes)
    if "blender:oidn" in server["tags"]:
        pytest.skip("this Blender has OpenImageDenoise: the scene renders as it is")
    refused = agent.cli("submit", str(blend), "--package", "blender", check=False)
    assert refused.returncode != 0
    assert "needs blender with OpenImageDenoise" in refused.stderr, refused.stderr
    assert "--no-denoise" in refused.stderr

    waiting = _submit(agent, blend, "--package", "blender", "--queue-anyway")
    time.sleep(1.0)
    detail = agent.job(waiting)
    assert detail["job"]["state"] == "queued"
    assert detail["job"]["profile"]["features"] == ["blender:oidn"]
    view = agent.cli("job", waiting).stdout
    assert "requires   blender with OpenImageDenoise" in view
    version = server["packages"]["blender"]
    assert f"1 server has blender {version} without OpenImageDenoise" in view, view
    agent.cli("cancel", waiting)

    plain = _submit(agent, blend, "--package", "blender", "--no-denoise")
    assert len(_frames(agent.wait_job(plain, timeout=300))) == 1
    assert "overrides  no denoising" in agent.cli("job", plain).stdout


MOVIE_BLEND = """
import bpy, sys
r = bpy.context.scene.render
r.engine = "BLENDER_WORKBENCH"
r.resolution_x, r.resolution_y, r.resolution_percentage = 32, 24, 100
r.image_settings.file_format = "FFMPEG"
r.ffmpeg.format, r.ffmpeg.codec = "MPEG4", "H264"
r.filepath = "//renders/shot_"
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
"""


def test_a_movie_scene_is_refused_at_submit_and_fails_on_a_server_with_the_fix(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    """A .blend writing FFmpeg video: ``spillway submit`` refuses it before uploading; a job
    made without reading the .blend (an API client) fails on the server with the same fix,
    rather than rendering something other than the movie asked for."""
    agent = sqlite_agent
    blend = tmp_path / "movie" / "movie.blend"
    blend.parent.mkdir()
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1",
         "--python-expr", MOVIE_BLEND, "--", str(blend)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    _server(agent, processes)
    refused = agent.cli(
        "submit", str(blend), "--package", "blender", "--frames", "1-2", check=False
    )
    assert refused.returncode == 2, refused.stderr
    assert "cannot submit movie.blend: the scene writes a movie file (FFmpeg MPEG4, H264)" in (
        refused.stderr
    )
    assert agent.get("/api/v1/jobs")["jobs"] == [], "nothing was submitted"

    async def unscanned() -> str:
        options = SubmitOptions(package="blender", frames="1-2", chunk_size=2, max_attempts=1)
        async with AgentClient(agent.url) as client:
            job = (await submit_scene(client, blend, options, scanner=None)).job
        return str(job.get("job", job)["id"])

    detail = agent.wait_job(asyncio.run(unscanned()), timeout=300)
    job = detail["job"]
    assert job["state"] == "failed", json.dumps(detail, indent=1)[:3000]
    assert "movie file (FFmpeg MPEG4, H264)" in job["error"], job["error"]
    assert "encode the frames" in job["error"], job["error"]
    assert not [p for p in Path(job["storage_dir"]).glob("*") if p.is_file()]
