"""Federation state in the resource database (tables of migration 0002_federation).

Kept apart from :mod:`site_agent.store.sql_store` so the single-site store stays
small; :class:`~site_agent.store.sql_store.SqlStore` mixes :class:`FederationStoreMixin`
in, and :class:`FederationStore` is the narrow interface the federation layer uses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import queries as q
from .database import Database, Row
from .records import FrameRecord, JobState, TaskState
from .rows import frame_params

log = logging.getLogger(__name__)


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

    @classmethod
    def from_row(cls, row: Row) -> ForwardRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAdvertRow:
    name: str
    advert: Mapping[str, Any]
    last_seen: float


class FederationStore(Protocol):
    """What the federation layer persists (implemented by :class:`FederationStoreMixin`)."""

    async def fed_insert_offer(
        self,
        *,
        key: str,
        site: str,
        origin_job_id: str,
        epoch: int,
        body: Mapping[str, Any],
        at: float,
    ) -> OfferRow: ...
    async def fed_get_offer(self, key: str) -> OfferRow | None: ...
    async def fed_offer_by_job(self, remote_job_id: str) -> OfferRow | None: ...
    async def fed_pending_offers(self, site: str) -> list[OfferRow]: ...
    async def fed_commit_offer(self, key: str, remote_job_id: str, *, at: float) -> bool: ...
    async def fed_finished_offers_without_final(self) -> list[OfferRow]: ...
    async def fed_seen(self, site: str, msg_id: str) -> bool: ...
    async def fed_mark_seen(self, site: str, msg_id: str, *, at: float) -> None: ...
    async def fed_prune_seen(self, *, before: float) -> int: ...
    async def fed_enqueue(
        self,
        *,
        msg_id: str,
        peer: str,
        kind: str,
        job_id: str,
        body: Mapping[str, Any],
        final: bool,
        at: float,
    ) -> bool: ...
    async def fed_pending_outbox(self, limit: int = 100) -> list[OutboxEntry]: ...
    async def fed_get_outbox(self, msg_id: str) -> OutboxEntry | None: ...
    async def fed_outbox_delivered(self, msg_id: str, *, at: float) -> None: ...
    async def fed_outbox_attempt(self, msg_id: str, error: str) -> None: ...
    async def fed_start_forward(self, job_id: str, epoch: int, peer: str, *, at: float) -> None: ...
    async def fed_get_forward(self, job_id: str, epoch: int) -> ForwardRow | None: ...
    async def fed_latest_forward(self, job_id: str) -> ForwardRow | None: ...
    async def fed_add_transfer(
        self,
        job_id: str,
        epoch: int,
        *,
        bytes_sent: int,
        blobs_sent: int,
        blobs_skipped: int,
        at: float,
    ) -> None: ...
    async def fed_set_forward_state(
        self, job_id: str, epoch: int, state: str, *, remote_job_id: str | None, at: float
    ) -> None: ...
    async def fed_forward_contact(
        self, job_id: str, epoch: int, *, remote_state: str, frames_done: int, at: float
    ) -> None: ...
    async def fed_open_forwards(self) -> list[ForwardRow]: ...
    async def fed_replace_job(
        self, job_id: str, *, old_epoch: int, placement: str, reason: str, at: float
    ) -> int | None: ...
    async def fed_finish_forwarded_job(
        self,
        job_id: str,
        *,
        epoch: int,
        state: JobState,
        frames: Sequence[FrameRecord],
        error: str,
        at: float,
    ) -> bool: ...
    async def fed_save_advert(self, name: str, advert: Mapping[str, Any], *, at: float) -> None: ...
    async def fed_list_adverts(self) -> list[PeerAdvertRow]: ...
    async def fed_local_frames_waiting(self) -> int: ...
    async def fed_seconds_per_frame(self) -> float | None: ...


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class FederationStoreMixin:
    """Federation methods of the SQL store; the host class provides ``_db``."""

    _db: Database

    # --- offers (remote side) -------------------------------------------
    async def fed_insert_offer(
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
        offer = await self.fed_get_offer(key)
        assert offer is not None
        return offer

    async def fed_get_offer(self, key: str) -> OfferRow | None:
        row = await self._db.fetchrow(q.GET_OFFER, key)
        return None if row is None else OfferRow.from_row(row)

    async def fed_offer_by_job(self, remote_job_id: str) -> OfferRow | None:
        row = await self._db.fetchrow(q.GET_OFFER_BY_JOB, remote_job_id)
        return None if row is None else OfferRow.from_row(row)

    async def fed_pending_offers(self, site: str) -> list[OfferRow]:
        return [OfferRow.from_row(r) for r in await self._db.fetch(q.PENDING_OFFERS_OF_SITE, site)]

    async def fed_commit_offer(self, key: str, remote_job_id: str, *, at: float) -> bool:
        return await self._db.execute(q.COMMIT_OFFER, key, remote_job_id, at) > 0

    async def fed_finished_offers_without_final(self) -> list[OfferRow]:
        rows = await self._db.fetch(q.FINISHED_OFFERS_WITHOUT_FINAL)
        return [OfferRow.from_row(r) for r in rows]

    # --- replay guard ---------------------------------------------------
    async def fed_seen(self, site: str, msg_id: str) -> bool:
        return bool(await self._db.fetchval(q.SEEN_MESSAGE, site, msg_id))

    async def fed_mark_seen(self, site: str, msg_id: str, *, at: float) -> None:
        await self._db.execute(q.MARK_SEEN, site, msg_id, at)

    async def fed_prune_seen(self, *, before: float) -> int:
        """Forget message ids seen before ``before``; returns how many."""
        return await self._db.execute(q.PRUNE_SEEN, before)

    # --- outbox ---------------------------------------------------------
    async def fed_enqueue(
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
            if added and kind == "notify":
                await conn.execute(q.DROP_PENDING_PROGRESS, job_id, msg_id)
        return added > 0

    async def fed_pending_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        return [OutboxEntry.from_row(r) for r in await self._db.fetch(q.PENDING_OUTBOX, limit)]

    async def fed_get_outbox(self, msg_id: str) -> OutboxEntry | None:
        row = await self._db.fetchrow(q.GET_OUTBOX, msg_id)
        return None if row is None else OutboxEntry.from_row(row)

    async def fed_outbox_delivered(self, msg_id: str, *, at: float) -> None:
        await self._db.execute(q.OUTBOX_DELIVERED, msg_id, at)

    async def fed_outbox_attempt(self, msg_id: str, error: str) -> None:
        await self._db.execute(q.OUTBOX_ATTEMPT, msg_id, error[:500])

    # --- forwards (origin side) -----------------------------------------
    async def fed_start_forward(self, job_id: str, epoch: int, peer: str, *, at: float) -> None:
        await self._db.execute(q.INSERT_FORWARD, job_id, epoch, peer, at)

    async def fed_get_forward(self, job_id: str, epoch: int) -> ForwardRow | None:
        row = await self._db.fetchrow(q.GET_FORWARD, job_id, epoch)
        return None if row is None else ForwardRow.from_row(row)

    async def fed_latest_forward(self, job_id: str) -> ForwardRow | None:
        row = await self._db.fetchrow(q.LATEST_FORWARD, job_id)
        return None if row is None else ForwardRow.from_row(row)

    async def fed_add_transfer(
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

    async def fed_set_forward_state(
        self, job_id: str, epoch: int, state: str, *, remote_job_id: str | None, at: float
    ) -> None:
        await self._db.execute(q.FORWARD_STATE, job_id, epoch, state, remote_job_id, at)

    async def fed_forward_contact(
        self, job_id: str, epoch: int, *, remote_state: str, frames_done: int, at: float
    ) -> None:
        await self._db.execute(q.FORWARD_CONTACT, job_id, epoch, remote_state, frames_done, at)

    async def fed_open_forwards(self) -> list[ForwardRow]:
        return [ForwardRow.from_row(r) for r in await self._db.fetch(q.OPEN_FORWARDS)]

    async def fed_replace_job(
        self, job_id: str, *, old_epoch: int, placement: str, reason: str, at: float
    ) -> int | None:
        """Move the job to a new placement with epoch + 1, if it is still at ``old_epoch``
        and unfinished; its forward is abandoned. Returns the new epoch, or None."""
        new_epoch = old_epoch + 1
        async with self._db.transaction() as conn:
            changed = await conn.execute(
                q.REPLACE_JOB, job_id, placement, reason, new_epoch, at, old_epoch
            )
            if not changed:
                return None
            await conn.execute(q.FORWARD_STATE, job_id, old_epoch, "abandoned", None, at)
        log.info("job %s re-placed to %s (epoch %d): %s", job_id, placement, new_epoch, reason)
        return new_epoch

    async def fed_finish_forwarded_job(
        self,
        job_id: str,
        *,
        epoch: int,
        state: JobState,
        frames: Sequence[FrameRecord],
        error: str,
        at: float,
    ) -> bool:
        """Record the fetched frames and finish the job, fenced on its placement epoch.

        The origin's own (never dispatched) tasks end with the job. False when the
        job moved to another placement or finished meanwhile: nothing is changed.
        """
        task_state = TaskState.DONE if state == JobState.DONE else TaskState.FAILED
        async with self._db.transaction() as conn:
            await conn.execute(q.LOCK_JOB, job_id)
            row = await conn.fetchrow(q.GET_JOB, job_id)
            if row is None or row["placement_epoch"] != epoch or JobState(row["state"]).finished:
                return False
            if frames:
                await conn.executemany(q.UPSERT_FRAME, [frame_params(f) for f in frames])
            await conn.execute(q.COMPLETE_FORWARDED_TASKS, job_id, task_state.value, at, error)
            await conn.execute(q.FINISH_JOB, job_id, state.value, at, error)
            await conn.execute(q.FORWARD_STATE, job_id, epoch, "finished", None, at)
        log.info("forwarded job %s finished: %s with %d frames", job_id, state.value, len(frames))
        return True

    # --- peers ----------------------------------------------------------
    async def fed_save_advert(self, name: str, advert: Mapping[str, Any], *, at: float) -> None:
        await self._db.execute(q.UPSERT_PEER_ADVERT, name, _json(advert), at)

    async def fed_list_adverts(self) -> list[PeerAdvertRow]:
        return [
            PeerAdvertRow(name=r["name"], advert=json.loads(r["advert"]), last_seen=r["last_seen"])
            for r in await self._db.fetch(q.LIST_PEER_ADVERTS)
        ]

    # --- placement inputs -----------------------------------------------
    async def fed_local_frames_waiting(self) -> int:
        return int(await self._db.fetchval(q.LOCAL_FRAMES_WAITING) or 0)

    async def fed_seconds_per_frame(self) -> float | None:
        value = await self._db.fetchval(q.RECENT_SECONDS_PER_FRAME)
        return None if value is None else float(value)
