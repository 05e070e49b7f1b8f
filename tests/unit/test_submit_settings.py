"""What submit sends as the job's settings, and how `spillway job` shows an override."""

from __future__ import annotations

from pathlib import Path

from spillway.client.formatting import format_job
from spillway.client.submission import Manifest, SubmitOptions, build_job_body


def _body(**options: object) -> dict[str, object]:
    manifest = Manifest(scene="shot.pov", entries=())
    return build_job_body(
        Path("shot.pov"), manifest, SubmitOptions(package="povray", frames="1", **options)
    )


def test_no_resolution_sends_no_override() -> None:
    assert _body()["settings"] == {}


def test_resolution_is_an_override() -> None:
    assert _body(width=480, height=270)["settings"] == {"width": 480, "height": 270}


def test_job_view_lists_the_override_only_when_there_is_one() -> None:
    job = {"id": "j1", "name": "shot", "state": "queued", "profile": {"package": "povray"}}
    assert "overrides" not in format_job({"job": {**job, "settings": {}}}, now=0.0)
    shown = format_job({"job": {**job, "settings": {"width": 480, "height": 270}}}, now=0.0)
    assert "overrides  resolution 480x270" in shown
