"""The render-server process: logging, its identity key, signals, and the daemon's life."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

from .children import watch_children_with_pidfds
from .daemon import RefusedError, RenderServer
from .identity import IdentityError, default_state_dir, load_or_create_key
from .probe import probe_host
from .probe_cache import ProbeCache, default_probe_cache
from .reaper import Reaper, reaper_supported

log = logging.getLogger(__name__)


def run_render_server(
    *,
    agent_url: str,
    name: str | None,
    slots: int,
    tags: list[str],
    token: str,
    cache_dir: Path | None,
    work_dir: Path | None,
    packages: set[str] | None = None,
    state_dir: Path | None = None,
) -> int:
    """Run a render server until interrupted; returns a process exit code.

    The first SIGTERM/SIGINT stops it: running renders are killed and their tasks
    handed back (the agent requeues them once the connection is gone for
    ``heartbeat_timeout``). A second signal exits at once.
    """
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    name = name or socket.gethostname()
    try:
        key = load_or_create_key(state_dir or default_state_dir(name))
    except IdentityError as exc:
        print(f"spillway: error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(
        _main(
            agent_url=agent_url,
            name=name,
            slots=slots,
            tags=tags,
            token=token,
            cache_dir=cache_dir or Path.home() / ".cache" / "spillway" / name,
            work_dir=work_dir,
            packages=packages,
            key=key,
        )
    )


def _stop_on_signals(main: asyncio.Task[object] | None) -> None:
    """The first SIGTERM/SIGINT cancels ``main`` (a graceful stop); a second exits at once."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(sig: signal.Signals) -> None:
        if received:
            log.warning("%s received again: exiting without cleaning up", sig.name)
            os._exit(128 + sig.value)
        received.append(sig.value)
        log.info("%s received: stopping (send it again to exit at once)", sig.name)
        if main is not None:
            main.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


async def _main(
    *,
    agent_url: str,
    name: str,
    slots: int,
    tags: list[str],
    token: str,
    cache_dir: Path,
    work_dir: Path | None,
    packages: set[str] | None,
    key: str,
) -> int:
    watch_children_with_pidfds()
    async with contextlib.AsyncExitStack() as stack:
        renderer_env = await _keep_reaper(stack)
        probes = ProbeCache(default_probe_cache())
        host = await probe_host(packages=packages, capture=probes)
        probes.save()
        log.info(
            "render server %s: %d cores, %d MiB, packages %s, features %s",
            name,
            host.cores,
            host.memory_mb,
            host.packages,
            host.features or "none",
        )
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"spillway-{name}-"))
        server = RenderServer(
            agent_url=agent_url,
            name=name,
            slots=slots,
            tags=tags,
            token=token,
            cache_dir=cache_dir,
            work_dir=work_dir or Path(tmp),
            host=host,
            key=key,
            renderer_env=renderer_env,
        )
        _stop_on_signals(asyncio.current_task())
        try:
            await server.run()
        except RefusedError as exc:
            print(f"spillway: error: the agent refused this render server: {exc}", file=sys.stderr)
            return 2
        except asyncio.CancelledError:
            await server.shutdown()
            return 0
    return 0


async def _keep_reaper(stack: contextlib.AsyncExitStack) -> dict[str, str]:
    """Keep the renderers' reaper running until ``stack`` closes; what renderers add to
    their environment (nothing where there can be no reaper)."""
    if not reaper_supported():
        log.warning("no /proc here: a killed render server leaves its renderers running")
        return {}
    reaper = Reaper()
    await stack.enter_async_context(reaper.running())
    return reaper.env
