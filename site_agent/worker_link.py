"""The link between the agent (the arbiter) and one of its connection workers.

One Unix stream socket per worker carries batches of messages both ways: a
4-byte big-endian length, then one msgpack array ``[version, [message, ...]]``,
each message a map of its fields plus ``type``, written and read by the shared
wire codec (:mod:`spillway.core.wire`). Messages queued during one turn of the
event loop travel as one batch (one write, one read), so a busy worker costs the
arbiter one system call per batch, not per report.

Render servers' own messages travel as their protocol bytes (``data``): this
module wraps them, it does not define them again (:mod:`render_server.protocol`
is their one definition). The render servers' sockets themselves are handed to
workers over a second socket (:mod:`site_agent.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from render_server import protocol
from spillway.core.wire import Codec

from .store.records import FrameFile

LINK_VERSION = 1
MAX_BATCH_BYTES = 64 * 1024 * 1024
"""One batch at most (a TaskDone with 3 MiB of inline frames fits many times)."""
MAX_UNSENT_BYTES = 256 * 1024 * 1024
"""A link whose peer left this much unread is cut: the peer is stuck (it is then replaced)."""
_LENGTH = struct.Struct(">I")
log = logging.getLogger(__name__)


class LinkError(Exception):
    """A batch on a worker link could not be read (a bug or a dead peer, never user input)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


# --- worker -> arbiter --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """A render server's hello on connection ``conn`` of the worker, for the arbiter to judge."""

    TYPE: ClassVar[str] = "hello"
    conn: int
    remote: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A report of a registered server (TaskStarted, TaskLog, TaskFailed, a TaskDone as sent)."""

    TYPE: ClassVar[str] = "report"
    conn: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Written:
    """A TaskDone whose inline frames the worker wrote (durable): ``data`` is the TaskDone
    with every frame's bytes left out, ``files`` what was stored, in the frames' order."""

    TYPE: ClassVar[str] = "written"
    conn: int
    data: bytes
    files: list[FrameFile]


@dataclass(frozen=True, slots=True, kw_only=True)
class Alive:
    """Connections heard from since the last one (``seen``), and those that sent a heartbeat."""

    TYPE: ClassVar[str] = "alive"
    seen: list[int]
    beats: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Gone:
    """Connection ``conn`` closed (after everything it reported before)."""

    TYPE: ClassVar[str] = "gone"
    conn: int


# --- arbiter -> worker --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send ``data`` (one protocol message) to the server on ``conn``."""

    TYPE: ClassVar[str] = "send"
    conn: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    TYPE: ClassVar[str] = "close"
    conn: int
    code: int
    reason: str


LinkMessage = Hello | Report | Written | Alive | Gone | Send | Close
CODEC = Codec(
    messages=(Hello, Report, Written, Alive, Gone, Send, Close),
    version=LINK_VERSION,
    error=LinkError,
    max_bytes=MAX_BATCH_BYTES,
    noun="link batch",
)


def encode_batch(messages: Sequence[LinkMessage]) -> bytes:
    """One length-prefixed batch."""
    body: list[dict[str, Any]] = []
    for msg in messages:
        fields = CODEC.to_fields(msg)
        fields["type"] = msg.TYPE
        body.append(fields)
    data: bytes = msgpack.packb([LINK_VERSION, body], use_bin_type=True)
    return _LENGTH.pack(len(data)) + data


def decode_batch(data: bytes) -> list[LinkMessage]:
    """The messages of one batch (without its length); raises LinkError."""
    try:
        raw = msgpack.unpackb(data, raw=False, max_bin_len=MAX_BATCH_BYTES)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise LinkError(f"not a msgpack link batch: {exc}") from None
    if not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[1], list):
        raise LinkError("a link batch is [version, [message, ...]]")
    CODEC.check_version(raw[0])
    result: list[LinkMessage] = []
    for item in raw[1]:
        if not isinstance(item, dict):
            raise LinkError("a link message must be a map")
        cls = CODEC.message_type(item.pop("type", None))
        result.append(CODEC.from_fields(cls, item, cls.TYPE))
    return result


async def read_batches(reader: asyncio.StreamReader) -> AsyncIterator[list[LinkMessage]]:
    """Batches until the peer closes the link (a clean end or a dead peer alike)."""
    while True:
        try:
            head = await reader.readexactly(_LENGTH.size)
            (size,) = _LENGTH.unpack(head)
            if size > MAX_BATCH_BYTES:
                raise LinkError(f"link batch of {size} bytes exceeds {MAX_BATCH_BYTES}")
            body = await reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        yield decode_batch(body)


class LinkWriter:
    """Queues messages and writes what one turn of the event loop queued as one batch."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._queue: list[LinkMessage] = []
        self._loop = asyncio.get_running_loop()

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    def send(self, msg: LinkMessage) -> None:
        if not self._queue:
            self._loop.call_soon(self._flush)
        self._queue.append(msg)

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch and not self._writer.is_closing():
            self._writer.write(encode_batch(batch))
            unsent = self._writer.transport.get_write_buffer_size()
            if unsent > MAX_UNSENT_BYTES:
                log.error("the link's peer left %d bytes unread; cutting the link", unsent)
                self._writer.transport.abort()

    async def drain(self) -> None:
        """Wait until what was queued is written to the socket (or the link is gone)."""
        self._flush()
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def close(self) -> None:
        self._flush()
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


def without_frame_data(msg: protocol.TaskDone) -> bytes:
    """A TaskDone as forwarded after its frames were written: the same, minus their bytes."""
    frames = [dataclasses.replace(f, data=b"") for f in msg.frames]
    return protocol.encode(dataclasses.replace(msg, frames=frames))
