"""What a progress snapshot carries: only the tasks changed since the origin acknowledged one,
and everything an unacknowledged snapshot carried (a lost snapshot loses nothing)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.progress_delta import SnapshotDeltas
from federation.protocol import TaskProgress


def task(index: int, state: str = "running", attempt: int = 1) -> TaskProgress:
    return TaskProgress(index=index, state=state, attempt=attempt, server="fac-1")


def indices(tasks: tuple[TaskProgress, ...]) -> list[int]:
    return [t.index for t in tasks]


def test_a_snapshot_carries_what_changed_since_the_last_acknowledged_one() -> None:
    deltas = SnapshotDeltas()
    first = deltas.delta("r1", [task(0), task(1)])
    assert indices(first) == [0, 1]  # nothing acknowledged yet: everything
    deltas.sent("r1", 1, first)
    deltas.acknowledged("r1", 1)
    second = deltas.delta("r1", [task(0), task(1, "done"), task(2)])
    assert indices(second) == [1, 2]
    deltas.sent("r1", 2, second)
    # Snapshot 2 is lost (or replaced before it went): the next one carries its tasks again.
    third = deltas.delta("r1", [task(0), task(1, "done"), task(2), task(3)])
    assert indices(third) == [1, 2, 3]
    deltas.sent("r1", 3, third)
    deltas.acknowledged("r1", 3)
    deltas.acknowledged("r1", 2)  # a late acknowledgement of an older one changes nothing
    assert deltas.delta("r1", [task(0), task(1, "done"), task(2), task(3)]) == ()


def test_a_task_that_changed_and_changed_back_unacknowledged_is_sent_again() -> None:
    deltas = SnapshotDeltas()
    deltas.sent("r1", 1, deltas.delta("r1", [task(0, "waiting", 1)]))
    deltas.acknowledged("r1", 1)
    deltas.sent("r1", 2, deltas.delta("r1", [task(0, "running", 1)]))
    # Requeued: as acknowledged again, but snapshot 2 (maybe applied) said running.
    assert indices(deltas.delta("r1", [task(0, "waiting", 1)])) == [0]


def test_a_forgotten_or_unknown_job_gets_everything() -> None:
    deltas = SnapshotDeltas()
    deltas.acknowledged("r1", 5)  # e.g. delivered after a restart: nothing known
    deltas.sent("r1", 6, (task(0),))
    deltas.acknowledged("r1", 6)
    deltas.forget("r1")
    assert indices(deltas.delta("r1", [task(0)])) == [0]


STATES = st.sampled_from(["waiting", "dispatched", "running", "done", "failed"])


@given(
    rounds=st.lists(
        st.tuples(st.dictionaries(st.integers(0, 5), STATES, max_size=6), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
def test_the_origin_applying_any_delivered_snapshots_in_order_has_the_remote_state(
    rounds: list[tuple[dict[int, str], bool]],
) -> None:
    """Whichever snapshots get through (each acknowledged when it does), the origin that
    applies them in order (newer numbers only) ends with the remote's tasks as of the
    last one it applied, for every task that snapshot's state has."""
    deltas = SnapshotDeltas()
    origin: dict[int, TaskProgress] = {}
    state: dict[int, TaskProgress] = {}
    for seq, (changes, delivered) in enumerate(rounds, start=1):
        state.update({i: task(i, s) for i, s in changes.items()})
        carried = deltas.delta("r1", sorted(state.values(), key=lambda t: t.index))
        deltas.sent("r1", seq, carried)
        if delivered:
            origin.update({t.index: t for t in carried})
            deltas.acknowledged("r1", seq)
            assert origin == state
