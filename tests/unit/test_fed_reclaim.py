"""Reclaiming unstarted chunks of split jobs' parts: the decision, the origin's requests, the
peer's once-per-key answers. In-memory fakes; the transitions themselves are tested on both
databases in ``tests/integration/test_store_reclaim.py``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from test_fed_roles import fed_config, make_job

from federation.client import PeerRefusedError, PeerUnavailableError
from federation.peers import PeerConfig
from federation.protocol import Message, Reclaim, ReclaimReply
from federation.reclaim import Reclaimer, Withdrawals
from federation.reclaim_rows import ReclaimRow
from federation.store import OfferRow
from scheduler.errors import PolicyError
from scheduler.split import PartHolding, ReclaimPlan, plan_reclaims
from site_agent.lifecycle import TransactionHook, WithdrawalHook
from site_agent.store.records import JobRecord, JobState, TaskRecord, TaskState

A = PeerConfig(name="facility-a", url="https://a:8743")
B = PeerConfig(name="facility-b", url="https://b:8743")


def holding(part: str, peer: str, *unstarted: int, asking: bool = False) -> PartHolding:
    return PartHolding(part_id=part, peer=peer, unstarted=unstarted, asking=asking)


@pytest.mark.parametrize(
    ("waiting", "free", "parts", "expected"),
    [
        # Work still waiting here for every free slot: nothing is asked back.
        (2, 2, [holding("p1", "a", 0, 1)], []),
        (0, 0, [holding("p1", "a", 0, 1)], []),
        # One idle slot: the last unstarted chunk of the part (its site starts the front).
        (0, 1, [holding("p1", "a", 0, 1, 2)], [ReclaimPlan(part_id="p1", peer="a", indices=(2,))]),
        # Slots beyond what is waiting here count; the most held-up part gives first.
        (
            1,
            4,
            [holding("p1", "a", 5), holding("p2", "b", 0, 1, 2)],
            [ReclaimPlan(part_id="p2", peer="b", indices=(0, 1, 2))],
        ),
        (
            0,
            4,
            [holding("p1", "a", 5), holding("p2", "b", 0, 1, 2)],
            [
                ReclaimPlan(part_id="p2", peer="b", indices=(0, 1, 2)),
                ReclaimPlan(part_id="p1", peer="a", indices=(5,)),
            ],
        ),
        # A part with a reclaim in flight, or nothing unstarted, is skipped.
        (
            0,
            2,
            [holding("p1", "a", 0, 1, 2, asking=True), holding("p2", "b"), holding("p3", "a", 7)],
            [ReclaimPlan(part_id="p3", peer="a", indices=(7,))],
        ),
    ],
)
def test_plan_reclaims(
    waiting: int, free: int, parts: list[PartHolding], expected: list[ReclaimPlan]
) -> None:
    assert plan_reclaims(waiting_here=waiting, free_slots=free, parts=parts) == expected


def test_plan_reclaims_refuses_negative_counts() -> None:
    with pytest.raises(PolicyError, match="must not be negative"):
        plan_reclaims(waiting_here=-1, free_slots=1, parts=[])


# --- the origin ----------------------------------------------------------------------


class Rows:
    """ReclaimRecords over a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, ReclaimRow] = {}

    async def ask(
        self, *, key: str, job_id: str, epoch: int, peer: str, indices: Sequence[int], at: float
    ) -> None:
        self.rows.setdefault(
            key,
            ReclaimRow(
                key=key,
                job_id=job_id,
                epoch=epoch,
                peer=peer,
                indices=tuple(indices),
                state="asked",
                withdrawn=(),
                frames="",
                created_at=at,
                answered_at=None,
            ),
        )

    async def asked(self) -> list[ReclaimRow]:
        return [r for r in self.rows.values() if r.state == "asked"]

    async def abandon(self, key: str, *, at: float) -> bool:
        self.rows[key] = dataclasses.replace(self.rows[key], state="abandoned")
        return True

    def answered_hook(
        self, key: str, withdrawn: Sequence[int], frames: str, *, at: float
    ) -> TransactionHook:
        async def hook(conn: Any) -> None:
            self.rows[key] = dataclasses.replace(
                self.rows[key], state="answered", withdrawn=tuple(withdrawn), frames=frames
            )

        return hook


