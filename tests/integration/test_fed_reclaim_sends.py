"""Reclaims go out in the background, one at a time per peer: a peer that never answers
holds up only its own reclaims (real mutual TLS on loopback).

- facility-a: a TCP listener that accepts connections and never answers;
- facility-b: the federation API (:func:`federation.api.build_federation_app`) answering
  reclaims with real :class:`~federation.reclaim.Withdrawals`.

The origin's :class:`~federation.reclaim.Reclaimer` (real :class:`~federation.client.PeerClient`,
its reclaims recorded in ``fed_reclaims`` on SQLite and PostgreSQL, its jobs in memory)
asks both for chunks back: facility-b's answer is applied
while the connection to facility-a is still open and its reclaim still unanswered, and a
second reclaim for facility-a is not sent until the first one is over.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from federation.api import FederationEndpoints, build_federation_app
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert
from federation.client import PeerClient
from federation.peers import FederationConfig, PeerConfig
from federation.reclaim import Reclaimer, Withdrawals
from federation.store import FederationStore, OfferRow
from scheduler.profile import JobProfile
from site_agent.lifecycle import TransactionHook, WithdrawalHook
from site_agent.store.base import Store
from site_agent.store.records import JobRecord, JobState, TaskRecord

SITES = ("studio", "facility-a", "facility-b")


def fed_config(*peers: PeerConfig, tls: TlsFiles) -> FederationConfig:
    return FederationConfig(tls=tls, peers=peers, listen="127.0.0.1:0", overflow_after_s=None)


def make_job(job_id: str, **changes: Any) -> JobRecord:
    job = JobRecord(
        id=job_id,
        name=job_id,
        owner="artist",
        origin_site="studio",
        priority=50,
        profile=JobProfile(package="builtin"),
        frames="1-2",
        frame_count=2,
        chunk_size=1,
        scene="scene.json",
        manifest=(),
        output_name="frame",
        state=JobState.RUNNING,
        placement="local",
        created_at=0.0,
        updated_at=0.0,
    )
    return dataclasses.replace(job, **changes)


def tls_files(root: Path, site: str) -> TlsFiles:
    return TlsFiles(
        ca=root / "ca" / "ca.pem",
        cert=root / "certs" / f"{site}.pem",
        key=root / "certs" / f"{site}-key.pem",
    )


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    init_ca(tmp_path / "ca")
    for site in SITES:
        issue_site_cert(tmp_path / "ca", site, tmp_path / "certs")
    return tmp_path


class Silent:
    """A listener that accepts connections and never answers; counts them, open and closed."""

    def __init__(self) -> None:
        self.accepted = 0
        self.closed = 0
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while await reader.read(65536):  # never answers; EOF when the client gives up
                pass
        finally:
            self.closed += 1
            writer.close()

    @property
    def open(self) -> int:
        return self.accepted - self.closed


@pytest.fixture
async def silent() -> AsyncIterator[tuple[Silent, str]]:
    listener = Silent()
    server = await asyncio.start_server(listener.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield listener, f"https://127.0.0.1:{port}"
    finally:
        server.close()


class Accepted:
    """The peer's accepted jobs (OwnedJobs, WithdrawalRecords, ChunkWithdrawal): every
    chunk asked for is withdrawn, once per key."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, ...]] = {}

    async def owned_job(self, peer: PeerConfig, job_id: str) -> tuple[OfferRow, JobRecord]:
        origin_job_id = {"r2": "p2"}[job_id]
        offer = OfferRow(
            key=f"studio:{origin_job_id}:1",
            site=peer.name,
            origin_job_id=origin_job_id,
            epoch=1,
            body={},
            remote_job_id=job_id,
            created_at=0.0,
            committed_at=1.0,
        )
        return offer, make_job(job_id)

    async def answer(self, site: str, key: str) -> tuple[int, ...] | None:
        return self.answers.get((site, key))

    def withdrawal_hook(self, site: str, key: str, job_id: str, *, at: float) -> WithdrawalHook:
        async def hook(conn: Any, withdrawn: Sequence[int]) -> None:
            self.answers[(site, key)] = tuple(withdrawn)

        return hook

    async def withdraw_chunks(
        self, job_id: str, indices: Sequence[int], *, reason: str, at: float, record: Any
    ) -> tuple[int, ...]:
        await record(None, tuple(indices))
        return tuple(indices)


class Seen:
    def __init__(self) -> None:
        self.ids: set[tuple[str, str]] = set()

    async def seen(self, site: str, msg_id: str) -> bool:
        return (site, msg_id) in self.ids

    async def mark_seen(self, site: str, msg_id: str, *, at: float) -> None:
        self.ids.add((site, msg_id))


