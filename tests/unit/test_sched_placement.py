"""Placement: local first, forward when no local capability or on overflow."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler import (
    JobProfile,
    PeerCapacity,
    Placement,
    PolicyError,
    ProfileError,
    ServerView,
    decide_placement,
    estimate_local_wait_s,
)

POVRAY = JobProfile.from_requirement("povray>=3.7")


def server(
    sid: str, *, packages: Mapping[str, str] | None = None, status: str = "idle", free: int = 2
) -> ServerView:
    return ServerView(
        id=sid,
        name=sid,
        cores=8,
        memory_mb=16384,
        gpus=0,
        packages={"builtin": "1.0.0", "povray": "3.7.0.10"} if packages is None else packages,
        tags=frozenset(),
        slots=2,
        free_slots=free,
        status=status,
    )


BUILTIN_ONLY = {"builtin": "1.0.0"}


def peer(name: str, *servers: ServerView, queue: int = 0, reachable: bool = True) -> PeerCapacity:
    return PeerCapacity(name=name, servers=servers, queue_depth=queue, reachable=reachable)


def place(
    *,
    local: list[ServerView],
    peers: list[PeerCapacity],
    wait: float = 0.0,
    overflow: float | None = None,
    **kwargs: object,
) -> Placement:
    return decide_placement(
        POVRAY,
        local_servers=local,
        peers=peers,
        estimated_wait_s=wait,
        overflow_after_s=overflow,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("frames", "slots", "avg", "expected"),
    [(100, 10, 2.0, 20.0), (0, 4, 5.0, 0.0), (10, 0, 1.0, math.inf), (3, 2, 1.0, 1.5)],
)
def test_estimate_local_wait(frames: int, slots: int, avg: float, expected: float) -> None:
    assert (
        estimate_local_wait_s(queued_frames_ahead=frames, capable_slots=slots, avg_frame_s=avg)
        == expected
    )


def test_estimate_local_wait_rejects_negative() -> None:
    with pytest.raises(PolicyError):
        estimate_local_wait_s(queued_frames_ahead=-1, capable_slots=1, avg_frame_s=1.0)


def test_local_first_when_local_server_matches() -> None:
    placement = place(local=[server("l1")], peers=[peer("facility", server("r1"))])
    assert placement.site is None
    assert "can run povray>=3.7" in placement.reason


def test_forward_when_no_local_server_can_ever_match() -> None:
    peers = [
        peer("busyplace", server("r1", free=0, status="busy"), queue=5),
        peer("facility", server("r2"), server("r3", free=1)),
    ]
    placement = place(local=[server("l1", packages=BUILTIN_ONLY)], peers=peers)
    assert placement == Placement(
        site="facility",
        reason=(
            "forwarded to facility: no local server has povray>=3.7; "
            "facility has 2 capable servers, 3 free slots, wait 0 s "
            "(next: busyplace has 1 capable server, 0 free slots, wait 2 s)"
        ),
        candidates=("facility", "busyplace"),
    )


@pytest.mark.parametrize(
    ("peers", "expected"),
    [
        ([peer("b", server("r1"), queue=3), peer("a", server("r2"), queue=3)], "a"),
        ([peer("a", server("r1"), queue=9), peer("b", server("r2"), queue=1)], "b"),
        # No wait beats more free slots behind a long queue.
        ([peer("a", server("r1", free=1)), peer("b", server("r2", free=2), queue=50)], "a"),
        ([peer("a", server("r1", free=1)), peer("b", server("r2", free=2))], "b"),
        (
            [
                peer("a", server("r1"), reachable=False),
                peer("b", server("r2", free=0, status="offline")),
            ],
            "b",
        ),
    ],
)
def test_peer_choice(peers: list[PeerCapacity], expected: str) -> None:
    assert place(local=[], peers=peers).site == expected


def test_stays_local_when_nobody_can_run_it() -> None:
    placement = place(
        local=[server("l1", packages=BUILTIN_ONLY)],
        peers=[peer("facility", server("r1", packages=BUILTIN_ONLY))],
    )
    assert placement.site is None
    assert placement.reason == (
        "queued locally: no local server has povray>=3.7; no peer advertises one either"
    )


def test_unreachable_peers_are_named() -> None:
    placement = place(local=[], peers=[peer("facility", server("r1"), reachable=False)])
    assert placement.site is None
    assert "no local render servers are registered" in placement.reason
    assert "only unreachable peers (facility)" in placement.reason


def test_overflow_forwards_only_to_free_capacity() -> None:
    local = [server("l1", free=0, status="busy")]
    full = peer("full", server("r1", free=0, status="busy"))
    free = peer("free", server("r2", free=2))
    forwarded = place(local=local, peers=[full, free], wait=3600.0, overflow=600.0)
    assert forwarded.site == "free"
    assert "estimated local wait 60 min exceeds overflow_after 10 min" in forwarded.reason
    stayed = place(local=local, peers=[full], wait=3600.0, overflow=600.0)
    assert stayed.site is None
    assert "no reachable peer has free capable slots" in stayed.reason


@pytest.mark.parametrize(("wait", "overflow"), [(100.0, 600.0), (600.0, 600.0), (1e9, None)])
def test_no_overflow_stays_local(wait: float, overflow: float | None) -> None:
    placement = place(
        local=[server("l1", free=0, status="busy")],
        peers=[peer("p", server("r1"))],
        wait=wait,
        overflow=overflow,
    )
    assert placement.site is None


def test_an_offline_local_server_is_no_capacity() -> None:
    placement = place(local=[server("l1", status="offline")], peers=[peer("p", server("r1"))])
    assert placement.site == "p"
    assert "no online local server has" in placement.reason and "1 capable server offline" in (
        placement.reason
    )
    stays = place(local=[server("l1", status="offline")], peers=[])
    assert stays.site is None and "no online local server has" in stays.reason


@pytest.mark.parametrize(
    ("requested", "expected"),
    [("local", None), ("", None), ("LOCAL", None), ("facility", "facility"), ("far", "far")],
)
def test_requested_site(requested: str, expected: str | None) -> None:
    peers = [peer("facility"), peer("far", reachable=False)]
    assert place(local=[server("l1")], peers=peers, requested_site=requested).site == expected


def test_unknown_requested_site_names_known_sites() -> None:
    with pytest.raises(ProfileError, match="unknown site 'mars': known sites are local, facility"):
        place(local=[], peers=[peer("facility")], requested_site="mars")


def test_forwarding_disabled() -> None:
    placement = place(
        local=[],
        peers=[peer("facility", server("r1"))],
        requested_site="facility",
        allow_forward=False,
    )
    assert placement == Placement(site=None, reason="forwarding disabled for this job")


@given(
    st.lists(st.sampled_from(["idle", "busy", "offline", "disabled"]), max_size=3),
    st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.booleans()), max_size=3),
    st.floats(0, 1e5),
    st.one_of(st.none(), st.floats(0, 1e5)),
)
def test_placement_only_forwards_to_reachable_capable_peers(
    local_statuses: list[str],
    peer_specs: list[tuple[bool, int, bool]],
    wait: float,
    overflow: float | None,
) -> None:
    local = [server(f"l{i}", status=status) for i, status in enumerate(local_statuses)]
    peers = [
        peer(
            f"p{i}",
            server(f"r{i}", packages=None if capable else BUILTIN_ONLY, free=free),
            reachable=reachable,
        )
        for i, (capable, free, reachable) in enumerate(peer_specs)
    ]
    placement = place(local=local, peers=peers, wait=wait, overflow=overflow)
    assert placement.reason
    if placement.site is not None:
        chosen = next(p for p in peers if p.name == placement.site)
        assert chosen.reachable
        assert chosen.servers[0].packages.get("povray")
        assert placement.reason.startswith(f"forwarded to {chosen.name}: ")
    if any(s.online for s in local) and (overflow is None or wait <= overflow):
        assert placement.site is None
