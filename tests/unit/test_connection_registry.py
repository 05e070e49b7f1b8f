"""Which connected servers a dispatch round plans for (the registry's free-slot candidates)."""

from __future__ import annotations

from typing import cast

from aiohttp import web

from site_agent.connections import FULL_SCAN_S, ActiveTask, ConnectionRegistry, ServerConnection
from site_agent.store.records import ServerRecord


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _conn(name: str, *, slots: int = 1) -> ServerConnection:
    record = ServerRecord(id=f"s-{name}", name=name, host="h", cores=1, memory_mb=1, slots=slots)
    ws = cast(web.WebSocketResponse, object())
    return ServerConnection(record=record, ws=ws, last_seen=0.0, reconciled=True)


def _hold(conn: ServerConnection, task_id: int) -> None:
    conn.running[(task_id, 1)] = ActiveTask(task_id=task_id, attempt=1, job_id="j", frames=(1,))


def _names(registry: ConnectionRegistry) -> list[str]:
    return sorted(view.name for view in registry.dispatchable())


def test_a_released_slot_is_planned_for_without_a_pass_over_every_server() -> None:
    clock = Clock()
    registry = ConnectionRegistry(clock=clock)
    a, b = _conn("a"), _conn("b", slots=2)
    registry.add(a)
    registry.add(b)
    assert _names(registry) == ["a", "b"]
    _hold(a, 1)
    _hold(b, 2)
    _hold(b, 3)
    assert _names(registry) == []
    b.running.pop((2, 1))  # freed without telling the registry: found by the next full pass
    assert _names(registry) == []
    assert b.release(3, 1) is not None
    assert _names(registry) == ["b"]
    assert a.release(9, 1) is None  # not held: nothing freed
    assert _names(registry) == ["b"]
    clock.now += FULL_SCAN_S
    assert _names(registry) == ["b"]  # the pass over all finds b's second slot; a is full
    assert [v.free_slots for v in registry.dispatchable()] == [2]


def test_disabled_unreconciled_and_removed_servers_get_nothing() -> None:
    registry = ConnectionRegistry(clock=Clock())
    a, b = _conn("a"), _conn("b")
    b.reconciled = False
    registry.add(a)
    registry.add(b)
    a.disabled = True
    assert _names(registry) == []
    a.disabled = False
    registry.may_dispatch(a)
    b.reconciled = True
    registry.may_dispatch(b)
    assert _names(registry) == ["a", "b"]
    assert registry.remove(a)
    registry.may_dispatch(a)  # a stale connection is not brought back
    _hold(a, 1)
    assert a.release(1, 1) is not None
    assert _names(registry) == ["b"]


def test_a_replacing_connection_takes_the_servers_place() -> None:
    registry = ConnectionRegistry(clock=Clock())
    old, new = _conn("a"), _conn("a")
    registry.add(old)
    assert registry.add(new) is old
    _hold(new, 1)
    assert _names(registry) == []
    assert not registry.remove(old)
    assert new.release(1, 1) is not None
    assert [v.id for v in registry.dispatchable()] == ["s-a"]
    assert registry.get("s-a") is new
