"""Short helper commands (version probes, Blender's dependency scan), bounded in time."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

__all__ = ["Capture", "run_capture"]


class Capture(Protocol):
    """Runs a short command as :func:`run_capture` does (or answers it as it would)."""

    async def __call__(self, argv: Sequence[str], *, limit_s: float) -> tuple[int, str] | None: ...


async def run_capture(argv: Sequence[str], *, limit_s: float) -> tuple[int, str] | None:
    """Run a short command; return (exit status, stdout+stderr text) or None if it can't run."""
    import asyncio  # here: `spillway submit` loads this module but runs nothing with it

    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        await _kill(proc)
        return None
    except asyncio.CancelledError:
        await _kill(proc)
        raise
    return proc.returncode or 0, out.decode("utf-8", "replace")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()
