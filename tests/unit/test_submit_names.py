"""The CLI refuses asset names the agent would refuse, before it uploads anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spillway.client.submission import SubmissionError, manifest_from_files


def test_a_non_utf8_asset_name_is_refused_before_upload(tmp_path: Path) -> None:
    scene = tmp_path / "scene.json"
    scene.write_text("{}")
    latin1 = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.png"))
    Path(latin1).write_bytes(b"png")
    with pytest.raises(SubmissionError, match=r"caf\\udce9\.png.*not valid UTF-8.*rename"):
        manifest_from_files(scene, assets=[Path(latin1)])


def test_an_asset_name_longer_than_a_file_system_allows_is_refused(tmp_path: Path) -> None:
    scene = tmp_path / "scene.json"
    scene.write_text("{}")
    deep = (
        tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 200) / ("g" * 200) / ("h" * 200) / ("i" * 200)
    )
    deep.mkdir(parents=True)
    (deep / "a.png").write_bytes(b"png")
    with pytest.raises(SubmissionError, match="longer than 1024 bytes"):
        manifest_from_files(scene, assets=[deep / "a.png"])
    assert manifest_from_files(scene).entries[0].path == "scene.json"
