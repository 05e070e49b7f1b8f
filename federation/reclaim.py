"""Taking back chunks of a split job's part that its peer has not started.

Origin (:class:`Reclaimer`): when the split job has idle capable slots and no chunk
waiting here, while a part holds chunks its peer has not started
(:func:`scheduler.split.plan_reclaims`), the origin records a reclaim
(``fed_reclaims``, state ``asked``, a fresh key), then sends a signed
:class:`~federation.protocol.Reclaim` for them in the background: one task per peer
sends that peer's reclaims one at a time, oldest first, so the split loop never
waits on a peer (a slow or unreachable one holds up only its own reclaims). The
answer names the chunks the peer withdrew;
:meth:`~site_agent.lifecycle.Lifecycle.reclaim_part` then puts the split job's tasks
for them back to waiting here (this site renders them, or a part for another peer
takes them) and marks the reclaim answered, in one transaction. A reclaim not
answered (peer unreachable, a crash) is sent again with the same key by a later
step; the peer answers a repeat with its first answer. A reclaim whose part ended
or moved first is abandoned: settling that part returns its chunks anyway.

Remote (:class:`Withdrawals`): the peer withdraws, in its lifecycle transaction
under the job's lock, only the chunks asked for that are waiting and never failed
there (:meth:`~site_agent.lifecycle.Lifecycle.withdraw_chunks`), recording its
answer in the same transaction (``fed_withdrawals``). A chunk that started there
stays there: a frame is never rendered at two sites.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from federation.client import PeerRefusedError, PeerUnavailableError
from federation.interfaces import PeerSender
from federation.peers import FederationConfig, PeerConfig
from federation.protocol import Reclaim, ReclaimReply
from federation.reclaim_rows import ReclaimRow
from federation.store import OfferRow
from scheduler.frames import format_frames
from scheduler.split import PartHolding, plan_reclaims
from site_agent.lifecycle import TransactionHook, WithdrawalHook
from site_agent.store.records import JobRecord, JobState, TaskRecord, TaskState

log = logging.getLogger(__name__)

RECLAIM_PATH = "/fed/v1/reclaim"
RECLAIM_TIMEOUT_S = 15.0
RECLAIM_GRACE_S = 5.0
"""A part younger than this is left alone: its peer has not had the time to start it."""
_RENDERING_HERE = (JobState.QUEUED, JobState.RUNNING)


class ReclaimRecords(Protocol):
    """``fed_reclaims`` as the origin uses it (:class:`~federation.reclaim_rows.ReclaimRows`)."""

    async def ask(
        self, *, key: str, job_id: str, epoch: int, peer: str, indices: Sequence[int], at: float
    ) -> None: ...

    async def asked(self) -> list[ReclaimRow]: ...

    async def abandon(self, key: str, *, at: float) -> bool: ...

    def answered_hook(
        self, key: str, withdrawn: Sequence[int], frames: str, *, at: float
    ) -> TransactionHook: ...


class PartJobs(Protocol):
    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def list_tasks(self, job_id: str) -> list[TaskRecord]: ...


class PartReclaims(Protocol):
    """The origin's lifecycle transition for an answer."""

    async def reclaim_part(
        self, part: JobRecord, withdrawn: Sequence[int], *, at: float, hook: TransactionHook
    ) -> tuple[TaskRecord, ...]: ...


