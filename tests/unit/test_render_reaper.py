"""The renderers' reaper kills what a dead render server leaves running, and nothing else."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from render_server import reaper
from render_server.reaper import MARKER_ENV, RESCAN_DELAYS_S, STOPPING, marked_processes

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/environ").exists(), reason="the reaper finds renderers through /proc"
)

# A stand-in render server: starts the reaper, then two "renderers" in sessions of their
# own (one marked, one not), prints their pids and the reaper's, and waits to be killed.
SERVER = """
import asyncio, os, sys
from render_server.reaper import Reaper

async def main():
    reaper = Reaper()
    await reaper.start()
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    marked = await asyncio.create_subprocess_exec(
        *sleeper, env={**os.environ, **reaper.env}, start_new_session=True
    )
    # The marked renderer's own child, in its process group, without the marker.
    grandchild = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import os, subprocess, sys, time; "
        "env = {k: v for k, v in os.environ.items() if k != 'SPILLWAY_RENDERER_OF'}; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], env=env); "
        "print(p.pid, flush=True); time.sleep(120)",
        env={**os.environ, **reaper.env}, start_new_session=True, stdout=asyncio.subprocess.PIPE,
    )
    inner = int((await grandchild.stdout.readline()).decode())
    other = await asyncio.create_subprocess_exec(*sleeper, start_new_session=True)
    print(marked.pid, grandchild.pid, inner, other.pid, reaper._proc.pid, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_a_sigkilled_render_server_s_renderers_and_their_groups_are_killed() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert server.stdout is not None
        marked, renderer, inner, other, reaper = map(int, server.stdout.readline().split())
        assert all(_alive(p) for p in (marked, renderer, inner, other, reaper))
        # The whole group of the render server, as a supervisor that kills a group would:
        # the reaper, in its own session, survives it and does its work.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
        assert _wait_gone([marked, renderer, inner], 10) == [], "a renderer outlived its server"
        assert _wait_gone([reaper], 10) == [], "the reaper did not end after its sweep"
        assert _alive(other), "an unmarked process was killed"
    finally:
        if "other" in locals():
            os.kill(other, signal.SIGKILL)
        if server.poll() is None:
            server.kill()
            server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


def test_marked_processes_match_the_whole_marker_only(tmp_path: Path) -> None:
    env = {**os.environ, MARKER_ENV: "abc123"}
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    exact = subprocess.Popen(sleeper, env=env)
    longer = subprocess.Popen(sleeper, env={**os.environ, MARKER_ENV: "abc1234"})
    try:
        found = marked_processes("abc123")
        assert exact.pid in found
        assert longer.pid not in found
    finally:
        for proc in (exact, longer):
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize(
    ("said", "looks"),
    [(b"", 1 + len(RESCAN_DELAYS_S)), (STOPPING, 1)],
    ids=["server-died", "graceful-stop"],
)
def test_the_reaper_looks_again_only_when_the_server_did_not_say_it_stops(
    monkeypatch: pytest.MonkeyPatch, said: bytes, looks: int
) -> None:
    """A dead server may have left a spawn under way (so the reaper looks again after a
    while); a graceful stop says so first, and the reaper sweeps once and exits."""
    sweeps: list[str] = []
    monkeypatch.setattr(reaper, "sweep", lambda marker: sweeps.append(marker) or 0)
    monkeypatch.setattr(reaper.time, "sleep", lambda _s: None)
    monkeypatch.setattr(reaper.signal, "signal", lambda *_: None)  # not this test's SIGINT
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(said)))
    assert reaper.main(["m"]) == 0
    assert sweeps == ["m"] * looks