class Jobs:
    """PartJobs and PartReclaims: a split job with one part of chunks (5, 6) and (7, 8)."""

    def __init__(self, *, created_at: float = 0.0) -> None:
        self.job = dataclasses.replace(make_job("j1"), split=True, state=JobState.RUNNING)
        self.part = dataclasses.replace(
            make_job("p1", placement="facility-a", epoch=1),
            part_of="j1",
            remote_job_id="r1",
            state=JobState.RUNNING,
            created_at=created_at,
        )
        self.tasks = {
            "j1": [
                TaskRecord(id=1, job_id="j1", index=0, frames=(1, 2), state=TaskState.RUNNING),
                TaskRecord(id=2, job_id="j1", index=1, frames=(3, 4), state=TaskState.DONE),
            ],
            "p1": [
                TaskRecord(id=3, job_id="p1", index=0, frames=(5, 6)),
                TaskRecord(id=4, job_id="p1", index=1, frames=(7, 8)),
            ],
        }
        self.reclaimed: list[tuple[str, tuple[int, ...]]] = []

    async def get_job(self, job_id: str) -> JobRecord | None:
        return {"j1": self.job, "p1": self.part}.get(job_id)

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        return self.tasks.get(job_id, [])

    async def reclaim_part(
        self, part: JobRecord, withdrawn: Sequence[int], *, at: float, hook: TransactionHook
    ) -> tuple[TaskRecord, ...]:
        self.reclaimed.append((part.id, tuple(withdrawn)))
        await hook(None)  # type: ignore[arg-type]
        return tuple(TaskRecord(id=9, job_id="j1", index=2 + i, frames=()) for i in withdrawn)


class Client:
    """PeerSender: answers each reclaim with ``answer`` or raises ``error``."""

    def __init__(self) -> None:
        self.sent: list[Reclaim] = []
        self.error: Exception | None = None
        self.answer: tuple[int, ...] = ()

    async def send(
        self,
        peer: PeerConfig,
        path: str,
        msg: Message,
        reply: type[Any],
        *,
        msg_id: str | None = None,
        timeout_s: float = 30,
    ) -> Any:
        assert isinstance(msg, Reclaim) and path == "/fed/v1/reclaim"
        self.sent.append(msg)
        if self.error is not None:
            raise self.error
        return ReclaimReply(key=msg.key, withdrawn=self.answer)


def reclaimer(jobs: Jobs, rows: Rows, client: Client, *, now: float = 100.0) -> Reclaimer:
    return Reclaimer(
        name="studio",
        config=fed_config(A, B),
        rows=rows,
        jobs=jobs,
        lifecycle=jobs,
        client=client,
        clock=lambda: now,
    )


async def sent(s: Reclaimer, *peers: str) -> None:
    """Until the background sends to ``peers`` are over."""
    while any(s.sending(p) for p in peers or (A.name,)):
        await asyncio.sleep(0)


async def test_idle_slots_here_take_back_what_the_peer_has_not_started() -> None:
    jobs, rows, client = Jobs(), Rows(), Client()
    client.answer = (1,)  # the peer started chunk 0 meanwhile
    s = reclaimer(jobs, rows, client)
    assert await s.rebalance(jobs.job, [jobs.part], 2) == 2  # asked for both
    await sent(s)
    [msg] = client.sent
    assert (msg.origin_job_id, msg.remote_job_id, msg.epoch, msg.indices) == ("p1", "r1", 1, (0, 1))
    assert msg.key.startswith("studio:p1:1:")
    assert jobs.reclaimed == [("p1", (1,))]
    [row] = rows.rows.values()
    assert (row.state, row.withdrawn, row.frames) == ("answered", (1,), "7-8")


async def test_nothing_is_asked_back_while_work_waits_here_or_the_part_is_young() -> None:
    jobs, rows, client = Jobs(), Rows(), Client()
    jobs.tasks["j1"][0] = dataclasses.replace(jobs.tasks["j1"][0], state=TaskState.WAITING)
    assert await reclaimer(jobs, rows, client).rebalance(jobs.job, [jobs.part], 1) == 0
    young = Jobs(created_at=98.0)  # sent 2 s ago: its peer may be starting it
    assert await reclaimer(young, rows, client).rebalance(young.job, [young.part], 2) == 0
    paused = dataclasses.replace(jobs.job, state=JobState.PAUSED)
    assert await reclaimer(jobs, rows, client).rebalance(paused, [jobs.part], 2) == 0
    assert client.sent == [] and rows.rows == {}


