"""A renderer's output of any shape never stalls a task on a real farm."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from .harness import Agent, Process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SCENE = """\
camera { location <0, 0, -4> look_at <0, 0, 0> }
light_source { <2, 4, -3> color rgb 1 }
sphere { <0, 0, 0>, 1 pigment { color rgb <1, 0, 0> } }
"""


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_a_full_hd_povray_frame_completes_despite_its_80kb_progress_line(
    agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    # POV-Ray reports progress on one line joined by carriage returns: over 64 KiB
    # from about 1.5 megapixels, which a line-limited output reader cannot take.
    processes.append(agent.render_server("pov-hd", packages="povray"))
    agent.wait_servers(1)
    scene = tmp_path / "hd" / "scene.pov"
    scene.parent.mkdir()
    scene.write_text(SCENE)
    out = agent.cli(
        "submit",
        str(scene),
        "--json",
        "--package",
        "povray",
        "--frames",
        "1",
        "--resolution",
        "1920x1080",
    ).stdout
    body = json.loads(out)
    job_id = str(body["job"]["id"] if "job" in body else body["id"])
    detail = agent.wait_job(job_id, timeout=150)
    assert detail["job"]["state"] == "done", json.dumps(detail, indent=1)[:4000]
    files = sorted(Path(detail["job"]["storage_dir"]).glob("*.png"))
    assert len(files) == 1
    with Image.open(files[0]) as img:
        assert img.size == (1920, 1080)
