"""Peer ranking for placement: every capable peer in order, the rest skipped with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler import JobProfile, ServerView, decide_placement
from scheduler.ranking import PeerCapacity, rank_peers

POVRAY = JobProfile.from_requirement("povray>=3.7")


def server(sid: str, *, free: int = 2, slots: int = 2, povray: bool = True) -> ServerView:
    packages = {"builtin": "1.0.0", **({"povray": "3.7.0"} if povray else {})}
    return ServerView(
        id=sid,
        name=sid,
        cores=8,
        memory_mb=16384,
        gpus=0,
        packages=packages,
        tags=frozenset(),
        slots=slots,
        free_slots=free,
        status="idle",
    )


def peer(
    name: str,
    *,
    free: int = 2,
    queue: int = 0,
    preference: int = 0,
    cost: float = 0.0,
    held: int = 0,
    reachable: bool = True,
    povray: bool = True,
) -> PeerCapacity:
    return PeerCapacity(
        name=name,
        servers=(server(f"{name}-1", free=free, povray=povray),),
        queue_depth=queue,
        reachable=reachable,
        preference=preference,
        cost=cost,
        held_bytes=held,
    )


@pytest.mark.parametrize(
    ("peers", "order"),
    [
        # Preference is the operator's standing choice: it wins over everything else.
        ([peer("a", free=2), peer("b", free=0, queue=40, preference=5)], ["b", "a"]),
        # Free capable slots now before none.
        ([peer("a", free=0), peer("b", free=1)], ["b", "a"]),
        # Shorter estimated wait (queue depth over slots) next.
        ([peer("a", queue=10), peer("b", queue=2)], ["b", "a"]),
        # Then more of the job's bytes already there.
        ([peer("a", held=0), peer("b", held=5000)], ["b", "a"]),
        # Then the cheaper peer.
        ([peer("a", cost=2.0), peer("b", cost=1.0)], ["b", "a"]),
        # Bytes held count before cost: less to upload beats a cheaper rate.
        ([peer("a", cost=1.0), peer("b", cost=3.0, held=10)], ["b", "a"]),
        # Then more free slots, then the name.
        ([peer("b", free=1), peer("a", free=1), peer("c", free=2)], ["c", "a", "b"]),
    ],
)
def test_rank_order(peers: list[PeerCapacity], order: list[str]) -> None:
    assert [c.name for c in rank_peers(POVRAY, peers).candidates] == order


@pytest.mark.parametrize(
    ("candidate", "need_free", "reason"),
    [
        (peer("x", reachable=False), False, "unreachable"),
        (peer("x", povray=False), False, "advertises no server for povray>=3.7"),
        (peer("x", free=0), True, "no free capable slot"),
    ],
)
def test_skipped_peers_say_why(candidate: PeerCapacity, need_free: bool, reason: str) -> None:
    ranking = rank_peers(POVRAY, [candidate, peer("ok")], need_free=need_free)
    assert [c.name for c in ranking.candidates] == ["ok"]
    assert [(s.name, s.reason) for s in ranking.skipped] == [("x", reason)]


def test_excluded_peers_are_neither_candidates_nor_listed() -> None:
    ranking = rank_peers(POVRAY, [peer("a"), peer("b")], exclude={"a"})
    assert [c.name for c in ranking.candidates] == ["b"]
    assert ranking.skipped == ()


def test_the_placement_reason_names_the_choice_and_the_runners_up() -> None:
    placement = decide_placement(
        POVRAY,
        local_servers=[],
        peers=[
            peer("facility-a", preference=1),
            peer("facility-b", free=0, queue=4),
            peer("down", reachable=False),
        ],
        estimated_wait_s=0.0,
        overflow_after_s=None,
        job_bytes=2 * 1024 * 1024,
    )
    assert placement.site == "facility-a"
    assert placement.candidates == ("facility-a", "facility-b")
    assert placement.reason == (
        "forwarded to facility-a: no local render servers are registered; facility-a has "
        "1 capable server, 2 free slots, wait 0 s, holds 0.0 KiB of 2.0 MiB, preference 1 "
        "(next: facility-b has 1 capable server, 0 free slots, wait 2 s, holds 0.0 KiB of "
        "2.0 MiB; down skipped (unreachable))"
    )


def test_placement_never_picks_an_excluded_peer_and_says_none_is_left() -> None:
    placement = decide_placement(
        POVRAY,
        local_servers=[],
        peers=[peer("a"), peer("b")],
        estimated_wait_s=0.0,
        overflow_after_s=None,
        exclude={"a", "b"},
    )
    assert placement.site is None
    assert placement.reason == (
        "queued locally: no local render servers are registered; no other peer advertises one either"
    )


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 20),
            st.integers(-2, 2),
            st.floats(0, 5),
            st.integers(0, 10**6),
            st.booleans(),
            st.booleans(),
        ),
        max_size=6,
    ),
    st.sets(st.sampled_from([f"p{i}" for i in range(6)])),
)
def test_every_peer_is_either_a_candidate_skipped_or_excluded(
    specs: list[tuple[int, int, int, float, int, bool, bool]], exclude: set[str]
) -> None:
    peers = [
        peer(
            f"p{i}",
            free=free,
            queue=queue,
            preference=pref,
            cost=cost,
            held=held,
            reachable=reachable,
            povray=povray,
        )
        for i, (free, queue, pref, cost, held, reachable, povray) in enumerate(specs)
    ]
    ranking = rank_peers(POVRAY, peers, exclude=exclude)
    names = [c.name for c in ranking.candidates] + [s.name for s in ranking.skipped]
    assert sorted(names) == sorted(p.name for p in peers if p.name not in exclude)
    prefs = [c.preference for c in ranking.candidates]
    assert prefs == sorted(prefs, reverse=True)
    for c in ranking.candidates:
        chosen = next(p for p in peers if p.name == c.name)
        assert chosen.reachable and chosen.name not in exclude
