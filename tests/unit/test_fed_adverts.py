"""A stale advert does not bounce offers: a refusal counts at once at the origin, a refused
part comes home for the split loop to send on, and the remote's advert says what its policy
allows right now. In-memory fakes (``test_fed_roles.py``, ``test_fed_split.py``)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from test_fed_roles import (
    Clock,
    FakeClient,
    FakeJobs,
    FakePeers,
    FakeQueue,
    FakeRows,
    FakeSite,
    fed_config,
    make_job,
    server,
    until,
)
from test_fed_split import FakeSplitLifecycle, FakeSplitStore

from federation.admission import Admission
from federation.capacity import Advertiser, PeerBook, advert_for
from federation.forwarding import Forwarding
from federation.peers import PeerConfig
from federation.policy import AcceptPolicy, HourWindow, RefusalCode, closed_now
from federation.protocol import CapacityAdvert, OfferReply, ServerCapacity
from federation.split import Splitter
from federation.store import PeerAdvertRow
from site_agent.store.base import StoreUnavailableError
from site_agent.store.records import LOCAL

A = PeerConfig(name="facility-a", url="https://a:8743", preference=1)
B = PeerConfig(name="facility-b", url="https://b:8743")
NOON = datetime.time(12, 0)


class Adverts:
    """AdvertRows over a list: adverts are not kept, refusals of a job are."""

    def __init__(self) -> None:
        self.refusals: list[tuple[str, str, tuple[str, ...], float]] = []

    async def save_advert(self, name: str, advert: Mapping[str, Any], *, at: float) -> None:
        pass

    async def list_adverts(self) -> list[PeerAdvertRow]:
        return []

    async def save_job_refusal(
        self, peer: str, job_id: str, reasons: Sequence[str], *, at: float, keep_s: float
    ) -> None:
        self.refusals.append((peer, job_id, tuple(reasons), at))

    async def job_refusals(self, limit: int) -> list[tuple[str, str]]:
        return [(peer, job) for peer, job, _, _ in reversed(self.refusals)][:limit]


def advert(free: int = 2) -> CapacityAdvert:
    return CapacityAdvert(
        servers=(
            ServerCapacity(
                name="node-1",
                cores=8,
                memory_mb=8192,
                packages={"povray": "3.7.0"},
                slots=2,
                free_slots=free,
                status="idle",
            ),
        ),
        queue_depth=0,
    )


def free_slots(book: PeerBook) -> dict[str, int]:
    return {c.name: sum(s.free_slots for s in c.servers) for c in book.capacities([A, B])}


async def book(rows: Adverts | None = None) -> PeerBook:
    peers = PeerBook(fed_config(A, B), rows or Adverts(), clock=Clock())
    await peers.record_advert("facility-a", advert())
    await peers.record_advert("facility-b", advert())
    return peers


async def test_a_refusal_spends_the_peers_advert_until_its_next_one() -> None:
    peers = await book()
    await peers.refused("facility-a", "j1", [RefusalCode.HOURS])
    assert free_slots(peers) == {"facility-a": 0, "facility-b": 2}
    assert peers.refusing("j1") == frozenset()  # its load, not the job: j1 may go later
    await peers.record_advert("facility-a", advert(free=1))
    assert free_slots(peers) == {"facility-a": 1, "facility-b": 2}


async def test_a_refusal_for_the_job_itself_keeps_that_job_away_for_good() -> None:
    peers = await book()
    await peers.refused("facility-a", "j1", [RefusalCode.PRIORITY, RefusalCode.HOURS])
    await peers.record_advert("facility-a", advert())
    assert peers.refusing("j1") == {"facility-a"}
    assert peers.refusing("j2") == frozenset()
    await peers.refused("facility-b", "j2", [])  # no code given (an older peer): the job's
    assert peers.refusing("j2") == {"facility-b"}


async def test_a_refusal_of_the_job_outlives_a_restart_and_one_of_the_load_does_not() -> None:
    rows = Adverts()
    peers = await book(rows)
    await peers.refused(
        "facility-a", "j1", [RefusalCode.PRIORITY], ["priority 80 is above the cap 50"]
    )
    await peers.refused("facility-b", "j2", [RefusalCode.QUEUED_JOBS], ["3 jobs queued"])
    assert rows.refusals == [("facility-a", "j1", ("priority 80 is above the cap 50",), 1000.0)]
    restarted = PeerBook(fed_config(A, B), rows, clock=Clock())
    await restarted.load()
    await restarted.record_advert("facility-a", advert())
    await restarted.record_advert("facility-b", advert())
    assert restarted.refusing("j1") == {"facility-a"}  # not offered j1 only to be refused again
    assert restarted.refusing("j2") == frozenset()
    assert free_slots(restarted) == {"facility-a": 2, "facility-b": 2}  # the spent slots: not kept


async def test_a_refusal_the_store_cannot_keep_still_counts_until_a_restart() -> None:
    class Down(Adverts):
        async def save_job_refusal(
            self, peer: str, job_id: str, reasons: Sequence[str], *, at: float, keep_s: float
        ) -> None:
            raise StoreUnavailableError("database is down")

    peers = await book(Down())
    await peers.refused("facility-a", "j1", [RefusalCode.PACKAGE], ["package blender not accepted"])
    assert peers.refusing("j1") == {"facility-a"}
    assert free_slots(peers) == {"facility-a": 0, "facility-b": 2}


async def test_the_peers_view_shows_what_placement_believes_after_a_refusal() -> None:
    clock = Clock()
    peers = PeerBook(fed_config(A, B), Adverts(), clock=clock)
    await peers.record_advert("facility-a", advert())
    await peers.refused(
        "facility-a", "j1", [RefusalCode.PRIORITY], ["priority 80 is above the cap 50"]
    )
    clock.now += 12
    shown = {p["name"]: p for p in peers.peers_json()}["facility-a"]
    assert shown["capacity"]["free_slots"] == 0
    assert shown["capacity"]["advertised_free_slots"] == 2
    assert [s["free_slots"] for s in shown["servers"]] == [0]
    assert shown["refused"]["note"] == "refused job j1: priority 80 is above the cap 50"
    assert shown["refused"]["age_s"] == 12
    await peers.record_advert("facility-a", advert(free=1))
    shown = {p["name"]: p for p in peers.peers_json()}["facility-a"]
    assert shown["refused"] is None and shown["capacity"]["free_slots"] == 1


async def test_a_refused_part_comes_home_and_its_split_job_is_noted(tmp_path: Path) -> None:
    part = dataclasses.replace(make_job("p1", placement="facility-a", epoch=1), part_of="j1")
    jobs, rows, client, peers = FakeJobs(part), FakeRows(), FakeClient(), FakePeers()
    site = FakeSite(tmp_path, server("s1"))
    forwarding = Forwarding(
        name="studio",
        config=fed_config(A, B),
        jobs=jobs,
        forwards=rows,
        client=client,
        peers=peers,
        outbox=FakeQueue(),
        blobs=site,
        views=site,
        wakeup=site,
        clock=Clock(),
    )
    client.replies["/fed/v1/offer"] = [
        OfferReply(key="k", accepted=False, reasons=("priority 80 is above the cap 50",))
    ]
    forwarding.start(part)
    await until(lambda: jobs.jobs["p1"].placement_epoch == 2)
    home = jobs.jobs["p1"]
    # Not offered on to facility-b as a job of its own: the split loop settles it and
    # sends its chunks to the next peer with room, or renders them here.
    assert home.placement == LOCAL
    assert home.placement_reason.endswith("→ its chunks return to job j1")
    assert [name for name, _, _ in client.sent] == ["facility-a"]
    assert peers.refusals == [("facility-a", "j1", ())]
    await forwarding.close()


def splitter(tmp_path: Path, store: FakeSplitStore, peers: PeerBook) -> Splitter:
    return Splitter(
        name="studio",
        config=fed_config(A, B),
        jobs=store,
        lifecycle=FakeSplitLifecycle(store),
        peers=peers,
        views=FakeSite(tmp_path, server("s1", free=0)),
        dirs=FakeSite(tmp_path),
    )


async def test_the_next_part_goes_to_the_next_candidate_at_once(tmp_path: Path) -> None:
    peers = await book()
    for job_id, code in (("j1", RefusalCode.PRIORITY), ("j2", RefusalCode.QUEUED_JOBS)):
        job = dataclasses.replace(
            make_job(job_id), split=True, frames="1-8", frame_count=8, chunk_size=2
        )
        store = FakeSplitStore(job, [(1, 2), (3, 4), (5, 6), (7, 8)])
        await peers.refused("facility-a", job_id, [code])  # a part of it bounced off facility-a
        await splitter(tmp_path, store, peers).step()
        # facility-a is preferred, but the part goes to facility-b, without waiting for
        # facility-a's next advert.
        assert [p.placement for p in await store.parts(job_id)] == ["facility-b"]
    # facility-a advertises again: a job it refused for its load may go there again, and
    # one it refused for the job itself may not.
    await peers.record_advert("facility-a", advert())
    for job_id, there in (("j2", "facility-a"), ("j1", "facility-b")):
        job = dataclasses.replace(
            make_job(job_id), split=True, frames="1-8", frame_count=8, chunk_size=2
        )
        store = FakeSplitStore(job, [(1, 2), (3, 4), (5, 6), (7, 8)])
        await splitter(tmp_path, store, peers).step()
        assert [p.placement for p in await store.parts(job_id)] == [there], job_id


def test_the_advert_shows_no_free_slot_while_any_offer_would_be_refused() -> None:
    policy = AcceptPolicy(
        max_queued_jobs=2,
        max_bytes_per_day=1000,
        hours=HourWindow(start=datetime.time(20), end=datetime.time(6)),
    )
    night = datetime.time(23, 0)
    assert closed_now(policy, queued_jobs=1, bytes_today=999, local_time=night) == []
    codes = {r.code for r in closed_now(policy, queued_jobs=2, bytes_today=1000, local_time=NOON)}
    assert codes == {RefusalCode.QUEUED_JOBS, RefusalCode.BYTES_PER_DAY, RefusalCode.HOURS}
    assert closed_now(AcceptPolicy(), queued_jobs=99, bytes_today=10**12, local_time=NOON) == []
    told = advert_for(advert(), policy, closed=True)
    assert [(s.name, s.slots, s.free_slots) for s in told.servers] == [("node-1", 2, 0)]
    assert advert_for(advert(), policy) == advert()


class Load:
    """PeerLoad: ``queued`` open jobs of every peer here, no bytes."""

    def __init__(self, queued: int) -> None:
        self.queued = queued

    async def peer_open_jobs(self, site: str, *, pending_since: float) -> int:
        return self.queued

    async def offered_bytes_since(self, site: str, since: float) -> int:
        return 0


async def test_the_advertiser_asks_the_admission_checks_what_a_peer_may_send_now(
    tmp_path: Path,
) -> None:
    studio = PeerConfig(name="studio", url="https://s:8743", policy=AcceptPolicy(max_queued_jobs=1))
    site = FakeSite(tmp_path, server("s1"))
    for queued, free in ((0, 2), (1, 0)):
        admission = Admission(
            name="facility-a",
            load=Load(queued),
            views=site,
            onward=None,
            known_packages={"povray"},
            clock=Clock(),
        )
        advertiser = Advertiser(
            fed_config(studio), site, site, FakeClient(), FakePeers(), admission
        )
        told = await advertiser.advert_to(studio, advert())
        assert [s.free_slots for s in told.servers] == [free], queued
