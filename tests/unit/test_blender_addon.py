"""The Blender add-on's plain parts, outside Blender: what the panel submits, what it shows,
the submission thread's news, and the zip's contents (it imports with the standard
library alone, as in Blender's own Python)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from spillway.client.errors import SubmissionError, Unauthorized, Unreachable
from spillway.client.records import JobDetail

ROOT = Path(__file__).resolve().parents[2]
# The add-on is not an installed package (it needs Blender); its source folder is its path.
sys.path.insert(0, str(ROOT / "blender_addon"))

import build_addon  # noqa: E402
from spillway_blender.follow import Submission, Target  # noqa: E402
from spillway_blender.request import (  # noqa: E402
    PanelSettings,
    explain,
    frame_spec,
    requirement,
    status_of,
    submit_options,
)


@pytest.mark.parametrize(
    ("start", "end", "step", "spec"),
    [
        (1, 24, 1, "1-24"),
        (1, 24, 2, "1-24x2"),
        (5, 5, 1, "5"),
        (5, 5, 3, "5"),
        (0, 10, 5, "0-10x5"),
    ],
)
def test_frame_spec_from_the_scene_range(start: int, end: int, step: int, spec: str) -> None:
    assert frame_spec(start, end, step) == spec


@pytest.mark.parametrize(
    ("start", "end", "step", "message"),
    [(10, 1, 1, "ends (1) before it starts (10)"), (1, 10, 0, "step must be 1 or more")],
)
def test_frame_spec_refuses_what_cannot_render(
    start: int, end: int, step: int, message: str
) -> None:
    with pytest.raises(SubmissionError, match=re.escape(message)):
        frame_spec(start, end, step)


def test_submit_options_from_the_panel() -> None:
    settings = PanelSettings(
        job_name=" shot ",
        frame_start=1,
        frame_end=48,
        frame_step=2,
        chunk_size=4,
        priority=70,
        site="farm-b",
        blender_version=(3, 4),
    )
    options = submit_options(settings)
    assert (options.package, options.frames, options.chunk_size, options.priority) == (
        "blender==3.4.*",
        "1-48x2",
        4,
        70,
    )
    assert (options.name, options.site, options.forward) == ("shot", "farm-b", True)
    # No overrides: the farm renders the .blend as it is saved.
    assert (options.width, options.height, options.engine) == (None, None, "")
    local = submit_options(PanelSettings(job_name="", frame_start=1, frame_end=1, forward=False))
    assert (local.package, local.site, local.forward, local.name) == ("blender", None, False, "")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chunk_size": 0}, "chunk size must be 1 or more"),
        ({"priority": 101}, "priority must be 0 to 100"),
        ({"site": "farm-b", "forward": False}, "clear the site or untick No Forward"),
    ],
)
def test_submit_options_refuse_bad_values(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SubmissionError, match=re.escape(message)):
        submit_options(PanelSettings(job_name="", frame_start=1, frame_end=2, **change))


def test_requirement() -> None:
    assert requirement(None) == "blender"
    assert requirement((4, 1)) == "blender==4.1.*"


def _detail(**job: Any) -> JobDetail:
    body = {"id": "8c8a22", "name": "shot", "state": "running", "frame_count": 24, **job}
    return JobDetail.from_json({"job": body, "tasks": [], "frames": []})


def test_status_of_a_job() -> None:
    running = status_of(_detail(progress={"frames_total": 24, "frames_done": 6}))
    assert (running.job_id, running.text, running.finished) == (
        "8c8a22",
        "running: 6/24 frames",
        False,
    )
    waiting = status_of(_detail(state="queued", why_waiting="no server has blender==4.1.*"))
    assert waiting.text == "queued: 0/24 frames; no server has blender==4.1.*"
    failed = status_of(_detail(state="failed", error="frame 3: blender exited 1"))
    assert (failed.error, failed.finished) == ("frame 3: blender exited 1", True)
    forwarded = status_of(_detail(state="done", placement="farm-b"))
    assert (forwarded.text, forwarded.error) == ("done: 0/24 frames (at farm-b)", "")


def test_explain_points_at_the_preferences() -> None:
    unreachable = Unreachable(
        "cannot reach the agent at http://farm:8700: refused; is `spillway agent` running? "
        "(set --agent or SPILLWAY_AGENT)",
        code="unreachable",
    )
    assert explain(unreachable) == (
        "cannot reach the agent at http://farm:8700: refused; check the agent URL in "
        "Edit > Preferences > Add-ons > Spillway and that the agent is running"
    )
    denied = Unauthorized("a token is required; pass --token or set SPILLWAY_TOKEN", status=401)
    assert explain(denied).endswith(
        "; set the agent's client token in Edit > Preferences > Add-ons > Spillway"
    )
    assert "--token" not in explain(denied)
    assert explain(SubmissionError("bad frames")) == "bad frames"


class _Client:
    """Answers like the agent: a job is created, then polled to done (or fails to connect)."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit_scene(self, scene: Path, options: Any, **kwargs: Any) -> Any:
        if self.fail is not None:
            raise self.fail
        job = _detail(state="queued").job
        return type(
            "Submitted",
            (),
            {"job": job, "manifest": type("M", (), {"entries": (1, 2)}), "uploaded_files": 2},
        )

    def wait(self, job_id: str, *, poll_s: float, on_update: Any) -> Any:
        for state, done in (("running", 12), ("done", 24)):
            on_update(_detail(state=state, progress={"frames_done": done}))
        return None


