"""The render server's asset cache against a real HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from render_server.cache import AssetCache, CacheError

GOOD = b"texture bytes" * 100
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
BAD_SHA = hashlib.sha256(b"what was promised").hexdigest()


async def test_fetches_each_blob_once_and_refuses_corrupted_ones(tmp_path: Path) -> None:
    hits: dict[str, int] = {}

    async def blob(request: web.Request) -> web.Response:
        sha = request.match_info["sha"]
        hits[sha] = hits.get(sha, 0) + 1
        assert request.headers.get("Authorization") == "Bearer enroll"
        await asyncio.sleep(0.05)  # let concurrent requests pile up
        if sha == GOOD_SHA:
            return web.Response(body=GOOD)
        if sha == BAD_SHA:
            return web.Response(body=b"something else")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/api/v1/blobs/{sha}", blob)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        cache = AssetCache(
            tmp_path / "cache", session, str(server.make_url("/")).rstrip("/"), "enroll"
        )
        paths = await asyncio.gather(*(cache.ensure(GOOD_SHA) for _ in range(5)))
        assert {p.read_bytes() for p in paths} == {GOOD}
        assert hits[GOOD_SHA] == 1, "concurrent tasks must share one download"
        await cache.ensure(GOOD_SHA)
        assert hits[GOOD_SHA] == 1, "a cached blob is not fetched again"

        with pytest.raises(CacheError, match="corrupted"):
            await cache.ensure(BAD_SHA)
        assert not cache.path_for(BAD_SHA).exists()
        with pytest.raises(CacheError, match="404"):
            await cache.ensure("0" * 64)
        leftovers = [p.name for p in (tmp_path / "cache").rglob("*.part")]
        assert leftovers == []

        cache.link_into(GOOD_SHA, tmp_path / "work" / "textures" / "a.png")
        assert (tmp_path / "work" / "textures" / "a.png").read_bytes() == GOOD
