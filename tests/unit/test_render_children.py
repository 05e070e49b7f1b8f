"""How the render server starts and watches its renderer processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh interpreter: the child watcher is process-wide state.
PIDFD_PROGRAM = """
import asyncio, sys
from render_server.children import watch_children_with_pidfds

async def main():
    installed = watch_children_with_pidfds()  # as the render server calls it: in its loop
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
    status = await proc.wait()
    print(installed, type(asyncio.get_child_watcher()).__name__, status)

asyncio.run(main())
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or sys.version_info >= (3, 12),
    reason="Python 3.12 watches with pidfds by itself; no pidfds off Linux",
)
def test_renderer_exits_are_watched_through_pidfds_without_a_thread_per_child() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PIDFD_PROGRAM], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "PidfdChildWatcher", "3"], out.stdout
