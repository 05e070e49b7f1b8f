"""The shared rule for names a job carries: UTF-8, lengths, no file/folder clash."""

from __future__ import annotations

import pytest

from spillway.core.checks import (
    bad_string,
    first_bad_string,
    manifest_path_problem,
    manifest_problem,
    path_clash,
)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("scene.json", None),
        ("café.png", None),
        ("\U0001f600.png", None),
        ("caf\udce9.png", "UTF-8"),
        ("\ud800", "UTF-8"),
        ("a\x00b", "NUL"),
    ],
)
def test_bad_string(value: str, problem: str | None) -> None:
    found = bad_string(value)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("tex/a.png", None),
        ("x" * 255, None),
        ("é" * 127 + "x", None),  # 255 bytes
        ("é" * 128, "longer than 255 bytes"),  # 256 bytes
        ("x" * 300 + ".png", "longer than 255 bytes"),
        ("/".join(["d" * 200] * 6), "longer than 1024 bytes"),
        ("a\tb", "control character"),
        ("caf\udce9.png", "UTF-8"),
    ],
)
def test_manifest_path_problem(path: str, problem: str | None) -> None:
    found = manifest_path_problem(path)
    assert found is None if problem is None else problem in (found or "")


def test_path_clash_finds_a_file_used_as_a_folder() -> None:
    assert path_clash(["scene.pov", "tex/a.png", "tex/b.png"]) is None
    assert path_clash(["tex", "tex/a.png"]) == ("tex", "tex/a.png")
    assert path_clash(["a/b", "a/b/c/d.png", "a/x"]) == ("a/b", "a/b/c/d.png")
    assert path_clash(["tex.png", "tex/a.png"]) is None
    message = manifest_problem(["scene.pov", "tex", "tex/a.png"])
    assert message is not None and "'tex'" in message and "rename" in message
    assert manifest_problem(["scene.pov", "maps/x.png"]) is None


def test_first_bad_string_names_where_it_is() -> None:
    body = {"name": "ok", "manifest": [{"path": "a"}, {"path": "b\udcff"}]}
    found = first_bad_string(body)
    assert found is not None and found[0] == "body.manifest[1].path"
    assert first_bad_string({"k\x00": 1}) is not None
    assert first_bad_string({"a": [1, 2.5, None, True, "fine"]}) is None
