"""Per-host asset cache: blobs fetched from the agent once, kept by sha256."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from pathlib import Path

import aiohttp


class CacheError(Exception):
    """An asset could not be fetched or verified."""


class AssetCache:
    def __init__(
        self, root: Path, session: aiohttp.ClientSession, agent_url: str, token: str
    ) -> None:
        self.root = root
        self._session = session
        self._agent_url = agent_url.rstrip("/")
        self._token = token
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetched_bytes = 0
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    async def ensure(self, sha256: str) -> Path:
        """The cached blob's path, downloading and verifying it first if needed."""
        path = self.path_for(sha256)
        if path.is_file():
            return path
        lock = self._locks.setdefault(sha256, asyncio.Lock())
        async with lock:
            if not path.is_file():
                await self._download(sha256, path)
        return path

    async def _download(self, sha256: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
        h = hashlib.sha256()
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        url = f"{self._agent_url}/api/v1/blobs/{sha256}"
        try:
            async with self._session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=600)
            ) as resp:
                if resp.status != 200:
                    raise CacheError(f"agent answered {resp.status} for asset {sha256}")
                with tmp.open("wb") as fh:
                    async for block in resp.content.iter_chunked(1 << 16):
                        h.update(block)
                        fh.write(block)
                        self.fetched_bytes += len(block)
            if h.hexdigest() != sha256:
                raise CacheError(
                    f"asset {sha256} arrived corrupted (hash {h.hexdigest()}); it will be fetched again"
                )
            os.replace(tmp, dest)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CacheError(f"cannot fetch asset {sha256}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def link_into(self, sha256: str, dest: Path) -> None:
        """Place a cached blob at dest (hard link when possible, else copy)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = self.path_for(sha256)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
