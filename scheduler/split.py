"""Split jobs: which waiting chunks of a job rendered here go to which peer, as a *part*.

A split job keeps rendering here; peers with free capable slots get some of its
waiting chunks. This site's dispatcher takes a job's chunks in index order, so
parts take them from the end: both sides work towards the middle and no chunk is
ever in two places. Parts are sent in batches: a peer gets at most as many chunks
as it advertises free capable slots, and no new part of a job while one of that
job's parts there has chunks it has not started. When a part ends, the peer's next advert sizes
the next batch, so the work rebalances as sites finish without taking chunks back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.errors import PolicyError
from scheduler.frames import chunk_frames

__all__ = ["PartPlan", "PeerOpening", "plan_parts", "same_chunking"]


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
