"""The Blender add-on, installed from its zip into Debian's Blender, submits the open
.blend to a real farm; the frames that come back equal a direct render."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from .harness import ROOT, Agent, Process, free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed"),
    pytest.mark.timeout(600),
]

MARKER = "SPILLWAY_ADDON_TEST="

# Runs inside Blender: install and enable the add-on from the zip, point it at the agent,
# set the panel's values, press Submit, follow the job, print what the panel shows.
INSTALL = """
import json, bpy
bpy.ops.preferences.addon_install(filepath={zip!r})
bpy.ops.preferences.addon_enable(module="spillway_blender")
prefs = bpy.context.preferences.addons["spillway_blender"].preferences
prefs.agent_url = {url!r}
"""
SUBMIT = """
import spillway_blender
settings = bpy.context.scene.spillway
settings.chunk_size, settings.priority, settings.job_name = 2, 70, "from-blender"
bpy.context.scene.render.resolution_x = 80
bpy.ops.ed.undo_push(message="narrower")  # as an edit in the UI: the file has unsaved changes
bpy.ops.spillway.submit()
shown = spillway_blender.wait(300)
shown["panel"] = draw_panel()
print({marker!r} + json.dumps(shown))
"""
# Background mode draws no UI: the panel draws into a layout that checks each property,
# operator and icon it is given against Blender's, and records what it shows.
DRAW = """
from spillway_blender.ui import SPILLWAY_PT_render

ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())


class Layout:
    use_property_split = False

    def __init__(self):
        self.shown = []

    def prop(self, data, name, **options):
        assert name in data.bl_rna.properties, name
        self.shown.append(name)

    def label(self, text="", icon="NONE"):
        assert icon in ICONS, icon
        self.shown.append(text)

    def operator(self, idname, icon="NONE", **options):
        assert icon in ICONS, icon
        module, name = idname.split(".")
        assert name in dir(getattr(bpy.ops, module)), idname
        self.shown.append(idname)

    def column(self, **options):
        return self

    def box(self):
        return self


def draw_panel():
    layout = Layout()
    SPILLWAY_PT_render.draw(type("Panel", (), dict(layout=layout))(), bpy.context)
    return layout.shown
"""
# Submit refuses a file never saved and one whose texture is missing (an operator's
# error report raises in a script); with an agent that is not there the panel says so.
REFUSALS = """
import os, spillway_blender


def refused():
    try:
        bpy.ops.spillway.submit()
    except RuntimeError as err:
        return str(err)
    return ""


unsaved = refused()
bpy.ops.wm.open_mainfile(filepath={blend!r})
os.rename({texture!r}, {texture!r} + ".away")
missing = refused()
os.rename({texture!r} + ".away", {texture!r})
bpy.ops.spillway.submit()
dead = spillway_blender.wait(60)
print({marker!r} + json.dumps(dict(unsaved=unsaved, missing=missing, dead=dead)))
"""


def _build_zip(out: Path) -> Path:
    subprocess.run(
        [sys.executable, str(ROOT / "blender_addon" / "build_addon.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


def _make_blend(out: Path) -> Path:
    out.parent.mkdir(parents=True)
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python"]
        + [str(ROOT / "examples" / "blender" / "make_scene.py"), "--", str(out)]
        + ["--resolution", "96x54", "--frames", "1-3"],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return out


def _blender(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run Blender with a fresh user configuration; the marked line it printed."""
    env = {
        "BLENDER_USER_CONFIG": str(tmp_path / "user" / "config"),
        "BLENDER_USER_SCRIPTS": str(tmp_path / "user" / "scripts"),
    }
    result = subprocess.run(
        ["blender", "-b", *args],
        env={**_environ(), **env},
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    assert result.returncode == 0 and lines, output[-4000:]
    data: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    return data


def _environ() -> dict[str, str]:
    # Blender's own Python must not see this test's virtualenv: the add-on brings its client.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _rgb(path: Path) -> Any:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_addon_submits_the_open_blend_and_frames_equal_a_direct_render(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    addon = _build_zip(tmp_path / "dist" / "spillway_blender.zip")
    blend = _make_blend(tmp_path / "shot" / "scene.blend")
    processes.append(agent.render_server("blender-0", packages="blender"))
    agent.wait_servers(1)

    script = INSTALL.format(zip=str(addon), url=agent.url) + DRAW + SUBMIT.format(marker=MARKER)
    shown = _blender(tmp_path, str(blend), "--python-exit-code", "1", "--python-expr", script)
    assert (shown["state"], shown["error"]) == ("done", ""), shown
    assert shown["text"] == "done: 3/3 frames"
    assert shown["panel"] == [
        f"Agent: {agent.url}",
        "use_scene_frames",
        "Frames 1-3 step 1",
        *("chunk_size", "priority", "site", "no_forward", "match_version", "job_name"),
        "spillway.submit",
        f"Job {shown['job_id']}",
        "done: 3/3 frames",
    ]

    detail = agent.job(shown["job_id"])
    job = detail["job"]
    assert (job["name"], job["frames"], job["chunk_size"], job["priority"]) == (
        "from-blender",
        "1-3",
        2,
        70,
    )
    version = ".".join(str(v) for v in _blender_version()[:2])
    assert job["requirement"] == f"blender=={version}.*", job
    downloaded = tmp_path / "downloaded"
    agent.cli("download", shown["job_id"], str(downloaded))
    frames = sorted(downloaded.rglob("*.png"))
    assert len(frames) == 3, frames
    assert _rgb(frames[0]).shape == (54, 80, 3)  # the unsaved change was saved and rendered

    direct = tmp_path / "direct"
    subprocess.run(
        ["blender", "-b", str(blend), "-o", f"{direct}/f_####", "-s", "1", "-e", "3", "-a"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for number, frame in enumerate(frames, start=1):
        assert np.array_equal(_rgb(frame), _rgb(direct / f"f_{number:04d}.png")), frame


def test_addon_refuses_an_unsaved_file_and_shows_an_unreachable_agent(tmp_path: Path) -> None:
    addon = _build_zip(tmp_path / "dist" / "spillway_blender.zip")
    blend = _make_blend(tmp_path / "shot" / "scene.blend")
    dead = f"http://127.0.0.1:{free_port()}"
    script = INSTALL.format(zip=str(addon), url=dead)
    texture = str(blend.parent / "tex.png")
    script += REFUSALS.format(blend=str(blend), texture=texture, marker=MARKER)
    shown = _blender(tmp_path, "--python-exit-code", "1", "--python-expr", script)
    assert "save the .blend first" in shown["unsaved"], shown
    assert "missing file 'tex.png'" in shown["missing"], shown
    assert shown["dead"]["job_id"] == ""
    assert dead.removeprefix("http://") in shown["dead"]["error"], shown


def _blender_version() -> tuple[int, ...]:
    out = subprocess.run(["blender", "--version"], capture_output=True, text=True, timeout=60)
    first = out.stdout.splitlines()[0]  # "Blender 3.4.1"
    return tuple(int(p) for p in first.split()[1].split("."))
