"""What a site listens on for its peers: the ``/fed/v1`` HTTPS app and, with
``[federation] blob_port``, the threaded blob listener beside it
(:mod:`federation.blob_listener`), both under the federation CA's server context;
and the replay guard's upkeep, which forgets message ids once no peer can send them
again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from federation.api import (
    BLOBS,
    FederationEndpoints,
    blob_listener_handler,
    build_federation_app,
    frame_listener_handler,
)
from federation.blob_listener import BlobListener
from federation.certs import TlsContexts
from federation.peers import FederationConfig
from site_agent.store.base import StoreError

__all__ = ["SEEN_PRUNE_INTERVAL_S", "SEEN_RETENTION_S", "Listeners", "prune_seen_forever"]

log = logging.getLogger(__name__)

SEEN_RETENTION_S = 7 * 86400.0
SEEN_PRUNE_INTERVAL_S = 3600.0


class Listeners:
    """The site's federation listeners; ``await start(endpoints)``, ``await close()``."""

    def __init__(self, name: str, config: FederationConfig, tls: TlsContexts) -> None:
        self.name, self.config, self.tls = name, config, tls
        self._runner: web.AppRunner | None = None
        self._blob_listener: BlobListener | None = None

    async def start(self, endpoints: FederationEndpoints) -> None:
        """Listen on ``listen`` (and ``blob_port``); raises OSError naming what is taken."""
        app = build_federation_app(endpoints)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = self.config.listen_address
        await web.TCPSite(self._runner, host, port, ssl_context=self.tls.server_context()).start()
        if self.config.blob_port is not None:
            self._blob_listener = BlobListener(
                host,
                self.config.blob_port,
                self.tls.server_context(),
                blob_listener_handler(app),
                frames=frame_listener_handler(app),
            )
            try:
                blob_port = app[BLOBS].stream_port = await self._blob_listener.start()
            except OSError as exc:
                raise OSError(
                    exc.errno, f"blob_port {self.config.blob_port}: {exc.strerror or exc}"
                ) from exc
            log.info("site %s blob listener on %s:%d", self.name, host, blob_port)
        log.info(
            "site %s federation listening on https://%s:%d (peers: %s)",
            self.name,
            host,
            port,
            ", ".join(p.name for p in self.config.peers) or "none",
        )

    async def close(self) -> None:
        """Stop listening; idempotent."""
        if self._blob_listener is not None:
            await self._blob_listener.close()
            self._blob_listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class SeenIds(Protocol):
    async def prune_seen(self, *, before: float) -> int: ...


async def prune_seen_forever(seen: SeenIds, clock: Callable[[], float]) -> None:
    """Keep the replay guard's table bounded.

    A message older than the envelope's time window is refused as expired
    anyway, so its id only needs remembering for that window; ids are kept
    for SEEN_RETENTION_S (far longer) because every federation message is
    also idempotent in effect (offer and commit keys, notification epochs).
    """
    while True:
        try:
            pruned = await seen.prune_seen(before=clock() - SEEN_RETENTION_S)
            if pruned:
                log.info(
                    "forgot %d federation message ids older than %.0f days",
                    pruned,
                    SEEN_RETENTION_S / 86400,
                )
        except StoreError as exc:
            log.warning("could not prune seen federation message ids: %s", exc)
        await asyncio.sleep(SEEN_PRUNE_INTERVAL_S)
