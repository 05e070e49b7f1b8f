"""Split jobs: which waiting chunks of a job rendered here go to which peer, as a *part*.

A split job keeps rendering here; peers with free capable slots get some of its
waiting chunks. This site's dispatcher takes a job's chunks in index order, so
parts take them from the end: both sides work towards the middle and no chunk is
ever in two places. Parts are sent in batches: a peer gets at most as many chunks
as it advertises free capable slots, and no new part of a job while one of that
job's parts there has chunks it has not started. When a part ends, the peer's next advert sizes
the next batch, so faster sites get more.

An advert can be stale, or the peer's own jobs may take its slots first: then a part's
chunks wait there unstarted while this site runs out of work. :func:`plan_reclaims`
picks which of them to ask back (the peer gives back only those it has not started).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.errors import PolicyError
from scheduler.frames import chunk_frames

__all__ = [
    "PartHolding",
    "PartPlan",
    "PeerOpening",
    "ReclaimPlan",
    "plan_parts",
    "plan_reclaims",
    "same_chunking",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerOpening:
    """A peer that may get a part of the job now, best first in the caller's order."""

    name: str
    free_slots: int
    """Free slots of servers there that can run the job (from its capacity advert)."""
    open_part: bool = False
    """Whether a part of this job still has chunks that peer has not started (then it
    gets no other part of the job yet)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PartPlan:
    """Chunks (task indices, ascending) of the job to send to ``peer`` as one part."""

    peer: str
    indices: tuple[int, ...]


def plan_parts(
    waiting: Sequence[int], *, local_slots: int, peers: Sequence[PeerOpening]
) -> list[PartPlan]:
    """Parts to send now: from the end of ``waiting``, never the first ``local_slots`` chunks.

    ``waiting``: indices of the job's waiting chunks; ``local_slots``: this site's
    slots that can run the job (it keeps that many chunks for its next round, so a
    part never takes work its own servers are about to start).
    """
    if local_slots < 0 or any(p.free_slots < 0 for p in peers):
        raise PolicyError(f"slot counts must not be negative, got {local_slots} and {peers}")
    remaining = sorted(waiting)[local_slots:]
    plans: list[PartPlan] = []
    for peer in peers:
        if peer.open_part or peer.free_slots == 0 or not remaining:
            continue
        take = min(peer.free_slots, len(remaining))
        remaining, taken = remaining[:-take], remaining[-take:]
        plans.append(PartPlan(peer=peer.name, indices=tuple(taken)))
    return plans


def same_chunking(chunks: Sequence[tuple[int, ...]], chunk_size: int) -> bool:
    """Whether the part made of ``chunks`` (in order) is chunked into exactly those again.

    A part is an ordinary job of their frames with the same chunk size; its task i
    stands for the i-th chunk, which holds only while every chunk but the last is full.
    """
    frames = [frame for chunk in chunks for frame in chunk]
    return [tuple(c) for c in chunk_frames(frames, chunk_size)] == [tuple(c) for c in chunks]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartHolding:
    """A part of the job at a peer, as its last progress showed it."""

    part_id: str
    peer: str
    unstarted: tuple[int, ...]
    """The part's task positions still waiting at the peer."""
    asking: bool = False
    """Whether a reclaim of this part is still unanswered (then no other is sent)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReclaimPlan:
    """Ask ``peer`` for the part's chunks at ``indices`` (its task positions) back."""

    part_id: str
    peer: str
    indices: tuple[int, ...]


def plan_reclaims(
    *, waiting_here: int, free_slots: int, parts: Sequence[PartHolding]
) -> list[ReclaimPlan]:
    """Chunks to ask back so that ``free_slots`` have work: none while the job still has
    that many chunks waiting here.

    ``waiting_here``: the job's chunks waiting at this site; ``free_slots``: idle slots
    here that can run it, plus free capable slots of peers holding none of its unstarted
    chunks. The most held-up part gives first, from its end (its site starts from the
    front, so the chunks it would start next stay there).
    """
    if waiting_here < 0 or free_slots < 0:
        raise PolicyError(
            f"counts must not be negative, got {waiting_here} waiting and {free_slots} free"
        )
    want = free_slots - waiting_here
    plans: list[ReclaimPlan] = []
    for part in sorted(parts, key=lambda p: (-len(p.unstarted), p.part_id)):
        if want <= 0:
            break
        if part.asking or not part.unstarted:
            continue
        taken = tuple(sorted(part.unstarted)[-want:])
        plans.append(ReclaimPlan(part_id=part.part_id, peer=part.peer, indices=taken))
        want -= len(taken)
    return plans