class Reclaimer:
    """Asks peers for unstarted chunks of split jobs' parts back, and applies the answers."""

    def __init__(
        self,
        *,
        name: str,
        config: FederationConfig,
        rows: ReclaimRecords,
        jobs: PartJobs,
        lifecycle: PartReclaims,
        client: PeerSender,
        clock: Callable[[], float] = time.time,
        grace_s: float = RECLAIM_GRACE_S,
        chunks_back: Callable[[], None] = lambda: None,
    ) -> None:
        self._name = name
        self._config = config
        self._rows = rows
        self._jobs = jobs
        self._lifecycle = lifecycle
        self._client = client
        self._clock = clock
        self._grace_s = grace_s
        self._chunks_back = chunks_back
        """Told when an answer put chunks back to waiting here (the split loop looks again)."""
        self._sending: dict[str, asyncio.Task[None]] = {}

    async def resend(self) -> None:
        """Send again every reclaim not answered yet (after a restart or a failed send),
        in the background: returns without waiting for any peer."""
        for peer in sorted({row.peer for row in await self._rows.asked()}):
            self._start(peer)

    def _start(self, peer: str) -> None:
        """Start sending ``peer``'s unanswered reclaims, unless that is under way."""
        if peer in self._sending:
            return
        task = asyncio.create_task(self._deliver(peer), name=f"fed-reclaim-{peer}")
        self._sending[peer] = task
        task.add_done_callback(lambda _t: self._sending.pop(peer, None))

    def sending(self, peer: str) -> bool:
        """Whether reclaims to ``peer`` are being sent now."""
        return peer in self._sending

    async def _deliver(self, peer: str) -> None:
        """Send ``peer``'s unanswered reclaims one at a time, oldest first, until none is
        left or the peer does not answer (a later :meth:`resend` tries again)."""
        try:
            while rows := [r for r in await self._rows.asked() if r.peer == peer]:
                for row in rows:
                    if not await self._send(row):
                        return
        except Exception:  # the next step's resend tries again
            log.exception("sending reclaims to %s failed; trying again later", peer)

    async def close(self) -> None:
        """Stop the sends under way (their reclaims stay recorded, to be sent again)."""
        tasks = list(self._sending.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def rebalance(self, job: JobRecord, parts: Sequence[JobRecord], free_slots: int) -> int:
        """Ask ``job``'s parts for chunks back so that ``free_slots`` (idle capable slots
        here, plus free ones at peers holding none of its unstarted chunks) have work.
        Returns how many chunks were asked for (they come back when their peer answers)."""
        if job.state not in _RENDERING_HERE:
            return 0
        tasks = await self._jobs.list_tasks(job.id)
        waiting_here = sum(1 for t in tasks if t.state == TaskState.WAITING)
        if waiting_here >= free_slots:
            return 0
        asking = {row.job_id for row in await self._rows.asked()}
        now = self._clock()
        holdings = [
            PartHolding(
                part_id=part.id,
                peer=part.placement,
                unstarted=tuple(
                    t.index
                    for t in await self._jobs.list_tasks(part.id)
                    if t.state == TaskState.WAITING
                ),
                asking=part.id in asking,
            )
            for part in parts
            if _reclaimable(part) and now - part.created_at >= self._grace_s
        ]
        by_id = {p.id: p for p in parts}
        asked = 0
        for plan in plan_reclaims(waiting_here=waiting_here, free_slots=free_slots, parts=holdings):
            await self.ask(by_id[plan.part_id], plan.indices)
            asked += len(plan.indices)
        return asked

    async def ask(self, part: JobRecord, indices: Sequence[int]) -> None:
        """Record a reclaim of the part's chunks at ``indices``, then send it in the
        background (after the peer's earlier reclaims, if any are still unanswered)."""
        row = ReclaimRow(
            key=f"{self._name}:{part.id}:{part.placement_epoch}:{uuid.uuid4().hex[:12]}",
            job_id=part.id,
            epoch=part.placement_epoch,
            peer=part.placement,
            indices=tuple(sorted(indices)),
            state="asked",
            withdrawn=(),
            frames="",
            created_at=self._clock(),
            answered_at=None,
        )
        await self._rows.ask(
            key=row.key,
            job_id=row.job_id,
            epoch=row.epoch,
            peer=row.peer,
            indices=row.indices,
            at=row.created_at,
        )
        log.info(
            "split job %s: asking %s for %d unstarted chunk(s) of part %s back (%s)",
            part.part_of,
            part.placement,
            len(indices),
            part.id,
            row.key,
        )
        self._start(row.peer)

    async def _send(self, row: ReclaimRow) -> bool:
        """Send one reclaim and apply its answer; False when the peer did not answer."""
        part = await self._jobs.get_job(row.job_id)
        peer = self._config.peer(row.peer)
        if part is None or peer is None or not _reclaimable(part) or part.placement != row.peer:
            await self._rows.abandon(row.key, at=self._clock())
            log.info("reclaim %s abandoned: its part ended or moved first", row.key)
            return True
        if part.placement_epoch != row.epoch or part.remote_job_id is None:
            await self._rows.abandon(row.key, at=self._clock())
            return True
        msg = Reclaim(
            key=row.key,
            origin_job_id=part.id,
            remote_job_id=part.remote_job_id,
            epoch=row.epoch,
            indices=row.indices,
        )
        try:
            reply = await self._client.send(
                peer, RECLAIM_PATH, msg, ReclaimReply, timeout_s=RECLAIM_TIMEOUT_S
            )
        except PeerUnavailableError as exc:
            log.info("reclaim %s not answered yet (%s); asking again later", row.key, exc)
            return False
        except PeerRefusedError as exc:
            await self._rows.abandon(row.key, at=self._clock())
            log.warning("reclaim %s refused by %s: %s", row.key, peer.name, exc)
            return True
        await self._apply(peer, part, row, reply)
        return True

    async def _apply(
        self, peer: PeerConfig, part: JobRecord, row: ReclaimRow, reply: ReclaimReply
    ) -> None:
        asked = set(row.indices)
        withdrawn = sorted({i for i in reply.withdrawn if i in asked})
        frames_at = {t.index: t.frames for t in await self._jobs.list_tasks(part.id)}
        frames = format_frames(n for i in withdrawn for n in frames_at.get(i, ()))
        now = self._clock()
        returned = await self._lifecycle.reclaim_part(
            part,
            withdrawn,
            at=now,
            hook=self._rows.answered_hook(row.key, withdrawn, frames, at=now),
        )
        log.info(
            "reclaim %s: %s gave back %d of %d chunk(s)%s%s",
            row.key,
            peer.name,
            len(withdrawn),
            len(asked),
            f" (frames {frames})" if frames else "",
            f"; the rest: {reply.reason}" if reply.reason else "",
        )
        if returned:
            self._chunks_back()


def reclaims_json(rows: Sequence[ReclaimRow]) -> list[dict[str, object]]:
    """The job JSON's ``reclaimed``: chunks taken back from parts, oldest first."""
    return [
        {
            "part": row.job_id,
            "peer": row.peer,
            "state": row.state,
            "chunks_asked": len(row.indices),
            "chunks": len(row.withdrawn),
            "frames": row.frames,
            "at": row.answered_at or row.created_at,
        }
        for row in rows
    ]


def _reclaimable(part: JobRecord) -> bool:
    """A part still open at its first placement, committed at its peer."""
    return (
        part.part_of is not None
        and not part.state.finished
        and part.placement_epoch == 1
        and part.remote_job_id is not None
    )


# --- remote side --------------------------------------------------------------------


class OwnedJobs(Protocol):
    async def owned_job(self, peer: PeerConfig, job_id: str) -> tuple[OfferRow, JobRecord]:
        """The job if ``peer`` forwarded it here; NotFoundError otherwise."""


class WithdrawalRecords(Protocol):
    async def answer(self, site: str, key: str) -> tuple[int, ...] | None: ...

    def withdrawal_hook(self, site: str, key: str, job_id: str, *, at: float) -> WithdrawalHook: ...


class ChunkWithdrawal(Protocol):
    async def withdraw_chunks(
        self,
        job_id: str,
        indices: Sequence[int],
        *,
        reason: str,
        at: float,
        record: WithdrawalHook,
    ) -> tuple[int, ...]: ...


class Withdrawals:
    """Answers reclaims: gives back chunks of accepted jobs not started here, once per key."""

    def __init__(
        self,
        *,
        jobs: OwnedJobs,
        rows: WithdrawalRecords,
        lifecycle: ChunkWithdrawal,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jobs = jobs
        self._rows = rows
        self._lifecycle = lifecycle
        self._clock = clock
        self._lock = asyncio.Lock()

    async def reclaim(self, peer: PeerConfig, msg: Reclaim) -> ReclaimReply:
        offer, job = await self._jobs.owned_job(peer, msg.remote_job_id)
        if offer.epoch != msg.epoch or offer.origin_job_id != msg.origin_job_id:
            return ReclaimReply(key=msg.key, reason="that placement of the job is over here")
        # One answer per key: a repeat waits for the first, then reads its answer.
        # (Reclaims are rare, so one lock for all of them.)
        async with self._lock:
            withdrawn = await self._rows.answer(peer.name, msg.key)
            if withdrawn is None:
                now = self._clock()
                withdrawn = await self._lifecycle.withdraw_chunks(
                    job.id,
                    msg.indices,
                    reason=f"reclaimed by {peer.name} ({msg.key})",
                    at=now,
                    record=self._rows.withdrawal_hook(peer.name, msg.key, job.id, at=now),
                )
        kept = len(set(msg.indices) - set(withdrawn))
        reason = f"{kept} chunk(s) started or ended here" if kept else ""
        return ReclaimReply(key=msg.key, withdrawn=withdrawn, reason=reason)
