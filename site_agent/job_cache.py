"""A cache of the parts of jobs that never change after submission (report path reads)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from .store.records import JobRecord


class JobReads(Protocol):
    async def get_job(self, job_id: str) -> JobRecord | None: ...


class JobCache:
    """Recently used jobs, for the parts that never change after submission.

    Reports and frame uploads need a job's name, output pattern and profile for
    every task; reading them from the store each time was a query per report.
    Concurrent misses for one job share one read: when a job starts on hundreds
    of servers at once, their first reports arrive together.
    Callers must not use the cached state, placement, timestamps or frame spec (a job's
    frame spec shrinks when chunks are withdrawn from it, see :mod:`.lifecycle.reclaim`).
    """

    def __init__(self, store: JobReads, *, size: int = 1024) -> None:
        self._store = store
        self._size = size
        self._jobs: dict[str, JobRecord] = {}
        self._loading: dict[str, asyncio.Future[JobRecord | None]] = {}

    async def get(self, job_id: str) -> JobRecord | None:
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        loading = self._loading.get(job_id)
        if loading is not None:
            try:
                return await asyncio.shield(loading)
            except Exception:  # noqa: BLE001 - the shared read failed: try on our own
                return await self._store.get_job(job_id)
        loading = self._loading[job_id] = asyncio.get_running_loop().create_future()
        try:
            job = await self._store.get_job(job_id)
        except BaseException as exc:
            # Waiters retry on their own; a cancelled loader must not cancel them.
            loading.set_exception(
                exc if isinstance(exc, Exception) else RuntimeError("job read cancelled")
            )
            loading.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            del self._loading[job_id]
        if job is not None:
            if len(self._jobs) >= self._size:
                del self._jobs[next(iter(self._jobs))]  # oldest first: dicts keep insertion order
            self._jobs[job_id] = job
        loading.set_result(job)
        return job
