"""Manifest building and job bodies for `spillway submit` (no agent needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from spillway.client.submission import (
    SubmissionError,
    SubmitOptions,
    build_job_body,
    build_manifest,
    parse_package_spec,
    sha256_file,
)


class FakeScanner:
    """Stands in for a package adapter: returns fixed dependency paths."""

    def __init__(self, deps=(), error=None):
        self.deps = [Path(d) for d in deps]
        self.error = error
        self.scanned = []

    async def scan(self, scene: Path) -> list[Path]:
        self.scanned.append(scene)
        if self.error is not None:
            raise self.error
        return list(self.deps)


@pytest.fixture
def shot(tmp_path):
    folder = tmp_path / "shot"
    (folder / "tex").mkdir(parents=True)
    (folder / "scene.json").write_text('{"camera": {}}')
    (folder / "tex" / "wood.png").write_bytes(b"wood" * 1000)
    (folder / "extra.bin").write_bytes(b"\x00" * 10)
    (tmp_path / "outside.png").write_bytes(b"nope")
    return folder


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sha256_file_streams_large_files(tmp_path):
    data = b"abc" * 1_000_000  # > 1 MiB: more than one chunk
    path = tmp_path / "big"
    path.write_bytes(data)
    assert sha256_file(path) == digest(data)


async def test_manifest_holds_scene_scanned_files_and_assets(shot, monkeypatch):
    monkeypatch.chdir(shot.parent)
    scanner = FakeScanner(["tex/wood.png"])
    manifest = await build_manifest(
        Path("shot/scene.json"),
        [Path("shot/extra.bin"), Path("shot/tex/wood.png")],
        scanner=scanner,
    )
    assert manifest.scene == "scene.json"
    assert [e.to_dict() for e in manifest.entries] == [
        {"path": "scene.json", "sha256": digest(b'{"camera": {}}'), "size": 14},
        {"path": "tex/wood.png", "sha256": digest(b"wood" * 1000), "size": 4000},
        {"path": "extra.bin", "sha256": digest(b"\x00" * 10), "size": 10},
    ]
    assert manifest.total_size == 4024
    assert scanner.scanned == [shot / "scene.json"]
    assert all(e.source.is_absolute() for e in manifest.entries)


async def test_asset_outside_the_scene_folder_is_rejected(shot):
    with pytest.raises(SubmissionError, match="outside the scene folder") as err:
        await build_manifest(shot / "scene.json", [shot.parent / "outside.png"])
    assert "copy it into that folder" in str(err.value)


async def test_asset_path_with_dotdot_leaving_the_folder_is_rejected(shot):
    with pytest.raises(SubmissionError, match="outside the scene folder"):
        await build_manifest(shot / "scene.json", [shot / ".." / "outside.png"])


async def test_asset_path_with_dotdot_staying_inside_is_normalised(shot):
    manifest = await build_manifest(shot / "scene.json", [shot / "tex" / ".." / "extra.bin"])
    assert [e.path for e in manifest.entries] == ["scene.json", "extra.bin"]


@pytest.mark.parametrize("dep", ["../outside.png", "/etc/passwd", "tex/../../outside.png"])
async def test_scanned_reference_outside_the_folder_is_rejected(shot, dep):
    with pytest.raises(SubmissionError, match="outside the scene folder"):
        await build_manifest(shot / "scene.json", scanner=FakeScanner([dep]))


async def test_missing_asset_is_named(shot):
    with pytest.raises(SubmissionError, match=r"missing\.png does not exist"):
        await build_manifest(shot / "scene.json", [shot / "missing.png"])


async def test_missing_scanned_dependency_is_named(shot):
    with pytest.raises(SubmissionError, match=r"gone\.png does not exist"):
        await build_manifest(shot / "scene.json", scanner=FakeScanner(["gone.png"]))


async def test_missing_scene_and_directory_scene(shot):
    with pytest.raises(SubmissionError, match="does not exist; give the path of the scene file"):
        await build_manifest(shot / "nope.json")
    with pytest.raises(SubmissionError, match="is a directory"):
        await build_manifest(shot)


async def test_scanner_package_errors_become_submission_errors(shot):
    base = pytest.importorskip("render_server.packages.base")
    scanner = FakeScanner(error=base.MissingDependencyError("missing file 'wood.jpg'"))
    with pytest.raises(SubmissionError, match="cannot submit scene.json: missing file 'wood.jpg'"):
        await build_manifest(shot / "scene.json", scanner=scanner)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("builtin", ("builtin", "")),
        ("povray>=3.7", ("povray", ">=3.7")),
        ("Blender == 4.1.*", ("blender", "==4.1.*")),
        ("povray>=3.7,<4", ("povray", ">=3.7,<4")),
    ],
)
def test_parse_package_spec(text, parsed):
    assert parse_package_spec(text) == parsed


@pytest.mark.parametrize("text", ["", ">=3.7", "povray 3.7", "povray>=three"])
def test_parse_package_spec_rejects_bad_specs(text):
    with pytest.raises(
        SubmissionError, match=r"bad package requirement .*(use forms like|add an operator)"
    ):
        parse_package_spec(text)


async def test_job_body_follows_the_api_contract(shot):
    manifest = await build_manifest(shot / "scene.json")
    options = SubmitOptions(
        package="povray>=3.7",
        frames="1-24",
        chunk_size=4,
        width=640,
        height=480,
        tags=("linux",),
        site="paris",
        forward=False,
        owner="ana",
    )
    body = build_job_body(shot / "scene.json", manifest, options)
    assert body["name"] == "scene"
    assert body["scene"] == "scene.json"
    assert body["manifest"] == manifest.to_json()
    assert body["profile"] == {
        "package": "povray",
        "version": ">=3.7",
        "min_memory_mb": 0,
        "min_cores": 1,
        "gpu": False,
        "tags": ["linux"],
        "max_servers": 0,
        "task_timeout_s": 3600.0,
        "max_attempts": 3,
        "engine": "",
    }
    assert body["settings"] == {"width": 640, "height": 480}
    assert (body["site"], body["forward"], body["owner"]) == ("paris", False, "ana")
    assert (body["frames"], body["chunk_size"], body["priority"]) == ("1-24", 4, 50)


def test_symlink_escaping_the_scene_folder_is_refused(tmp_path: Path) -> None:
    from spillway.client.submission import SubmissionError, manifest_from_files

    outside = tmp_path / "secret.txt"
    outside.write_text("not for the farm")
    scene_dir = tmp_path / "scene"
    scene_dir.mkdir()
    scene = scene_dir / "scene.json"
    scene.write_text("{}")
    (scene_dir / "tex.png").symlink_to(outside)
    with pytest.raises(SubmissionError, match="symlink"):
        manifest_from_files(scene, assets=[scene_dir / "tex.png"])


def test_a_wait_long_polls_at_the_interval_and_paces_an_agent_that_answers_at_once() -> None:
    from spillway.client.submission import long_poll_s, rest_after

    # Each request may be held for the interval (the agent answers at the job's end), at
    # most the agent's limit; after a held answer the next request goes at once.
    assert (long_poll_s(1.0), long_poll_s(0.01), long_poll_s(600.0)) == (1.0, 0.01, 30.0)
    assert rest_after(1.0, 1.02) == 0.0
    # An agent that predates long polls answers at once: ask again after the interval.
    assert rest_after(1.0, 0.25) == 0.75
