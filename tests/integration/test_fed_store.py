"""Federation state (the federation migration chain) and the site lifecycle's placement
transitions with federation statements in the same transaction, against SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from federation.capacity import PeerBook
from federation.peers import FederationConfig, PeerConfig
from federation.store import FederationStore
from federation.tls import TlsFiles
from scheduler.dependencies import DependencyKind
from scheduler.profile import JobProfile
from site_agent.lifecycle import Lifecycle
from site_agent.store import Store
from site_agent.store.queries import GET_JOB_BY_ORIGIN_ID
from site_agent.store.records import LOCAL, FrameRecord, JobRecord, JobState, TaskState
from spillway.core.records import FileEntry


def make_job(job_id: str, *, placement: str = LOCAL) -> JobRecord:
    return JobRecord(
        id=job_id,
        name=f"shot {job_id}",
        owner="ana",
        origin_site="studio",
        priority=50,
        profile=JobProfile(package="povray"),
        frames="1-6",
        frame_count=6,
        chunk_size=3,
        scene="scene.pov",
        manifest=(FileEntry(path="scene.pov", sha256="a" * 64, size=12),),
        output_name="shot",
        placement=placement,
        created_at=100.0,
        updated_at=100.0,
    )


def lc(store: Store) -> Lifecycle:
    return Lifecycle(store)


async def fed(store: Store) -> FederationStore:
    return await FederationStore.open(store.database)


async def test_offers_are_keyed_and_committed_once(store: Store) -> None:
    s = await fed(store)
    body = {"key": "studio:j1:1", "manifest": [{"sha256": "a" * 64}]}
    first = await s.insert_offer(
        key="studio:j1:1", site="studio", origin_job_id="j1", epoch=1, body=body, at=10.0
    )
    again = await s.insert_offer(
        key="studio:j1:1", site="studio", origin_job_id="j1", epoch=1, body={"other": 1}, at=20.0
    )
    assert again == first and first.body == body and first.remote_job_id is None
    assert [o.key for o in await s.pending_offers("studio")] == ["studio:j1:1"]
    assert await s.commit_offer("studio:j1:1", "r1", at=30.0)
    assert not await s.commit_offer("studio:j1:1", "r2", at=31.0)
    committed = await s.offer_by_job("r1")
    assert (
        committed is not None and committed.key == "studio:j1:1" and committed.committed_at == 30.0
    )
    assert await s.pending_offers("studio") == []


async def test_replay_guard_remembers_ids_per_site(store: Store) -> None:
    s = await fed(store)
    assert not await s.seen("studio", "m1")
    await s.mark_seen("studio", "m1", at=1.0)
    await s.mark_seen("studio", "m1", at=2.0)
    assert await s.seen("studio", "m1")
    assert not await s.seen("facility", "m1")


async def test_replay_guard_forgets_only_old_ids(store: Store) -> None:
    s = await fed(store)
    await s.mark_seen("studio", "old", at=100.0)
    await s.mark_seen("studio", "new", at=500.0)
    assert await s.prune_seen(before=200.0) == 1
    assert not await s.seen("studio", "old")
    assert await s.seen("studio", "new")


async def test_outbox_is_idempotent_and_newer_progress_supersedes(store: Store) -> None:
    s = await fed(store)
    common = {"peer": "studio", "kind": "notify", "job_id": "r1"}
    assert await s.enqueue(msg_id="p1", body={"n": 1}, final=False, at=1.0, **common)
    assert await s.enqueue(msg_id="p2", body={"n": 2}, final=False, at=2.0, **common)
    assert not await s.enqueue(msg_id="p2", body={"n": 3}, final=False, at=3.0, **common)
    assert [e.id for e in await s.pending_outbox()] == ["p2"]
    assert await s.enqueue(msg_id="final", body={"n": 9}, final=True, at=4.0, **common)
    pending = await s.pending_outbox()
    assert [(e.id, e.final, dict(e.body)) for e in pending] == [("final", True, {"n": 9})]
    await s.outbox_attempt("final", "peer unreachable")
    entry = await s.get_outbox("final")
    assert entry is not None and entry.attempts == 1 and entry.last_error == "peer unreachable"
    await s.outbox_delivered("final", at=5.0)
    assert await s.pending_outbox() == []


async def test_finished_accepted_jobs_without_final_notification_are_found(store: Store) -> None:
    s = await fed(store)
    await lc(store).create(dataclasses.replace(make_job("r1"), origin_job_id="j1"), [(1,)])
    await s.insert_offer(
        key="studio:j1:1", site="studio", origin_job_id="j1", epoch=1, body={}, at=1.0
    )
    await s.commit_offer("studio:j1:1", "r1", at=2.0)
    assert await s.finished_offers_without_final() == []
    async with store.transaction() as tx:  # the job finished (as its last task would finish it)
        await tx.set_job_state("r1", JobState.DONE, at=3.0, expected=tuple(JobState))
    assert [o.key for o in await s.finished_offers_without_final()] == ["studio:j1:1"]
    await s.enqueue(
        msg_id="notify:r1:1:final",
        peer="studio",
        kind="notify",
        job_id="r1",
        body={},
        final=True,
        at=4.0,
    )
    assert await s.finished_offers_without_final() == []


async def test_forward_lifecycle_transfer_and_epoch_fencing(store: Store) -> None:
    s = await fed(store)
    job = dataclasses.replace(make_job("j1", placement="facility"), placement_epoch=1)
    await lc(store).create(job, [(1,), (2,)])
    await s.start_forward("j1", 1, "facility", at=10.0)
    await s.start_forward("j1", 1, "facility", at=11.0)  # idempotent
    await s.add_transfer("j1", 1, bytes_sent=100, blobs_sent=1, blobs_skipped=2, at=12.0)
    await s.set_forward_state("j1", 1, "committed", remote_job_id="r1", at=13.0)
    row = await s.latest_forward("j1")
    assert row is not None
    assert (row.state, row.remote_job_id, row.bytes_sent, row.blobs_skipped) == (
        "committed",
        "r1",
        100,
        2,
    )
    assert [r.job_id for r in await s.open_forwards()] == ["j1"]
    await s.forward_contact("j1", 1, remote_state="running", frames_done=1, at=14.0)

    # Re-placement moves to epoch 2; a result of epoch 1 then changes nothing.
    abandon = s.forward_state_hook("j1", 1, "abandoned", at=20.0)
    assert (
        await lc(store).replace_job(
            "j1", old_epoch=1, placement="local", reason="re-placed", at=20.0, hook=abandon
        )
        == 2
    )
    abandoned = await s.get_forward("j1", 1)
    assert abandoned is not None and abandoned.state == "abandoned"
    assert (
        await lc(store).replace_job("j1", old_epoch=1, placement="local", reason="again", at=21.0)
        is None
    )
    assert await s.open_forwards() == []
    frames = [
        FrameRecord(
            job_id="j1",
            frame=n,
            task_id=None,
            name=f"f{n}.png",
            sha256="c" * 64,
            size=10,
            server_id="facility",
            rendered_at=30.0,
        )
        for n in (1, 2)
    ]
    assert not await lc(store).finish_forwarded_job(
        "j1", epoch=1, state=JobState.DONE, frames=frames, error="", at=30.0
    )
    assert await store.list_frames("j1") == []
    current = await store.get_job("j1")
    assert current is not None and current.placement == "local" and current.placement_epoch == 2


async def test_jobs_at_a_peer_never_offered_are_found_with_their_upstreams(
    store: Store,
) -> None:
    """What the origin's restart offers: queued jobs at a peer with no forward at their epoch
    (``Reconciler.resume`` then keeps those whose upstreams all ended as they need)."""
    s = await fed(store)
    at_peer = {
        j: dataclasses.replace(make_job(j, placement="facility"), placement_epoch=1)
        for j in ("comp", "fresh", "sent", "moved")
    }
    await lc(store).create(make_job("render"), [(1,)])
    await lc(store).create(at_peer["comp"], [(1,)], after=[("render", DependencyKind.DONE)])
    for job_id in ("fresh", "sent", "moved"):
        await lc(store).create(at_peer[job_id], [(1,)])
    await s.start_forward("sent", 1, "facility", at=10.0)
    await s.start_forward("moved", 1, "facility", at=10.0)
    # Re-placed to another peer (epoch 2): the forward of epoch 1 does not count.
    assert await lc(store).replace_job(
        "moved", old_epoch=1, placement="elsewhere", reason="lease", at=11.0
    )
    await lc(store).create(make_job("gone", placement="facility"), [(1,)])
    await lc(store).cancel("gone", at=12.0)

    assert sorted(await s.unforwarded_jobs()) == ["comp", "fresh", "moved"]
    upstreams = await store.job_upstreams(["comp", "fresh"])
    assert [(u.job_id, u.state) for u in upstreams["comp"]] == [("render", "queued")]
    assert "fresh" not in upstreams


async def test_finishing_a_forwarded_job_records_frames_and_ends_its_tasks(store: Store) -> None:
    s = await fed(store)
    job = dataclasses.replace(make_job("j1", placement="facility"), placement_epoch=1)
    await lc(store).create(job, [(1,), (2,)])
    await s.start_forward("j1", 1, "facility", at=20.0)
    frames = [
        FrameRecord(
            job_id="j1",
            frame=n,
            task_id=None,
            name=f"f{n}.png",
            sha256="c" * 64,
            size=10,
            server_id="facility",
            rendered_at=30.0,
        )
        for n in (1, 2)
    ]
    finished_hook = s.forward_state_hook("j1", 1, "finished", at=30.0)
    assert await lc(store).finish_forwarded_job(
        "j1", epoch=1, state=JobState.DONE, frames=frames, error="", at=30.0, hook=finished_hook
    )
    forward = await s.get_forward("j1", 1)
    assert forward is not None and forward.state == "finished"
    assert not await lc(store).finish_forwarded_job(
        "j1", epoch=1, state=JobState.DONE, frames=frames, error="", at=31.0
    )
    finished = await store.get_job("j1")
    assert finished is not None and finished.state == JobState.DONE
    assert {t.state for t in await store.list_tasks("j1")} == {TaskState.DONE}
    assert [f.frame for f in await store.list_frames("j1")] == [1, 2]


async def test_adverts_and_placement_inputs(store: Store) -> None:
    s = await fed(store)
    await s.save_advert("facility", {"servers": [], "queue_depth": 1}, at=1.0)
    await s.save_advert("facility", {"servers": [], "queue_depth": 2}, at=2.0)
    adverts = await s.list_adverts()
    assert [(a.name, a.advert["queue_depth"], a.last_seen) for a in adverts] == [
        ("facility", 2, 2.0)
    ]
    await lc(store).create(make_job("j1"), [(1, 2, 3), (4, 5, 6)])
    assert await store.local_frames_waiting() == 6  # 2 waiting tasks of chunk size 3
    assert await store.seconds_per_frame() is None


async def test_refusals_of_a_job_are_kept_newest_first_and_old_ones_pruned(store: Store) -> None:
    s = await fed(store)
    await s.save_job_refusal(
        "facility-a", "j1", ["priority 80 is above the cap 50"], at=10.0, keep_s=100
    )
    await s.save_job_refusal(
        "facility-b", "j1", ["package blender not accepted"], at=20.0, keep_s=100
    )
    await s.save_job_refusal(
        "facility-a", "j1", ["priority 90 is above the cap 50"], at=30.0, keep_s=100
    )
    assert await s.job_refusals(10) == [("facility-a", "j1"), ("facility-b", "j1")]
    assert await s.job_refusals(1) == [("facility-a", "j1")]
    await s.save_job_refusal(
        "facility-b", "j2", ["package blender not accepted"], at=125.0, keep_s=100
    )
    assert await s.job_refusals(10) == [("facility-b", "j2"), ("facility-a", "j1")]  # 20 < 25: gone


async def test_a_restarted_peer_book_still_keeps_a_refused_job_from_that_peer(
    store: Store,
) -> None:
    config = FederationConfig(
        tls=TlsFiles(ca=Path("ca.pem"), cert=Path("site.pem"), key=Path("site.key")),
        peers=(PeerConfig(name="facility", url="https://f:8743"),),
        listen="127.0.0.1:0",
        overflow_after_s=None,
        lease_s=60.0,
    )
    book = PeerBook(config, await fed(store))
    await book.refused("facility", "j1", ["priority"], ["priority 80 is above the cap 50"])
    await book.refused("facility", "j2", ["queued_jobs"], ["4 jobs queued, the cap is 4"])
    restarted = PeerBook(config, await fed(store))
    await restarted.load()
    assert restarted.refusing("j1") == {"facility"}
    assert restarted.refusing("j2") == frozenset()


async def test_what_a_peer_already_has_here_counts_for_its_policy(store: Store) -> None:
    s = await fed(store)

    def body(size: int) -> dict[str, object]:
        return {"manifest": [{"path": "a", "sha256": "a" * 64, "size": size}]}

    for key, at, size in (("studio:j1:1", 10.0, 100), ("studio:j2:1", 5000.0, 20)):
        await s.insert_offer(
            key=key, site="studio", origin_job_id=key, epoch=1, body=body(size), at=at
        )
    await s.insert_offer(
        key="rival:j1:1", site="rival", origin_job_id="x", epoch=1, body=body(7), at=10.0
    )
    await lc(store).create(make_job("r1"), [(1, 2, 3), (4, 5, 6)])
    await s.commit_offer("studio:j1:1", "r1", at=11.0)
    # r1 unfinished, plus j2 pending since 5000 (j1 no longer pending: committed).
    assert await s.peer_open_jobs("studio", pending_since=0.0) == 2
    assert await s.peer_open_jobs("studio", pending_since=6000.0) == 1
    await lc(store).cancel("r1", at=12.0)
    assert await s.peer_open_jobs("studio", pending_since=6000.0) == 0
    assert await s.offered_bytes_since("studio", 0.0) == 120
    assert await s.offered_bytes_since("studio", 1000.0) == 20
    assert await s.offered_bytes_since("nobody", 0.0) == 0


async def test_forward_peers_lists_every_peer_of_every_epoch(store: Store) -> None:
    s = await fed(store)
    assert await s.forward_peers("j1") == []
    await s.start_forward("j1", 1, "facility-a", at=1.0)
    await s.start_forward("j1", 2, "facility-b", at=2.0)
    await s.start_forward("j2", 1, "facility-c", at=3.0)
    assert await s.forward_peers("j1") == ["facility-a", "facility-b"]


async def test_an_accepted_job_is_found_by_its_origin_id_through_an_index(store: Store) -> None:
    """The remote's lookup by the origin's job id (``spillway job ORIGIN_ID`` there) reads the
    federation chain's partial index, not every job of the site."""
    await fed(store)
    for job_id, at in (("r-old", 100.0), ("r-new", 200.0)):  # re-offered: the newest wins
        job = dataclasses.replace(make_job(job_id), origin_job_id="o-1", created_at=at)
        await lc(store).create(job, [(1, 2, 3), (4, 5, 6)])
    await lc(store).create(make_job("local-1"), [(1, 2, 3)])
    found = await store.get_job_by_origin_id("o-1")
    assert found is not None and found.id == "r-new"
    assert await store.get_job_by_origin_id("nobody") is None
    db = store.database
    async with db.transaction() as conn:
        if db.dialect == "postgres":
            # A handful of rows: make the planner show whether it can use the index at all.
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = " ".join(
                r[0] for r in await conn.fetch("EXPLAIN " + GET_JOB_BY_ORIGIN_ID, "o-1")
            )
        else:
            rows = await conn.fetch("EXPLAIN QUERY PLAN " + GET_JOB_BY_ORIGIN_ID, "o-1")
            plan = " ".join(str(r["detail"]) for r in rows)
    assert "jobs_origin_job" in plan, plan
