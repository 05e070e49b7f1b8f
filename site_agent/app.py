"""aiohttp application wiring and the ``spillway agent`` entry point."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from . import api, frame_api, log_api, monitor_api, render_endpoint, server_uploads, usage
from .appkeys import CONFIG, SITE
from .auth import check_client
from .config import AgentConfig, ConfigError, SiteConfig, load_config
from .http_errors import error_middleware
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .openapi import openapi_document
from .site import SiteAgent
from .store import open_store
from .store.base import Store, StoreError
from .workers import WorkerPool

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 5.0
"""How long requests in flight may take once a stop was asked for."""
FORCE_AFTER_S = 30.0
"""A graceful shutdown longer than this exits at once (as a second signal does)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SiteExtension = Callable[[web.Application, SiteAgent], Awaitable[None]]
"""Run once the site has recovered (e.g. federation); may raise ConfigError to stop the agent."""


def build_app(config: SiteConfig, extensions: Sequence[SiteExtension] = ()) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=config.limits.max_request_mb * 1024 * 1024
    )
    app[CONFIG] = config
    app.add_routes(api.routes)
    app.add_routes(log_api.routes)
    app.add_routes(usage.routes)
    app.add_routes(frame_api.routes)
    app.router.add_get("/ws/render-server", render_endpoint.websocket)
    app.router.add_put(
        "/api/v1/servers/{server_id}/tasks/{task_id}/attempts/{attempt}/frames/{frame}",
        server_uploads.upload_frame,
    )
    app.router.add_get("/api/v1/openapi.json", _openapi)
    app.router.add_get("/metrics", _metrics)
    app.add_routes(monitor_api.routes)
    app.on_shutdown.append(monitor_api.close_streams)
    app.cleanup_ctx.append(functools.partial(_site_lifecycle, extensions=tuple(extensions)))
    return app


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def _metrics(request: web.Request) -> web.Response:
    """Prometheus text format; the same client tokens as the API (scrapers send a bearer token)."""
    site = request.app[SITE]
    check_client(request, site.config.auth)
    body = await site.metrics.render()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


