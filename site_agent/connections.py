"""Live WebSocket connections of render servers, keyed by server id."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web

from render_server import protocol
from scheduler.profile import ServerView

from .store.records import ServerRecord

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 10.0


@dataclass(eq=False)
class ServerConnection:
    """One connected render server: its capabilities and the task attempts it holds."""

    record: ServerRecord
    ws: web.WebSocketResponse
    last_seen: float
    disabled: bool = False
    running: set[tuple[int, int]] = field(default_factory=set)
    """(task id, attempt) pairs assigned to the server and not yet reported finished."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def server_id(self) -> str:
        return self.record.id

    @property
    def free_slots(self) -> int:
        return max(0, self.record.slots - len(self.running))

    def view(self) -> ServerView:
        r = self.record
        if self.disabled:
            status = "disabled"
        else:
            status = "busy" if self.running else "idle"
        return ServerView(
            id=r.id,
            name=r.name,
            cores=r.cores,
            memory_mb=r.memory_mb,
            gpus=len(r.gpus),
            packages=dict(r.packages),
            tags=r.tags,
            slots=r.slots,
            free_slots=self.free_slots,
            status=status,
        )

    async def send(self, msg: protocol.Message) -> bool:
        """Send one message; False if the connection is gone (the caller requeues)."""
        if self.ws.closed:
            return False
        try:
            async with self._lock:
                await asyncio.wait_for(self.ws.send_bytes(protocol.encode(msg)), SEND_TIMEOUT_S)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            log.warning("send to server %s failed: %s", self.record.name, exc)
            return False
        return True


class ConnectionRegistry:
    def __init__(self) -> None:
        self._by_id: dict[str, ServerConnection] = {}

    def add(self, conn: ServerConnection) -> ServerConnection | None:
        """Register a connection; returns the one it replaces (same server reconnecting)."""
        old = self._by_id.get(conn.server_id)
        self._by_id[conn.server_id] = conn
        return old

    def remove(self, conn: ServerConnection) -> bool:
        """Forget the connection if it is still the current one for its server."""
        if self._by_id.get(conn.server_id) is conn:
            del self._by_id[conn.server_id]
            return True
        return False

    def get(self, server_id: str) -> ServerConnection | None:
        return self._by_id.get(server_id)

    def all(self) -> list[ServerConnection]:
        return list(self._by_id.values())

    def views(self) -> list[ServerView]:
        return [c.view() for c in self._by_id.values()]
