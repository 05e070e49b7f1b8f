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


# --- Blender: overrides only when asked, validated at both ends ---------------------

import pytest  # noqa: E402

from site_agent.errors import BadRequestError  # noqa: E402
from site_agent.jobs import parse_submission  # noqa: E402
from spillway.client.errors import SubmissionError  # noqa: E402
from spillway.client.scene_settings import check_overrides  # noqa: E402

SHA = "0" * 64


def _blend_body(**options: object) -> dict[str, object]:
    manifest = Manifest(scene="shot.blend", entries=())
    return build_job_body(
        Path("shot.blend"), manifest, SubmitOptions(package="blender", frames="1", **options)
    )


def test_blender_overrides_go_in_settings_only_when_given() -> None:
    assert _blend_body()["settings"] == {}
    assert _blend_body(samples=16, denoise=False)["settings"] == {"samples": 16, "denoise": False}
    profile = _blend_body(features=("blender:oidn",))["profile"]
    assert profile["features"] == ["blender:oidn"]  # type: ignore[index]
    assert "features" not in _blend_body()["profile"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("package", "options", "fragment"),
    [
        ("povray", {"samples": 16}, "--samples does not apply to povray scenes"),
        ("builtin", {"denoise": False, "engine": "x"}, "--engine, --no-denoise do not apply"),
        ("blender", {"engine": "octane"}, "unknown blender engine 'octane'; use one of: cycles"),
        ("blender", {"samples": 0}, "--samples must be 1 to"),
    ],
)
def test_cli_refuses_overrides_a_package_lacks(
    package: str, options: dict[str, object], fragment: str
) -> None:
    values: dict[str, object] = {"engine": "", "samples": None, "denoise": True, **options}
    with pytest.raises(SubmissionError, match=fragment):
        check_overrides(package, **values)  # type: ignore[arg-type]


def _submit(profile: dict[str, object], settings: object) -> object:
    body = {
        "scene": "shot.blend",
        "manifest": [{"path": "shot.blend", "sha256": SHA, "size": 1}],
        "frames": "1",
        "profile": profile,
        "settings": settings,
    }
    job, _, _ = parse_submission(body, site_name="s", known_packages={"blender", "povray"}, now=0.0)
    return job


def test_api_accepts_blender_overrides() -> None:
    job = _submit({"package": "blender", "engine": "cycles"}, {"samples": 64, "denoise": False})
    assert job.settings == {"samples": 64, "denoise": False}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("profile", "settings", "fragment"),
    [
        ({"package": "blender"}, {"samples": 0}, "'samples' must be between 1 and"),
        ({"package": "blender"}, {"samples": "16"}, "'samples' must be a int"),
        ({"package": "blender"}, {"denoise": True}, "'denoise' can only be false"),
        ({"package": "blender", "engine": "octane"}, {}, "unknown blender engine 'octane'"),
        ({"package": "povray"}, {"samples": 16}, "'samples' applies to blender scenes only"),
        ({"package": "blender"}, {"seed": 1}, "unknown setting 'seed'"),
    ],
)
def test_api_refuses_bad_overrides(
    profile: dict[str, object], settings: object, fragment: str
) -> None:
    with pytest.raises(BadRequestError, match=fragment):
        _submit(profile, settings)


def test_job_view_lists_every_override() -> None:
    job = {
        "id": "j1",
        "name": "shot",
        "state": "queued",
        "profile": {"package": "blender", "engine": "cycles", "features": ["blender:oidn"]},
        "requirement": "blender>=3",
        "settings": {"samples": 16, "denoise": False},
    }
    shown = format_job({"job": job}, now=0.0)
    assert "overrides  engine cycles, samples 16, no denoising" in shown
    assert "requires   blender>=3 with OpenImageDenoise" in shown