async def _site_lifecycle(
    app: web.Application, extensions: Sequence[SiteExtension] = ()
) -> AsyncIterator[None]:
    """Open the site, run it, close it; on a startup error close what was opened so far.

    The exit stack unwinds in reverse order of opening whether startup failed or
    the agent is stopping, so a failed start never leaves the database (whose
    SQLite driver runs a non-daemon thread) or a federation listener open.
    """
    config: SiteConfig = app[CONFIG]
    async with contextlib.AsyncExitStack() as stack:
        store = await open_store(config.database, base_dir=config.base_dir)
        stack.push_async_callback(store.close)
        site = _new_site(config, store)
        app[SITE] = site
        # Reports already queued (frames answered or about to be) are written before the store closes.
        stack.push_async_callback(site.lifecycle.close)
        stack.push_async_callback(_close_connections, site)
        stack.push_async_callback(_close_federation, site)
        stack.push_async_callback(_close_webhooks, site)
        await site.recover()
        if config.agent.workers:
            site.workers = WorkerPool(
                site,
                config.agent.workers,
                storage=config.storage,
                max_frame_bytes=site.storage.max_frame_bytes,
            )
            # Stopped before the connections close and the store does: their servers unregister.
            stack.push_async_callback(site.workers.close)
            await site.workers.start()
        for extension in extensions:
            await extension(app, site)
        if not config.auth.client_tokens or not config.auth.server_token:
            log.warning(
                "no client/server tokens configured: accepting unauthenticated clients and "
                "render servers on loopback only"
            )
        tasks = [
            asyncio.create_task(site.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(site.monitor.run(), name="heartbeat-monitor"),
        ]
        stack.push_async_callback(_stop_tasks, tasks)
        yield


def _new_site(config: SiteConfig, store: Store) -> SiteAgent:
    try:
        return SiteAgent(config, store)
    except OSError as exc:
        raise ConfigError(
            f"{config.source}: cannot use storage folder {exc.filename or config.storage}: "
            f"{exc.strerror or exc}"
        ) from exc


async def _stop_tasks(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close_federation(site: SiteAgent) -> None:
    if site.federation is not None:
        await site.federation.close()


async def _close_webhooks(site: SiteAgent) -> None:
    if site.webhooks is not None:
        await site.webhooks.close()


async def _close_connections(site: SiteAgent) -> None:
    for conn in site.connections.all():
        await conn.ws.close()


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{rest.split('@', 1)[1]}"
    return url


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (a dependency on Linux and macOS), the standard loop otherwise.

    With hundreds of render servers the agent's time goes to socket reads and writes,
    timers and task switches; uvloop gave 20-30 % more tasks a second in the dispatch
    benchmark (docs/benchmarks.md).
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_agent(
    config_path: Path, extensions: Sequence[SiteExtension] = (), *, workers: int | None = None
) -> int:
    """Run a site agent until SIGTERM or SIGINT; returns a process exit code.

    A startup error (config, database, storage, federation, listen address) is
    printed with its cause and gives exit status 1 (2 for an unreadable config
    file) once everything opened so far is closed. The first SIGTERM/SIGINT stops
    gracefully: no new connections, requests in flight get ``SHUTDOWN_TIMEOUT_S``,
    queued reports are written and the database closed; render servers keep their
    running tasks and report them to the agent when it is back. A second signal,
    or a shutdown longer than ``FORCE_AFTER_S``, exits at once. ``workers`` replaces the
    config's ``[agent] workers``.
    """
    setup_logging()
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"spillway: error: {exc}", file=sys.stderr)
        return 2
    if workers is not None:
        config = dataclasses.replace(config, agent=AgentConfig(workers=workers))
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_serve(config, extensions))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(config: SiteConfig, extensions: Sequence[SiteExtension]) -> int:
    runner = web.AppRunner(
        build_app(config, extensions), handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    stop = _StopSignals()
    try:
        code = await _start_and_wait(runner, config, stop)
    finally:
        try:
            async with asyncio.timeout(FORCE_AFTER_S):
                await runner.cleanup()
        except TimeoutError:
            log.error("shutdown took longer than %.0fs; exiting now", FORCE_AFTER_S)
            _force_exit(1)
        stop.remove()
    return code


async def _start_and_wait(runner: web.AppRunner, config: SiteConfig, stop: _StopSignals) -> int:
    try:
        if not await _unless_stopped(runner.setup(), stop):
            log.info("stopped during startup")
            return 1
    except (StoreError, ConfigError) as exc:
        print(f"spillway: error: {exc}", file=sys.stderr)
        return 1
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as exc:
        print(
            f"spillway: error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    log.info(
        "site %s ready at %s (database %s, storage %s)",
        config.name,
        config.url,
        _redact(config.database),
        config.storage,
    )
    signum = await stop.wait()
    log.info("%s received: shutting down (send it again to exit at once)", signum.name)
    return 0


async def _unless_stopped(step: Awaitable[None], stop: _StopSignals) -> bool:
    """Run a startup step; a stop signal meanwhile cancels it (what it opened unwinds). False then."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


class _StopSignals:
    """SIGTERM and SIGINT: the first asks for a graceful stop, the second forces an exit."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._received: asyncio.Future[signal.Signals] = self._loop.create_future()
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._received.done():
            log.warning("%s received again: exiting without a clean shutdown", sig.name)
            _force_exit(128 + sig.value)
        self._received.set_result(sig)

    async def wait(self) -> signal.Signals:
        return await asyncio.shield(self._received)

    def remove(self) -> None:
        for sig in STOP_SIGNALS:
            self._loop.remove_signal_handler(sig)


def _force_exit(code: int) -> None:
    # The forced path skips interpreter shutdown on purpose: the database driver's
    # non-daemon thread or a stuck close must not keep the process alive.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


def _conforms(site: SiteAgent) -> render_endpoint.RenderSite:
    return site  # mypy checks here that the site offers what the render-server endpoint uses
