"""Split jobs: which waiting chunks go to which peer as a part (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.errors import PolicyError
from scheduler.frames import chunk_frames
from scheduler.split import (
    PartHolding,
    PartPlan,
    PeerOpening,
    plan_parts,
    plan_reclaims,
    same_chunking,
)


def peer(name: str, free: int, *, open_part: bool = False) -> PeerOpening:
    return PeerOpening(name=name, free_slots=free, open_part=open_part)


@pytest.mark.parametrize(
    ("waiting", "local_slots", "peers", "expected"),
    [
        # Parts take chunks from the end; this site keeps its next round (2 slots).
        (range(10), 2, [peer("a", 3)], [PartPlan(peer="a", indices=(7, 8, 9))]),
        # Peers in the caller's order, each from what is left at the end.
        (
            range(10),
            2,
            [peer("a", 2), peer("b", 3)],
            [PartPlan(peer="a", indices=(8, 9)), PartPlan(peer="b", indices=(5, 6, 7))],
        ),
        # Never more than what is left after this site's own slots.
        (range(4), 2, [peer("a", 5)], [PartPlan(peer="a", indices=(2, 3))]),
        (range(2), 2, [peer("a", 5)], []),
        # One open part per peer and job: the next batch waits for it.
        (
            range(10),
            1,
            [peer("a", 4, open_part=True), peer("b", 1)],
            [PartPlan(peer="b", indices=(9,))],
        ),
        # No free capable slot at the peer: nothing.
        (range(10), 1, [peer("a", 0)], []),
        # No capable slot here: every chunk may go.
        ([3, 5, 8], 0, [peer("a", 8)], [PartPlan(peer="a", indices=(3, 5, 8))]),
        # Gaps (chunks running here or already sent) are skipped.
        ([0, 4, 6, 7], 1, [peer("a", 2)], [PartPlan(peer="a", indices=(6, 7))]),
    ],
)
def test_plan_parts(
    waiting: range | list[int], local_slots: int, peers: list[PeerOpening], expected: list[PartPlan]
) -> None:
    assert plan_parts(list(waiting), local_slots=local_slots, peers=peers) == expected


def test_negative_slots_are_refused() -> None:
    with pytest.raises(PolicyError, match="must not be negative"):
        plan_parts([1], local_slots=-1, peers=[])
    with pytest.raises(PolicyError, match="must not be negative"):
        plan_parts([1], local_slots=0, peers=[peer("a", -1)])


@given(
    waiting=st.sets(st.integers(0, 200), max_size=60),
    local=st.integers(0, 8),
    frees=st.lists(st.tuples(st.integers(0, 10), st.booleans()), max_size=5),
)
def test_a_chunk_goes_to_one_place_at_most(
    waiting: set[int], local: int, frees: list[tuple[int, bool]]
) -> None:
    peers = [peer(f"p{i}", free, open_part=busy) for i, (free, busy) in enumerate(frees)]
    plans = plan_parts(sorted(waiting), local_slots=local, peers=peers)
    sent = [i for plan in plans for i in plan.indices]
    assert len(sent) == len(set(sent))
    assert set(sent) <= waiting
    assert set(sorted(waiting)[:local]).isdisjoint(sent)
    for plan in plans:
        opening = next(p for p in peers if p.name == plan.peer)
        assert not opening.open_part and 0 < len(plan.indices) <= opening.free_slots


def test_same_chunking() -> None:
    chunks = chunk_frames(list(range(1, 11)), 4)  # (1-4), (5-8), (9, 10)
    assert same_chunking([chunks[1], chunks[2]], 4)
    assert same_chunking([chunks[0], chunks[2]], 4)
    # A short chunk anywhere but last would be chunked differently in the part.
    assert not same_chunking([chunks[2], chunks[0]], 4)
    assert same_chunking([(1, 11, 21)], 3)


@given(
    waiting=st.integers(0, 6),
    free=st.integers(0, 12),
    parts=st.lists(st.tuples(st.sets(st.integers(0, 9), max_size=6), st.booleans()), max_size=4),
)
def test_reclaims_ask_only_unstarted_chunks_and_no_more_than_the_idle_slots(
    waiting: int, free: int, parts: list[tuple[set[int], bool]]
) -> None:
    holdings = [
        PartHolding(part_id=f"p{i}", peer="a", unstarted=tuple(sorted(u)), asking=asking)
        for i, (u, asking) in enumerate(parts)
    ]
    plans = plan_reclaims(waiting_here=waiting, free_slots=free, parts=holdings)
    by_id = {h.part_id: h for h in holdings}
    assert len({p.part_id for p in plans}) == len(plans)  # one request per part
    for plan in plans:
        part = by_id[plan.part_id]
        assert not part.asking and plan.indices and set(plan.indices) <= set(part.unstarted)
    assert sum(len(p.indices) for p in plans) == min(
        max(0, free - waiting), sum(len(h.unstarted) for h in holdings if not h.asking)
    )
