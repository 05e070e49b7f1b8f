"""The render-package catalog: names, requirements and scanners shared by clients and render servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from render_server.packages.base import PackageError as AdapterPackageError
from render_server.packages.base import ScanError as AdapterScanError
from render_server.packages.base import registry
from scheduler.errors import ProfileError
from scheduler.profile import JobProfile
from spillway.client.submission import SubmissionError, choose_scanner, parse_package_spec
from spillway.client.submission import scanner_for as client_scanner_for
from spillway.packages import (
    PACKAGE_NAMES,
    PackageError,
    RequirementError,
    ScanError,
    UnknownPackageError,
    package_names,
    parse_requirement,
    scanner_for,
)
from spillway.packages.blender import BlenderScanner
from spillway.packages.builtin import BuiltinScanner
from spillway.packages.povray import PovrayScanner

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_catalog_names_every_render_server_adapter_in_probe_order() -> None:
    assert tuple(registry()) == PACKAGE_NAMES
    assert package_names() == frozenset({"builtin", "povray", "blender"})


def test_render_server_errors_are_the_catalogs() -> None:
    assert AdapterPackageError is PackageError and AdapterScanError is ScanError


@pytest.mark.parametrize(
    ("name", "kind"),
    [("builtin", BuiltinScanner), ("povray", PovrayScanner), ("blender", BlenderScanner)],
)
def test_scanner_for_each_package(name: str, kind: type) -> None:
    assert isinstance(scanner_for(name), kind)
    assert isinstance(client_scanner_for(name), kind)


def test_unknown_package_lists_the_known_ones() -> None:
    with pytest.raises(
        UnknownPackageError,
        match="unknown render package 'maya'; known packages: blender, builtin, povray",
    ) as info:
        scanner_for("maya")
    assert isinstance(info.value, PackageError) and isinstance(info.value, LookupError)
    assert client_scanner_for("maya") is None


def test_a_submission_s_scanner_and_the_note_owed_for_a_package_without_one() -> None:
    chosen, notes = choose_scanner("povray", True)
    assert isinstance(chosen, PovrayScanner) and notes == []
    assert choose_scanner("maya", True) == (
        None,
        [
            "no dependency scanner for package 'maya' here; sending only the scene "
            "and the --asset files"
        ],
    )
    assert choose_scanner("povray", False) == (None, [])
    assert choose_scanner("povray", None) == (None, [])
    own = BuiltinScanner()
    assert choose_scanner("povray", own) == (own, [])


@pytest.mark.parametrize(
    ("package", "scene"),
    [
        ("builtin", EXAMPLES / "textured" / "scene.json"),
        ("povray", EXAMPLES / "povray" / "scene.pov"),
    ],
)
async def test_adapters_scan_with_the_catalogs_scanner(package: str, scene: Path) -> None:
    found = await scanner_for(package).scan(scene)
    assert found, "the examples reference files"
    assert await registry()[package].scan(scene) == found


@pytest.mark.parametrize(
    "text",
    [
        "builtin",
        "  POVRAY >= 3.7 ",
        "blender>=3.0,<4",
        "builtin==1.*",
        ">=3.7",
        "povray>=3.x",
        "povray 3.7",
        "povray>=",
        "",
        "pov.ray",
        "povray>=3.7;",
    ],
)
def test_clients_and_the_scheduler_read_requirements_alike(text: str) -> None:
    """One syntax: the client's check and the scheduler's profile accept and reject the same text."""
    try:
        profile = JobProfile.from_requirement(text)
    except ProfileError as err:
        with pytest.raises(RequirementError) as info:
            parse_requirement(text)
        assert str(info.value) == str(err)
        with pytest.raises(SubmissionError) as client_info:
            parse_package_spec(text)
        assert str(client_info.value) == str(err)
    else:
        assert parse_package_spec(text) == (profile.package, profile.version)


def test_requirement_messages_say_how_to_fix_them() -> None:
    with pytest.raises(
        RequirementError, match="add an operator, e.g. povray>=3.7 or povray==3.7.*"
    ):
        parse_requirement("povray 3.7")
    with pytest.raises(RequirementError, match="bad package requirement 7: use forms like"):
        parse_requirement(7)
