"""Many peers: policy refusals at the remote, next candidate at the origin, no forwarding loops.

Runs the federation roles against the in-memory fakes of ``test_fed_roles.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

from test_fed_roles import (
    SHA,
    STUDIO,
    Clock,
    FakeClient,
    FakeFinish,
    FakeJobs,
    FakePeers,
    FakeQueue,
    FakeRows,
    FakeSite,
    fed_config,
    make_job,
    make_offer,
    server,
    until,
)

from federation.accept import Acceptance, remote_job_id
from federation.client import PeerUnavailableError
from federation.forwarding import Forwarding
from federation.peers import PeerConfig
from federation.placing import replaced_reason
from federation.policy import AcceptPolicy
from federation.protocol import Commit, CommitReply, Offer, OfferReply
from federation.reconcile import Reconciler
from scheduler.profile import JobProfile
from scheduler.ranking import PeerCapacity
from site_agent.store.records import LOCAL, JobRecord, JobState

A = PeerConfig(name="facility-a", url="https://a:8743")
B = PeerConfig(name="facility-b", url="https://b:8743")


def capacity(name: str, *, free: int = 1, preference: int = 0) -> PeerCapacity:
    return PeerCapacity(
        name=name, servers=(server(f"{name}-1", free=free),), queue_depth=0, preference=preference
    )


class Relay:
    """Relay for the remote side: records what it was asked to place."""

    def __init__(self, onward: list[str], place_at: str | None) -> None:
        self.onward = onward
        self.place_at = place_at
        self.asked: list[frozenset[str]] = []
        self.excluded: list[frozenset[str]] = []

    def onward_candidates(self, profile: JobProfile, exclude: object) -> list[str]:
        self.asked.append(frozenset(exclude))  # type: ignore[arg-type]
        return [name for name in self.onward if name not in exclude]  # type: ignore[operator]

    async def place(
        self, job: JobRecord, requested: str | None, exclude: frozenset[str] = frozenset()
    ) -> JobRecord:
        self.excluded.append(exclude)
        if self.place_at is None:
            return job
        return dataclasses.replace(
            job, placement=self.place_at, placement_epoch=1, placement_reason="onward"
        )


def acceptance(
    tmp_path: Path, *views: object, relay: Relay | None = None
) -> tuple[Acceptance, FakeJobs, FakeRows, FakeSite]:
    jobs, rows = FakeJobs(), FakeRows()
    site = FakeSite(tmp_path, *views)  # type: ignore[arg-type]
    return (
        Acceptance(
            name="facility",
            jobs=jobs,
            offers=rows,
            blobs=site,
            frames=site,
            views=site,
            wakeup=site,
            known_packages={"povray", "blender"},
            load=rows,
            relay=relay,
            clock=Clock(),
        ),
        jobs,
        rows,
        site,
    )


def with_policy(peer: PeerConfig, **policy: object) -> PeerConfig:
    return dataclasses.replace(peer, policy=AcceptPolicy(**policy))  # type: ignore[arg-type]


async def test_a_refusal_by_policy_carries_codes_and_sentences(tmp_path: Path) -> None:
    accept, _, rows, _ = acceptance(tmp_path, server())
    peer = with_policy(STUDIO, packages=frozenset({"blender"}), max_priority=10)
    reply = await accept.offer(peer, make_offer())
    assert not reply.accepted
    assert reply.codes == ("package", "priority")
    assert reply.reasons == (
        "package povray not accepted (accepted: blender)",
        "priority 50 is above the cap 10",
    )
    assert rows.offers == {}


async def test_max_queued_jobs_counts_what_the_peer_already_has_here(tmp_path: Path) -> None:
    accept, _, _, _ = acceptance(tmp_path, server())
    peer = with_policy(STUDIO, max_queued_jobs=1)
    assert (await accept.offer(peer, make_offer("studio:j1:1"))).accepted
    second = await accept.offer(peer, make_offer("studio:j2:1"))
    assert not second.accepted and second.codes == ("queued_jobs",)
    # The same offer again is answered as before (idempotent), not refused.
    assert (await accept.offer(peer, make_offer("studio:j1:1"))).accepted


async def test_an_offer_that_went_through_this_site_is_refused_as_a_loop(tmp_path: Path) -> None:
    accept, _, _, _ = acceptance(tmp_path, server())
    peer = with_policy(STUDIO, max_hops=5)
    looped = dataclasses.replace(make_offer(), path=("facility", "relay", "studio"))
    reply = await accept.offer(peer, looped)
    assert not reply.accepted and reply.codes == ("loop",)
    assert "already went through facility" in reply.reasons[0]


async def test_by_default_a_forwarded_job_is_not_accepted_again(tmp_path: Path) -> None:
    accept, _, _, _ = acceptance(tmp_path, server())
    second_hop = dataclasses.replace(make_offer(), path=("origin", "studio"))
    reply = await accept.offer(STUDIO, second_hop)
    assert not reply.accepted and reply.codes == ("hop_limit",)


async def test_a_path_that_does_not_end_with_its_sender_is_invalid(tmp_path: Path) -> None:
    accept, _, _, _ = acceptance(tmp_path, server())
    forged = dataclasses.replace(make_offer(), path=("elsewhere",))
    reply = await accept.offer(STUDIO, forged)
    assert not reply.accepted and reply.codes == ("invalid",)


async def test_with_a_hop_to_spare_a_job_nobody_here_can_run_is_accepted_and_sent_on(
    tmp_path: Path,
) -> None:
    relay = Relay(onward=["studio", "facility-c"], place_at="facility-c")
    accept, jobs, _, site = acceptance(tmp_path, server(package="blender"), relay=relay)
    peer = with_policy(STUDIO, max_hops=2)
    reply = await accept.offer(peer, make_offer())
    assert reply.accepted
    # Never back along the path, nor to itself.
    assert relay.asked == [frozenset({"studio", "facility"})]
    site.blobs.add(SHA)
    job_id = (await accept.commit(peer, Commit(key="studio:j1:1"))).remote_job_id
    assert relay.excluded == [frozenset({"studio"})]
    job = jobs.jobs[job_id]
    assert (job.placement, job.forward_allowed) == ("facility-c", True)


async def test_without_a_hop_to_spare_it_is_refused_as_incapable(tmp_path: Path) -> None:
    relay = Relay(onward=["facility-c"], place_at="facility-c")
    accept, _, _, _ = acceptance(tmp_path, server(package="blender"), relay=relay)
    reply = await accept.offer(STUDIO, make_offer())
    assert not reply.accepted and reply.codes == ("incapable",)
    assert relay.asked == []


async def test_an_accepted_job_is_placed_here_when_no_hop_is_allowed(tmp_path: Path) -> None:
    relay = Relay(onward=["facility-c"], place_at="facility-c")
    accept, jobs, _, site = acceptance(tmp_path, server(), relay=relay)
    site.blobs.add(SHA)
    await accept.offer(STUDIO, make_offer())
    await accept.commit(STUDIO, Commit(key="studio:j1:1"))
    job = jobs.jobs[remote_job_id("studio:j1:1")]
    assert (job.placement, job.forward_allowed) == (LOCAL, False)
    assert relay.excluded == []


# --- origin side -------------------------------------------------------------------


def origin(
    tmp_path: Path, job: JobRecord, *caps: PeerCapacity
) -> tuple[Forwarding, FakeJobs, FakeRows, FakeClient, FakePeers]:
    jobs, rows, client, peers = FakeJobs(job), FakeRows(), FakeClient(), FakePeers(*caps)
    site = FakeSite(tmp_path)
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
    return forwarding, jobs, rows, client, peers


async def test_placement_ranks_by_preference_and_explains(tmp_path: Path) -> None:
    f, *_ = origin(
        tmp_path, make_job(), capacity("facility-a"), capacity("facility-b", preference=3)
    )
    placed = await f.place(make_job(), None)
    assert placed.placement == "facility-b"
    assert placed.placement_reason.startswith("forwarded to facility-b: no local render servers")
    assert "next: facility-a has 1 capable server" in placed.placement_reason


async def test_a_refusal_moves_the_job_to_the_next_candidate_then_home(tmp_path: Path) -> None:
    job = make_job(placement="facility-a", epoch=1)
    f, jobs, rows, client, _ = origin(
        tmp_path, job, capacity("facility-a", preference=1), capacity("facility-b")
    )
    client.replies["/fed/v1/offer"] = [
        OfferReply(
            key="k", accepted=False, reasons=("package povray not accepted",), codes=("package",)
        )
    ]
    f.start(job)
    # facility-a refuses, then facility-b (the next candidate) refuses too: nobody is left,
    # the job stays here, queued, with the whole story.
    await until(lambda: jobs.jobs["j1"].placement_epoch == 3)
    final = jobs.jobs["j1"]
    assert final.placement == LOCAL
    assert final.placement_reason.startswith(
        "re-placed: facility-a refused (package povray not accepted); "
        "facility-b refused (package povray not accepted) → queued locally: "
    )
    assert "no other peer advertises one either" in final.placement_reason
    assert [(name, path) for name, path, _ in client.sent] == [
        ("facility-a", "/fed/v1/offer"),
        ("facility-b", "/fed/v1/offer"),
    ]
    assert {r.peer: r.state for r in rows.forwards.values()} == {
        "facility-a": "abandoned",
        "facility-b": "abandoned",
    }
    await f.close()


async def test_an_unreachable_first_choice_moves_the_offer_to_the_next(tmp_path: Path) -> None:
    job = make_job(placement="facility-a", epoch=1)
    f, jobs, _, client, peers = origin(
        tmp_path, job, capacity("facility-a", preference=1), capacity("facility-b")
    )
    answers = {
        "facility-a": PeerUnavailableError("facility-a", "connection refused"),
        "facility-b": OfferReply(key="studio:j1:2", accepted=True, missing=()),
    }

    async def send(peer: PeerConfig, path: str, msg: object, reply: type, **_: object) -> object:
        client.sent.append((peer.name, path, msg))  # type: ignore[arg-type]
        if path == "/fed/v1/commit":
            return CommitReply(key="studio:j1:2", remote_job_id="r9")
        answer = answers[peer.name]
        if isinstance(answer, Exception):
            raise answer
        return answer

    client.send = send  # type: ignore[method-assign]
    f.start(job)
    await until(lambda: jobs.jobs["j1"].remote_job_id == "r9")
    moved = jobs.jobs["j1"]
    assert (moved.placement, moved.placement_epoch) == ("facility-b", 2)
    assert moved.placement_reason.startswith("re-placed: facility-a unreachable → forwarded to")
    assert peers.failed == ["facility-a"]
    # The blobs facility-b already held are remembered for ranking later jobs.
    assert peers.held["facility-b"] == {SHA}
    assert "facility-a" not in peers.held
    await f.close()


async def test_an_offer_carries_the_path_and_uploaded_blobs_count_as_held(tmp_path: Path) -> None:
    job = make_job(placement="facility-a", epoch=1)
    f, _, _, client, peers = origin(tmp_path, job, capacity("facility-a"))
    client.replies["/fed/v1/offer"] = [OfferReply(key="k", accepted=True, missing=(SHA,))]
    client.replies["/fed/v1/commit"] = [CommitReply(key="k", remote_job_id="r1")]
    f.start(job)
    await until(lambda: any(path == "/fed/v1/commit" for _, path, _ in client.sent))
    offer = client.sent[0][2]
    assert isinstance(offer, Offer) and offer.path == ("studio",)
    assert client.uploaded == [SHA] and peers.held["facility-a"] == {SHA}  # now held there
    await f.close()


async def test_a_lease_expiry_re_places_the_job_at_another_peer(tmp_path: Path) -> None:
    job = dataclasses.replace(
        make_job(placement="facility-a", epoch=1), remote_job_id="r1", state=JobState.RUNNING
    )
    f, jobs, rows, client, peers = origin(
        tmp_path, job, capacity("facility-a", preference=1), capacity("facility-b")
    )
    clock = Clock(now=1061.0)  # facility-a silent since 1000: beyond the 60 s lease
    reconciler = Reconciler(
        config=fed_config(A, B, lease_s=60.0),
        jobs=jobs,
        forwards=rows,
        client=client,
        peers=peers,
        results=FakeFinish(),
        forwarding=f,
        clock=clock,
        poll_interval_s=0.001,
    )
    await rows.start_forward("j1", 1, "facility-a", at=1000.0)
    await rows.set_forward_state("j1", 1, "committed", remote_job_id="r1", at=1000.0)
    client.status["/fed/v1/jobs/r1"] = PeerUnavailableError("facility-a", "timed out")
    client.replies["/fed/v1/offer"] = [OfferReply(key="studio:j1:2", accepted=True)]
    client.replies["/fed/v1/commit"] = [CommitReply(key="studio:j1:2", remote_job_id="r2")]
    loop = asyncio.create_task(reconciler.run())
    try:
        await until(lambda: jobs.jobs["j1"].remote_job_id == "r2")
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    moved = jobs.jobs["j1"]
    assert (moved.placement, moved.placement_epoch) == ("facility-b", 2)
    assert moved.placement_reason.startswith(
        "re-placed: facility-a unreachable for 61s → forwarded to facility-b"
    ), moved.placement_reason
    assert rows.forwards[("j1", 1)].state == "abandoned"
    await f.close()


def test_the_replaced_reason_keeps_every_earlier_step() -> None:
    first = replaced_reason("forwarded to a: x", "a refused (p)", "forwarded to b: y")
    assert first == "re-placed: a refused (p) → forwarded to b: y"
    second = replaced_reason(first, "b unreachable", "queued locally: z")
    assert second == "re-placed: a refused (p); b unreachable → queued locally: z"
