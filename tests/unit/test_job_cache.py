"""JobCache: one store read per job, shared by concurrent misses (site_agent/reports.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from site_agent.job_cache import JobCache


class CountingStore:
    """Answers get_job after a loop hop, counting calls; fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures

    async def get_job(self, job_id: str) -> Any:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.calls <= self.failures:
            raise OSError("database went away")
        return None if job_id == "missing" else {"id": job_id}


async def test_concurrent_misses_share_one_read_and_later_gets_hit_the_cache() -> None:
    store = CountingStore()
    cache = JobCache(store)  # type: ignore[arg-type]
    jobs = await asyncio.gather(*(cache.get("j1") for _ in range(50)))
    assert jobs == [{"id": "j1"}] * 50
    assert await cache.get("j1") == {"id": "j1"}
    assert store.calls == 1


async def test_a_missing_job_is_not_cached() -> None:
    store = CountingStore()
    cache = JobCache(store)  # type: ignore[arg-type]
    assert await asyncio.gather(cache.get("missing"), cache.get("missing")) == [None, None]
    assert await cache.get("missing") is None
    assert store.calls == 2  # the shared read, then a fresh one


async def test_a_failed_shared_read_fails_its_caller_and_the_waiters_read_again() -> None:
    store = CountingStore(failures=1)
    cache = JobCache(store)  # type: ignore[arg-type]
    first, *others = await asyncio.gather(
        *(cache.get("j1") for _ in range(5)), return_exceptions=True
    )
    assert isinstance(first, OSError)
    assert others == [{"id": "j1"}] * 4
    assert await cache.get("j1") == {"id": "j1"}


async def test_a_cancelled_loader_does_not_cancel_the_waiters() -> None:
    store = CountingStore()
    cache = JobCache(store)  # type: ignore[arg-type]
    loader = asyncio.create_task(cache.get("j1"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cache.get("j1"))
    await asyncio.sleep(0)
    loader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loader
    assert await waiter == {"id": "j1"}
