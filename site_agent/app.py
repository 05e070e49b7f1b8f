"""aiohttp application wiring and the ``spillway agent`` entry point."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from . import api, render_endpoint
from .appkeys import CONFIG, SITE
from .config import ConfigError, SiteConfig, load_config
from .http_errors import error_middleware
from .openapi import openapi_document
from .site import SiteAgent
from .store import open_store
from .store.base import StoreError

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).parent / "web"
SiteExtension = Callable[[web.Application, SiteAgent], Awaitable[None]]
"""Run once the site has recovered (e.g. federation); may raise ConfigError to stop the agent."""


def build_app(config: SiteConfig, extensions: Sequence[SiteExtension] = ()) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=config.limits.max_request_mb * 1024 * 1024
    )
    app[CONFIG] = config
    app.add_routes(api.routes)
    app.router.add_get("/ws/render-server", render_endpoint.websocket)
    app.router.add_put(
        "/api/v1/servers/{server_id}/tasks/{task_id}/attempts/{attempt}/frames/{frame}",
        render_endpoint.upload_frame,
    )
    app.router.add_get("/api/v1/openapi.json", _openapi)
    app.router.add_get("/", _monitor_page)
    app.cleanup_ctx.append(functools.partial(_site_lifecycle, extensions=tuple(extensions)))
    return app


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def _monitor_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html")


async def _site_lifecycle(
    app: web.Application, extensions: Sequence[SiteExtension] = ()
) -> AsyncIterator[None]:
    config: SiteConfig = app[CONFIG]
    store = await open_store(config.database, base_dir=config.base_dir)
    site = SiteAgent(config, store)
    app[SITE] = site
    await site.recover()
    for extension in extensions:
        await extension(app, site)
    if not config.auth.client_tokens or not config.auth.server_token:
        log.warning(
            "no client/server tokens configured: accepting unauthenticated clients and render servers "
            "on loopback only"
        )
    tasks = [
        asyncio.create_task(site.dispatcher.run(), name="dispatcher"),
        asyncio.create_task(site.monitor.run(), name="heartbeat-monitor"),
    ]
    log.info(
        "site %s ready at %s (database %s, storage %s)",
        config.name,
        config.url,
        _redact(config.database),
        config.storage,
    )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if site.federation is not None:
            await site.federation.close()
        for conn in site.connections.all():
            await conn.ws.close()
        # Reports already queued (frames answered or about to be) are written before the store closes.
        await site.lifecycle.close()
        await store.close()


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


def run_agent(config_path: Path, extensions: Sequence[SiteExtension] = ()) -> int:
    """Run a site agent until interrupted; returns a process exit code."""
    setup_logging()
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"spillway: error: {exc}", file=sys.stderr)
        return 2
    try:
        web.run_app(
            build_app(config, extensions),
            host=config.host,
            port=config.port,
            print=None,
            handle_signals=True,
            shutdown_timeout=5,
            loop=new_event_loop(),
        )
    except (StoreError, ConfigError) as exc:
        print(f"spillway: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"spillway: error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def _conforms(site: SiteAgent) -> render_endpoint.RenderSite:
    return site  # mypy checks here that the site offers what the render-server endpoint uses
