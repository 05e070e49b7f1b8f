"""Clients of the soak: several submitters through ``spillway.client``, each with a few jobs in flight.

A submitter keeps at most ``in_flight`` of its jobs unfinished, so the backlog
stays bounded however slow the faults make the farm. A refused or broken
submission (the agent is down, the connection dropped mid-request) is tried
again as a new submission; a job the agent created but could not acknowledge
is still checked at the end, because the check reads every job in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

from spillway.client import AgentClient, SpillwayClientError, SubmitOptions, submit_scene
from spillway.core.frames import parse_frames

from .common import SCENE

log = logging.getLogger("soak")
TERMINAL = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmittedJob:
    """A job the agent acknowledged (201) to a client."""

    id: str
    client: int
    frames: tuple[int, ...]
    forwarded: bool


@dataclass
class ClientStats:
    submitted: list[SubmittedJob] = field(default_factory=list)
    refused: int = 0  # submissions that failed (agent down, connection lost) and were retried


class Submitter:
    """One client submitting small built-in-tracer jobs until told to stop."""

    def __init__(
        self,
        number: int,
        url: str,
        stats: ClientStats,
        *,
        seed: int,
        in_flight: int = 2,
        remote_share: float = 0.0,
    ) -> None:
        self.number = number
        self.url = url
        self.stats = stats
        self.rng = random.Random(seed * 1000 + number)
        self.in_flight = in_flight
        self.remote_share = remote_share
        self._open: list[str] = []
        self._count = 0

    async def run(self, stopping: asyncio.Event) -> None:
        async with AgentClient(self.url, timeout_s=15) as client:
            while not stopping.is_set():
                await self._forget_finished(client)
                if len(self._open) >= self.in_flight:
                    await _sleep_unless(stopping, 1.0)
                    continue
                if not await self._submit_one(client):
                    await _sleep_unless(stopping, self.rng.uniform(0.5, 2.0))
                    continue
                await _sleep_unless(stopping, self.rng.uniform(0.2, 2.0))

    async def _forget_finished(self, client: AgentClient) -> None:
        still_open = []
        for job_id in self._open:
            try:
                state = (await client.job(job_id))["job"]["state"]
            except SpillwayClientError:
                state = "unknown"  # the agent is down: ask again later
            if state not in TERMINAL:
                still_open.append(job_id)
        self._open = still_open

    async def _submit_one(self, client: AgentClient) -> bool:
        self._count += 1
        first = self.rng.randint(1, 20)
        spec = f"{first}-{first + self.rng.randint(2, 11)}"
        forwarded = self.rng.random() < self.remote_share
        options = SubmitOptions(
            package="builtin",
            frames=spec,
            chunk_size=self.rng.randint(1, 3),
            name=f"soak-c{self.number}-{self._count}",
            site="facility" if forwarded else None,
            width=32,
            height=24,
        )
        try:
            result = await submit_scene(client, SCENE, options)
        except SpillwayClientError as exc:
            self.stats.refused += 1
            log.info("client %d: submission failed (%s); trying again", self.number, exc)
            return False
        job = result.job.get("job", result.job)
        self.stats.submitted.append(
            SubmittedJob(
                id=str(job["id"]),
                client=self.number,
                frames=parse_frames(spec),
                forwarded=forwarded,
            )
        )
        self._open.append(str(job["id"]))
        return True


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
