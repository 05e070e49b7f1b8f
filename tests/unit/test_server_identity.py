"""Which hello may take a render-server name (the agent's identity rule)."""

from __future__ import annotations

from typing import cast

import pytest
from aiohttp import web

from render_server import protocol
from site_agent.connections import ConnectionRegistry, ServerConnection
from site_agent.server_identity import identity_refusal, key_hash
from site_agent.store.records import ServerRecord

KEY = "k" * 43


def _record(key: str = KEY) -> ServerRecord:
    return ServerRecord(
        id="s-1", name="rs-1", host="h1", cores=1, memory_mb=1, key_hash=key_hash(key)
    )


def _hello(key: str = KEY, instance: str = "i-2") -> protocol.Hello:
    return protocol.Hello(
        token="", name="rs-1", host="h2", cores=1, memory_mb=1, key=key, instance=instance
    )


def _live(instance: str) -> ConnectionRegistry:
    registry = ConnectionRegistry()
    ws = cast(web.WebSocketResponse, object())
    registry.add(ServerConnection(record=_record(), ws=ws, last_seen=0.0, instance=instance))
    return registry


@pytest.mark.parametrize(
    ("existing", "hello", "live", "refused"),
    [
        (None, _hello(), None, None),  # a new name enrols
        (_record(), _hello(), None, None),  # the same key, not connected: a restart
        (_record(), _hello(key="other" * 9), None, "enrolled by another"),
        (_record(), _hello(key=""), None, "enrolled by another"),  # token only
        (_record(), _hello(instance="i-1"), "i-1", None),  # the same process reconnecting
        (_record(), _hello(instance="i-2"), "i-1", "already connected"),  # a cloned state folder
        (_record(key=""), _hello(), None, None),  # enrolled before keys: adopts this key
        (_record(key=""), _hello(key="", instance=""), "i-1", None),  # an older server
    ],
)
def test_identity_rule(
    existing: ServerRecord | None, hello: protocol.Hello, live: str | None, refused: str | None
) -> None:
    registry = _live(live) if live is not None else ConnectionRegistry()
    reason = identity_refusal(existing, hello, registry)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason and "--name" in reason
