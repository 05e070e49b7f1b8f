"""The federation's own state in the site's resource database (the ``federation`` chain).

:class:`FederationStore` runs on the site's :class:`~site_agent.store.database.Database`
adapter (same connection pool, same SQL style, either backend) but owns its
tables and migrations: :meth:`FederationStore.open` applies the federation
migration chain before serving. Writes that must share a transaction with a
change to the site's jobs (re-placing a job, finishing a forwarded job) are
handed to the site as hooks made by :meth:`FederationStore.forward_state_hook`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from site_agent.lifecycle import TransactionHook
from site_agent.store.database import Connection, Database, Row
from site_agent.store.migrate import MigrationChain, apply_migrations

from . import queries as q
from .reclaim_rows import ReclaimRows

log = logging.getLogger(__name__)

FEDERATION_CHAIN = MigrationChain(name="federation", folder=Path(__file__).with_name("migrations"))
"""The federation's migrations, ``federation/migrations/<dialect>/NNNN_name.sql``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferRow:
    """An offer this (remote) site accepted; ``remote_job_id`` is set once committed."""

    key: str
    site: str
    origin_job_id: str
    epoch: int
    body: Mapping[str, Any]
    remote_job_id: str | None
    created_at: float
    committed_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> OfferRow:
        return cls(
            key=row["key"],
            site=row["site"],
            origin_job_id=row["origin_job_id"],
            epoch=row["epoch"],
            body=json.loads(row["body"]),
            remote_job_id=row["remote_job_id"],
            created_at=row["created_at"],
            committed_at=row["committed_at"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEntry:
    """A message to a peer, delivered until acknowledged; ``id`` is its stable message id."""

    id: str
    peer: str
    kind: str
    job_id: str
    body: Mapping[str, Any]
    final: bool
    attempts: int
    created_at: float
    delivered_at: float | None
    last_error: str

    @classmethod
    def from_row(cls, row: Row) -> OutboxEntry:
        return cls(
            id=row["id"],
            peer=row["peer"],
            kind=row["kind"],
            job_id=row["job_id"],
            body=json.loads(row["body"]),
            final=bool(row["final"]),
            attempts=row["attempts"],
            created_at=row["created_at"],
            delivered_at=row["delivered_at"],
            last_error=row["last_error"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardRow:
    """One placement of a job at a peer, seen from the origin."""

    job_id: str
    epoch: int
    peer: str
    remote_job_id: str | None
    state: str
    """``offering``, ``committed``, ``finished``, ``rejected`` or ``abandoned``."""
    remote_state: str
    frames_done: int
    bytes_sent: int
    blobs_sent: int
    blobs_skipped: int
    last_contact_at: float | None
    created_at: float
    updated_at: float
    progress_seq: int = 0
    """The last progress snapshot of the remote applied here."""
    control_seq: int = 0
    """The last pause/resume of the remote's own users applied here."""

    @classmethod
    def from_row(cls, row: Row) -> ForwardRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAdvertRow:
    name: str
    advert: Mapping[str, Any]
    last_seen: float


_SUPERSEDES: Mapping[str, tuple[str, ...]] = {
    "notify": ("notify", "progress"),
    "progress": ("notify", "progress"),
    "pause": ("pause", "resume"),
    "resume": ("pause", "resume"),
}
"""Undelivered entries of the same job a new entry of this kind replaces (never a final one)."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class FederationStore:
    """Offers, replay guard, outbox, forwards and peer adverts, on the site's database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.reclaims = ReclaimRows(db)
        """Reclaims of split jobs' parts asked (origin) and answered (remote)."""

    @classmethod
    async def open(cls, db: Database) -> FederationStore:
        """Apply the federation migration chain to ``db`` (a no-op when current), then serve.

        ``db`` stays owned by the site's store, which closes it.
        """
        applied = await apply_migrations(db, FEDERATION_CHAIN)
        if applied:
            log.info("%s federation schema migrated to version %d", db.dialect, applied[-1])
        return cls(db)

    def forward_state_hook(
        self, job_id: str, epoch: int, state: str, *, at: float
    ) -> TransactionHook:
        """A hook that sets the forward's state inside the caller's transaction."""

        async def hook(conn: Connection) -> None:
            await conn.execute(q.FORWARD_STATE, job_id, epoch, state, None, at)

        return hook

    def progress_hook(
        self,
        job_id: str,
        epoch: int,
        *,
        seq: int,
        remote_state: str,
        frames_done: int,
        at: float,
    ) -> TransactionHook:
        """A hook recording an applied progress snapshot inside the caller's transaction."""

        async def hook(conn: Connection) -> None:
            await conn.execute(
                q.FORWARD_PROGRESS, job_id, epoch, seq, remote_state, frames_done, at
            )

        return hook

    # --- offers (remote side) -------------------------------------------
    async def insert_offer(
        self,
        *,
        key: str,
        site: str,
        origin_job_id: str,
        epoch: int,
        body: Mapping[str, Any],
        at: float,
    ) -> OfferRow:
        """Record an accepted offer; an offer with the same key keeps the first record."""
        await self._db.execute(q.INSERT_OFFER, key, site, origin_job_id, epoch, _json(body), at)
        offer = await self.get_offer(key)
        assert offer is not None
        return offer

    async def get_offer(self, key: str) -> OfferRow | None:
        row = await self._db.fetchrow(q.GET_OFFER, key)
        return None if row is None else OfferRow.from_row(row)

    async def offer_by_job(self, remote_job_id: str) -> OfferRow | None:
        row = await self._db.fetchrow(q.GET_OFFER_BY_JOB, remote_job_id)
        return None if row is None else OfferRow.from_row(row)

    async def pending_offers(self, site: str) -> list[OfferRow]:
        return [OfferRow.from_row(r) for r in await self._db.fetch(q.PENDING_OFFERS_OF_SITE, site)]

    async def peer_open_jobs(self, site: str, *, pending_since: float) -> int:
        """Unfinished jobs accepted from ``site``, plus its uncommitted offers since ``pending_since``."""
        return int(await self._db.fetchval(q.PEER_OPEN_JOBS, site, pending_since) or 0)

    async def offered_bytes_since(self, site: str, since: float) -> int:
        """Total manifest bytes of the offers accepted from ``site`` since ``since``."""
        total = 0
        for row in await self._db.fetch(q.OFFER_BODIES_SINCE, site, since):
            body = row["body"]
            manifest = (json.loads(body) if isinstance(body, str) else body).get("manifest", ())
            total += sum(int(entry.get("size", 0)) for entry in manifest)
        return total

    async def commit_offer(self, key: str, remote_job_id: str, *, at: float) -> bool:
        return await self._db.execute(q.COMMIT_OFFER, key, remote_job_id, at) > 0

    async def next_progress_seq(self, remote_job_id: str) -> int:
        """The next snapshot number of an accepted job's progress (durable, so it only grows)."""
        return int(await self._db.fetchval(q.NEXT_PROGRESS_SEQ, remote_job_id) or 0)

    async def claim_offer_control(self, remote_job_id: str, seq: int) -> bool:
        """True if ``seq`` is newer than the last pause/resume applied from the origin."""
        return await self._db.execute(q.CLAIM_OFFER_CONTROL_SEQ, remote_job_id, seq) > 0

    async def claim_forward_control(self, job_id: str, epoch: int, seq: int) -> bool:
        """True if ``seq`` is newer than the last pause/resume applied from the remote."""
        return await self._db.execute(q.CLAIM_FORWARD_CONTROL_SEQ, job_id, epoch, seq) > 0

    async def finished_offers_without_final(self) -> list[OfferRow]:
        rows = await self._db.fetch(q.FINISHED_OFFERS_WITHOUT_FINAL)
        return [OfferRow.from_row(r) for r in rows]

    # --- replay guard ---------------------------------------------------
    async def seen(self, site: str, msg_id: str) -> bool:
        return bool(await self._db.fetchval(q.SEEN_MESSAGE, site, msg_id))

    async def mark_seen(self, site: str, msg_id: str, *, at: float) -> None:
        await self._db.execute(q.MARK_SEEN, site, msg_id, at)

    async def prune_seen(self, *, before: float) -> int:
        """Forget message ids seen before ``before``; returns how many."""
        return await self._db.execute(q.PRUNE_SEEN, before)

    # --- outbox ---------------------------------------------------------
    async def enqueue(
        self,
        *,
        msg_id: str,
        peer: str,
        kind: str,
        job_id: str,
        body: Mapping[str, Any],
        final: bool,
        at: float,
    ) -> bool:
        """Queue a message (no-op if the id exists); a newer notification supersedes
        undelivered progress of the same job. True if it was new."""
        async with self._db.transaction() as conn:
            added = await conn.execute(
                q.INSERT_OUTBOX, msg_id, peer, kind, job_id, _json(body), int(final), at
            )
            superseded = _SUPERSEDES.get(kind)
            if added and superseded:
                await conn.execute(q.DROP_SUPERSEDED, job_id, list(superseded), msg_id)
        return added > 0

    async def pending_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        return [OutboxEntry.from_row(r) for r in await self._db.fetch(q.PENDING_OUTBOX, limit)]

    async def outbox_depth(self) -> int:
        """Messages not yet acknowledged by their peer."""
        row = await self._db.fetchrow(q.OUTBOX_DEPTH)
        return 0 if row is None else int(row["n"])

    async def get_outbox(self, msg_id: str) -> OutboxEntry | None:
        row = await self._db.fetchrow(q.GET_OUTBOX, msg_id)
        return None if row is None else OutboxEntry.from_row(row)

    async def outbox_delivered(self, msg_id: str, *, at: float) -> None:
        await self._db.execute(q.OUTBOX_DELIVERED, msg_id, at)

    async def outbox_attempt(self, msg_id: str, error: str) -> None:
        await self._db.execute(q.OUTBOX_ATTEMPT, msg_id, error[:500])

    # --- forwards (origin side) -----------------------------------------
    async def start_forward(self, job_id: str, epoch: int, peer: str, *, at: float) -> None:
        await self._db.execute(q.INSERT_FORWARD, job_id, epoch, peer, at)

    async def get_forward(self, job_id: str, epoch: int) -> ForwardRow | None:
        row = await self._db.fetchrow(q.GET_FORWARD, job_id, epoch)
        return None if row is None else ForwardRow.from_row(row)

    async def forward_peers(self, job_id: str) -> list[str]:
        """Every peer any placement of the job was offered to (all epochs)."""
        return [str(r["peer"]) for r in await self._db.fetch(q.FORWARD_PEERS, job_id)]

    async def latest_forward(self, job_id: str) -> ForwardRow | None:
        row = await self._db.fetchrow(q.LATEST_FORWARD, job_id)
        return None if row is None else ForwardRow.from_row(row)

    async def add_transfer(
        self,
        job_id: str,
        epoch: int,
        *,
        bytes_sent: int,
        blobs_sent: int,
        blobs_skipped: int,
        at: float,
    ) -> None:
        await self._db.execute(
            q.FORWARD_TRANSFER, job_id, epoch, bytes_sent, blobs_sent, blobs_skipped, at
        )

    async def set_forward_state(
        self, job_id: str, epoch: int, state: str, *, remote_job_id: str | None, at: float
    ) -> None:
        await self._db.execute(q.FORWARD_STATE, job_id, epoch, state, remote_job_id, at)

    async def forward_contact(
        self, job_id: str, epoch: int, *, remote_state: str, frames_done: int, at: float
    ) -> None:
        await self._db.execute(q.FORWARD_CONTACT, job_id, epoch, remote_state, frames_done, at)

    async def open_forwards(self) -> list[ForwardRow]:
        return [ForwardRow.from_row(r) for r in await self._db.fetch(q.OPEN_FORWARDS)]

    async def unforwarded_jobs(self) -> list[str]:
        """Queued jobs placed at a peer whose forward at their epoch never started."""
        return [r["id"] for r in await self._db.fetch(q.UNFORWARDED_JOBS)]

    # --- peers ----------------------------------------------------------
    async def save_advert(self, name: str, advert: Mapping[str, Any], *, at: float) -> None:
        await self._db.execute(q.UPSERT_PEER_ADVERT, name, _json(advert), at)

    async def list_adverts(self) -> list[PeerAdvertRow]:
        return [
            PeerAdvertRow(name=r["name"], advert=json.loads(r["advert"]), last_seen=r["last_seen"])
            for r in await self._db.fetch(q.LIST_PEER_ADVERTS)
        ]

    async def save_job_refusal(
        self, peer: str, job_id: str, reasons: Sequence[str], *, at: float, keep_s: float
    ) -> None:
        """``peer`` refused ``job_id`` for a reason of the job; rows older than ``keep_s`` go."""
        async with self._db.transaction() as conn:
            await conn.execute(q.INSERT_JOB_REFUSAL, peer, job_id, _json(list(reasons)), at)
            await conn.execute(q.PRUNE_JOB_REFUSALS, at - keep_s)

    async def job_refusals(self, limit: int) -> list[tuple[str, str]]:
        """(peer, job id) of the ``limit`` newest refusals of a job for a reason of the job."""
        rows = await self._db.fetch(q.RECENT_JOB_REFUSALS, limit)
        return [(r["peer"], r["job_id"]) for r in rows]