def _follow(client: _Client, tmp_path: Path) -> list[Any]:
    options = submit_options(PanelSettings(job_name="", frame_start=1, frame_end=24))
    submission = Submission(
        Target(url="http://farm:8700"),
        tmp_path / "shot.blend",
        options,
        scanner=None,  # type: ignore[arg-type]
        connect=lambda target: client,  # type: ignore[arg-type,return-value]
    )
    submission.start()
    submission.join(10)
    assert not submission.running and submission.settled.is_set()
    news = []
    while not submission.updates.empty():
        news.append(submission.updates.get_nowait())
    return news


def test_submission_reports_the_job_to_its_end(tmp_path: Path) -> None:
    news = _follow(_Client(), tmp_path)
    assert [n.text for n in news] == [
        "submitting shot.blend to http://farm:8700",
        "submitted 2 files (2 uploaded)",
        "running: 12/24 frames",
        "done: 24/24 frames",
    ]
    assert news[-1].finished and not any(n.error for n in news)


def test_submission_reports_the_clients_error(tmp_path: Path) -> None:
    news = _follow(
        _Client(Unreachable("cannot reach the agent at http://farm:8700: refused")), tmp_path
    )
    assert news[-1].finished and news[-1].error.startswith(
        "cannot reach the agent at http://farm:8700"
    )
    assert "Preferences" in news[-1].error


def test_the_zip_carries_the_client_and_imports_without_site_packages(tmp_path: Path) -> None:
    out = build_addon.build(tmp_path / "spillway_blender.zip")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "addons")
    assert "spillway_blender/__init__.py" in names
    assert "spillway_blender/_bundled/spillway/client/sync.py" in names
    assert "spillway_blender/_fallback/packaging/specifiers.py" in names
    assert "spillway_blender/_bundled/spillway/core/wire.py" not in names  # needs msgpack
    assert not any(
        "__pycache__" in n or n.startswith("spillway_blender/_bundled/site_agent") for n in names
    )
    # `python -S`: the standard library only, as in Blender's Python (bpy aside).
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import spillway_blender as addon; addon._use_bundled()\n"
        "import spillway_blender.follow, spillway_blender.scan, spillway.client.sync_submit\n"
        "import spillway.packages.blender, packaging.specifiers\n"
        "assert spillway_blender.follow.__file__.startswith(sys.argv[1])\n"
        "assert spillway.client.sync_submit.__file__.startswith(sys.argv[1])\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'msgpack', 'numpy')]\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(tmp_path / "addons")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "ok", result.stderr
    again = build_addon.build(tmp_path / "again.zip")
    assert again.read_bytes() == out.read_bytes()


def test_the_build_names_an_import_the_zip_lacks(tmp_path: Path) -> None:
    module = tmp_path / "uses_msgpack.py"
    module.write_text("import msgpack\n")
    entries = {"spillway_blender/_bundled/spillway/client/uses_msgpack.py": module}
    with pytest.raises(build_addon.BuildError, match="uses_msgpack.py imports msgpack"):
        build_addon.check_imports(entries)
