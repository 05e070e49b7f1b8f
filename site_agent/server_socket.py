"""A render server's WebSocket as the agent reads it: the hello, refusals, the report stream.

Used where the socket is served: in the agent's own process (workers = 0) and in
its connection workers (:mod:`site_agent.worker`), so both read and refuse
exactly alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from render_server import protocol

log = logging.getLogger(__name__)
HELLO_TIMEOUT_S = 10.0


class ServerSocket(Protocol):
    """What the agent does with a render server's socket: send, close, see whether it closed.

    A WebSocket served in this process, or one held by a connection worker
    (:class:`site_agent.workers.WorkerSocket`)."""

    @property
    def closed(self) -> bool: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool: ...


def check_hello(hello: protocol.Message) -> protocol.Hello:
    """The first message as a hello; ProtocolError if it is another message or out of range."""
    if not isinstance(hello, protocol.Hello):
        raise protocol.ProtocolError(f"expected hello first, got {hello.TYPE}")
    if not hello.name or len(hello.name) > 128 or not 1 <= hello.slots <= 256:
        raise protocol.ProtocolError("hello needs a name (1-128 chars) and 1-256 slots")
    return hello


async def receive_hello(ws: web.WebSocketResponse) -> protocol.Hello:
    msg = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT_S)
    if msg.type != WSMsgType.BINARY:
        raise protocol.ProtocolError("expected a binary msgpack hello as the first message")
    return check_hello(protocol.decode(msg.data))


async def hello_or_refuse(ws: web.WebSocketResponse, remote: str | None) -> protocol.Hello | None:
    """The socket's hello; None when it sent none in time or something else (refused, logged)."""
    try:
        return await receive_hello(ws)
    except (protocol.ProtocolError, TimeoutError) as exc:
        reason = str(exc) or "no hello within 10s"
        log.warning("render server from %s refused: %s", remote, reason)
        await refuse(ws, reason)
        return None


async def refuse(ws: ServerSocket, reason: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(protocol.encode(protocol.Refused(reason=reason)))
    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason[:120].encode())


async def messages(
    ws: web.WebSocketResponse, name: str, touch: Callable[[], None]
) -> AsyncIterator[tuple[protocol.Message, bytes]]:
    """The server's messages, decoded and as received; ``touch`` is called for every frame.

    Ends when the socket closes; a non-binary frame or a message that does not
    decode closes it (logged with the server's ``name``).
    """
    async for raw in ws:
        touch()
        if raw.type != WSMsgType.BINARY:
            if raw.type == WSMsgType.ERROR:
                return
            # Log first: closing waits for the peer's close frame, which a broken peer may never send.
            log.warning("server %s sent a non-binary frame; closing", name)
            await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary msgpack frames only")
            return
        try:
            msg = protocol.decode(raw.data)
        except protocol.ProtocolError as exc:
            log.warning("server %s sent a bad message, closing: %s", name, exc)
            await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=str(exc)[:120].encode())
            return
        yield msg, raw.data