async def test_an_unanswered_reclaim_is_sent_again_with_its_key_and_applied_once() -> None:
    jobs, rows, client = Jobs(), Rows(), Client()
    client.error = PeerUnavailableError("facility-a", "connection refused")
    s = reclaimer(jobs, rows, client)
    assert await s.rebalance(jobs.job, [jobs.part], 2) == 2
    await sent(s)
    [row] = rows.rows.values()
    assert row.state == "asked" and jobs.reclaimed == []
    # While it is unanswered, no second reclaim of that part is made.
    assert await s.rebalance(jobs.job, [jobs.part], 2) == 0
    assert len(rows.rows) == 1
    client.error, client.answer = None, (0, 1)
    await s.resend()
    await sent(s)
    assert [m.key for m in client.sent] == [row.key] * 2
    assert jobs.reclaimed == [("p1", (0, 1))] and rows.rows[row.key].state == "answered"
    await s.resend()  # nothing left to send
    await sent(s)
    assert len(client.sent) == 2


async def test_a_refused_reclaim_or_one_whose_part_ended_is_abandoned() -> None:
    jobs, rows, client = Jobs(), Rows(), Client()
    client.error = PeerRefusedError("facility-a", 404, "not_found", "no such route")
    s = reclaimer(jobs, rows, client)
    assert await s.rebalance(jobs.job, [jobs.part], 2) == 2
    await sent(s)
    assert [r.state for r in rows.rows.values()] == ["abandoned"]
    client.error = PeerUnavailableError("facility-a", "timeout")
    await s.ask(jobs.part, [0])
    await sent(s)
    jobs.part = dataclasses.replace(jobs.part, state=JobState.DONE)
    before = len(client.sent)
    await s.resend()
    await sent(s)
    assert len(client.sent) == before  # not sent for a part that ended
    assert [r.state for r in rows.rows.values()] == ["abandoned", "abandoned"]
    assert jobs.reclaimed == []


# --- the peer --------------------------------------------------------------------------


class Accepted:
    """OwnedJobs, WithdrawalRecords and ChunkWithdrawal of the peer."""

    def __init__(self) -> None:
        self.offer = OfferRow(
            key="studio:p1:1",
            site="studio",
            origin_job_id="p1",
            epoch=1,
            body={},
            remote_job_id="r1",
            created_at=0.0,
            committed_at=1.0,
        )
        self.answers: dict[tuple[str, str], tuple[int, ...]] = {}
        self.withdrawals: list[tuple[int, ...]] = []

    async def owned_job(self, peer: PeerConfig, job_id: str) -> tuple[OfferRow, JobRecord]:
        return self.offer, make_job(job_id)

    async def answer(self, site: str, key: str) -> tuple[int, ...] | None:
        return self.answers.get((site, key))

    def withdrawal_hook(self, site: str, key: str, job_id: str, *, at: float) -> WithdrawalHook:
        async def hook(conn: Any, withdrawn: Sequence[int]) -> None:
            self.answers[(site, key)] = tuple(withdrawn)

        return hook

    async def withdraw_chunks(
        self,
        job_id: str,
        indices: Sequence[int],
        *,
        reason: str,
        at: float,
        record: WithdrawalHook,
    ) -> tuple[int, ...]:
        withdrawn = tuple(i for i in indices if i > 0)  # chunk 0 started here
        self.withdrawals.append(withdrawn)
        await record(None, withdrawn)  # type: ignore[arg-type]
        return withdrawn


async def test_the_peer_answers_a_repeated_reclaim_as_the_first_time() -> None:
    site = Accepted()
    withdrawals = Withdrawals(jobs=site, rows=site, lifecycle=site, clock=lambda: 5.0)
    studio = PeerConfig(name="studio", url="https://s:8743")
    msg = Reclaim(
        key="studio:p1:1:k", origin_job_id="p1", remote_job_id="r1", epoch=1, indices=(0, 1, 2)
    )
    first = await withdrawals.reclaim(studio, msg)
    assert first.withdrawn == (1, 2) and first.reason == "1 chunk(s) started or ended here"
    assert await withdrawals.reclaim(studio, msg) == first
    assert site.withdrawals == [(1, 2)]  # withdrawn once
    stale = dataclasses.replace(msg, key="studio:p1:0:k", epoch=0)
    assert (await withdrawals.reclaim(studio, stale)).withdrawn == ()
    assert site.withdrawals == [(1, 2)]
