"""Package probe results kept across render-server starts (render_server.probe_cache),
with real programs run as real child processes."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from render_server.probe import probe_host
from render_server.probe_cache import ProbeCache, default_probe_cache


def _program(path: Path, *, version: str, status: int = 0) -> Path:
    """A shell script printing ``version`` and counting its runs in ``path``.runs."""
    path.write_text(f'#!/bin/sh\necho run >> "{path}.runs"\necho "Fake {version}"\nexit {status}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _runs(program: Path) -> int:
    counter = Path(f"{program}.runs")
    return len(counter.read_text().splitlines()) if counter.exists() else 0


async def test_a_second_start_reads_the_probe_instead_of_running_it(tmp_path: Path) -> None:
    program = _program(tmp_path / "fake", version="1.2")
    cache_file = tmp_path / "cache" / "probes.json"

    first = ProbeCache(cache_file)
    assert await first([str(program), "--version"], limit_s=10) == (0, "Fake 1.2\n")
    first.save()
    second = ProbeCache(cache_file)
    assert await second([str(program), "--version"], limit_s=10) == (0, "Fake 1.2\n")

    assert (_runs(program), first.runs, second.runs) == (1, 1, 0)


async def test_other_arguments_are_another_probe(tmp_path: Path) -> None:
    program = _program(tmp_path / "fake", version="1.2")
    cache = ProbeCache(tmp_path / "probes.json")
    await cache([str(program), "--version"], limit_s=10)
    await cache([str(program), "--features"], limit_s=10)
    await cache([str(program), "--version"], limit_s=10)
    assert _runs(program) == 2


async def test_a_replaced_program_is_probed_again(tmp_path: Path) -> None:
    program = _program(tmp_path / "fake", version="1.2")
    cache_file = tmp_path / "probes.json"
    first = ProbeCache(cache_file)
    await first([str(program), "--version"], limit_s=10)
    first.save()

    # An upgrade writes a new file in the program's place (new inode, size and times).
    _program(tmp_path / "new", version="1.3.1")
    os.replace(tmp_path / "new", program)
    second = ProbeCache(cache_file)
    assert await second([str(program), "--version"], limit_s=10) == (0, "Fake 1.3.1\n")
    second.save()
    assert second.runs == 1
    third = ProbeCache(cache_file)
    assert await third([str(program), "--version"], limit_s=10) == (0, "Fake 1.3.1\n")
    assert third.runs == 0


async def test_a_failed_probe_is_not_kept(tmp_path: Path) -> None:
    program = _program(tmp_path / "fake", version="1.2", status=3)
    cache_file = tmp_path / "probes.json"
    first = ProbeCache(cache_file)
    assert await first([str(program), "--version"], limit_s=10) == (3, "Fake 1.2\n")
    first.save()
    assert not cache_file.exists()
    second = ProbeCache(cache_file)
    await second([str(program), "--version"], limit_s=10)
    assert second.runs == 1


async def test_a_missing_program_answers_none_and_keeps_nothing(tmp_path: Path) -> None:
    cache_file = tmp_path / "probes.json"
    cache = ProbeCache(cache_file)
    assert await cache([str(tmp_path / "absent"), "--version"], limit_s=10) is None
    cache.save()
    assert not cache_file.exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": 3}'])
async def test_an_unreadable_file_counts_as_empty(tmp_path: Path, content: str) -> None:
    program = _program(tmp_path / "fake", version="1.2")
    cache_file = tmp_path / "probes.json"
    cache_file.write_text(content)
    cache = ProbeCache(cache_file)
    assert await cache([str(program), "--version"], limit_s=10) == (0, "Fake 1.2\n")
    cache.save()
    assert ProbeCache(cache_file)._entries  # rewritten whole, readable again


async def test_an_unwritable_folder_only_loses_the_cache(tmp_path: Path) -> None:
    program = _program(tmp_path / "fake", version="1.2")
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = ProbeCache(blocker / "probes.json")  # its folder cannot be made
    assert await cache([str(program), "--version"], limit_s=10) == (0, "Fake 1.2\n")
    cache.save()  # logs, does not raise
    assert not (blocker / "probes.json").exists()


def test_the_file_lives_under_xdg_cache_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/cache")
    assert default_probe_cache() == Path("/srv/cache/spillway/package-probes.json")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_probe_cache() == Path.home() / ".cache" / "spillway" / "package-probes.json"


@pytest.mark.skipif(
    shutil.which("blender") is None or shutil.which("povray") is None,
    reason="needs Blender and POV-Ray installed",
)
async def test_the_real_packages_probe_the_same_from_the_file(tmp_path: Path) -> None:
    cache_file = tmp_path / "probes.json"
    direct = await probe_host()
    first = ProbeCache(cache_file)
    probed = await probe_host(capture=first)
    first.save()
    second = ProbeCache(cache_file)
    cached = await probe_host(capture=second)

    assert first.runs == 3  # povray --version, blender --version, Blender's feature check
    assert second.runs == 0
    assert cached.packages == probed.packages == direct.packages
    assert {"povray", "blender"} <= set(cached.packages)
    assert cached.features == probed.features == direct.features