@pytest.fixture
async def answering(pki: Path) -> AsyncIterator[str]:
    """facility-b's federation API, answering reclaims from the studio."""
    studio = PeerConfig(name="studio", url="https://127.0.0.1:1")
    accepted = Accepted()
    endpoints = FederationEndpoints(
        name="facility-b",
        config=fed_config(studio, tls=tls_files(pki, "facility-b")),
        seen=Seen(),
        acceptance=None,  # type: ignore[arg-type]  # only reclaims are sent here
        results=None,  # type: ignore[arg-type]
        controls=None,  # type: ignore[arg-type]
        book=None,  # type: ignore[arg-type]
        blobs=SimpleNamespace(max_blob_bytes=1 << 20, partial_dir=pki / "partial"),  # type: ignore[arg-type]
        refused=lambda what: None,
        withdrawals=Withdrawals(jobs=accepted, rows=accepted, lifecycle=accepted),
    )
    app = build_federation_app(endpoints)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = TlsContexts(tls_files(pki, "facility-b")).server_context()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"https://{host}:{port}"
    finally:
        await runner.cleanup()


class Parts:
    """PartJobs and PartReclaims: split jobs j1 and j2 at the studio; p1 and p3 (of j1)
    at facility-a, p2 (of j2) at facility-b, each with two chunks its peer has not started."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs = {"j1": make_job("j1", split=True), "j2": make_job("j2", split=True)}
        for part, job, peer in (("p1", "j1", "facility-a"), ("p2", "j2", "facility-b")):
            self.jobs[part] = self.part(part, job, peer)
        self.jobs["p3"] = self.part("p3", "j1", "facility-a")
        self.reclaimed: list[tuple[str, tuple[int, ...]]] = []

    @staticmethod
    def part(part_id: str, job_id: str, peer: str) -> JobRecord:
        return make_job(
            part_id,
            placement=peer,
            placement_epoch=1,
            part_of=job_id,
            remote_job_id=f"r{part_id[1:]}",
        )

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        if job_id.startswith("j"):
            return []  # nothing waiting at the studio: its idle slots want work
        return [TaskRecord(id=i, job_id=job_id, index=i, frames=(i + 1,)) for i in range(2)]

    async def reclaim_part(
        self, part: JobRecord, withdrawn: Sequence[int], *, at: float, hook: TransactionHook
    ) -> tuple[TaskRecord, ...]:
        self.reclaimed.append((part.id, tuple(withdrawn)))
        async with self.store.transaction() as tx:
            await hook(tx.connection)
        return tuple(TaskRecord(id=9, job_id="j", index=i, frames=()) for i in withdrawn)


async def until(condition: Any) -> None:
    async with asyncio.timeout(10):  # a guard against hanging, not a speed check
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_peer_that_never_answers_holds_up_only_its_own_reclaims(
    pki: Path, silent: tuple[Silent, str], answering: str, store: Store
) -> None:
    listener, dead_url = silent
    peer_a = PeerConfig(name="facility-a", url=dead_url)
    peer_b = PeerConfig(name="facility-b", url=answering)
    client = PeerClient("studio", TlsContexts(tls_files(pki, "studio")))
    parts, rows = Parts(store), (await FederationStore.open(store.database)).reclaims
    back: list[int] = []
    reclaimer = Reclaimer(
        name="studio",
        config=fed_config(peer_a, peer_b, tls=tls_files(pki, "studio")),
        rows=rows,
        jobs=parts,
        lifecycle=parts,
        client=client,
        clock=lambda: 100.0,
        chunks_back=lambda: back.append(1),
    )
    try:
        jobs = parts.jobs
        # Job 1's reclaim goes to facility-a, which takes the connection and never answers.
        assert await reclaimer.rebalance(jobs["j1"], [jobs["p1"]], 1) == 1
        await until(lambda: listener.accepted == 1)
        # The caller (the split loop) went on at once: job 2's reclaim is asked and
        # answered by facility-b while facility-a's is still pending on its connection.
        assert await reclaimer.rebalance(jobs["j2"], [jobs["p2"]], 1) == 1
        await until(lambda: back == [1])  # the answer is applied: the split loop is told
        assert parts.reclaimed == [("p2", (1,))]
        assert (listener.accepted, listener.open) == (1, 1)
        states = {row.job_id: row.state for row in await rows.of_jobs(["p1", "p2"])}
        assert states == {"p1": "asked", "p2": "answered"}

        # Another reclaim for facility-a waits behind the first: one in flight per peer.
        await reclaimer.ask(jobs["p3"], [1])
        await reclaimer.resend()
        await asyncio.sleep(0.2)  # give a wrongly parallel send the time to connect
        assert (listener.accepted, listener.open) == (1, 1)
        assert reclaimer.sending("facility-a") and not reclaimer.sending("facility-b")
    finally:
        await reclaimer.close()
        await client.close()
    # Stopped, not answered: both stay recorded, to be sent again with their keys.
    assert sorted(row.job_id for row in await rows.asked()) == ["p1", "p3"]
