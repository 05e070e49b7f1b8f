"""The link between the agent (the arbiter) and one of its connection workers.

One Unix stream socket per worker carries batches of messages both ways: a
4-byte big-endian length, then one msgpack array ``[version, [message, ...]]``,
each message an array ``[type, field, ...]`` of its fields in their dataclass
order (a stored file likewise ``[name, sha256, size, kind]``). Both ends are the
same code, so positions are enough; each field's type is still checked on
reading. Messages queued during one turn of the event loop travel as one batch
(one write, one read), so a busy worker costs the arbiter one system call per
batch, not per report. (Maps of named fields read by the shared wire codec
cost the arbiter ~2 µs more per task; docs/benchmarks.md, dispatch round 8.)

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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from render_server import protocol
from spillway.core.records import FileKind

from .store.records import FrameFile

LINK_VERSION = 2
"""2: messages as arrays of their fields (1: maps of named fields)."""
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


@dataclass(frozen=True, slots=True)
class Hello:
    """A render server's hello on connection ``conn`` of the worker, for the arbiter to judge."""

    TYPE: ClassVar[str] = "hello"
    conn: int
    remote: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Report:
    """A report of a registered server (TaskStarted, TaskLog, TaskFailed, a TaskDone as sent)."""

    TYPE: ClassVar[str] = "report"
    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Written:
    """A TaskDone whose inline frames the worker wrote (durable): ``done`` is the TaskDone
    with every frame's bytes left out, ``files`` what was stored, in the frames' order.

    The worker decoded and checked the report; it travels as its fields (not the
    server's bytes, which the arbiter would decode and check again)."""

    TYPE: ClassVar[str] = "written"
    conn: int
    done: protocol.TaskDone
    files: list[FrameFile]


@dataclass(frozen=True, slots=True)
class Alive:
    """Connections heard from since the last one (``seen``), and those that sent a heartbeat."""

    TYPE: ClassVar[str] = "alive"
    seen: list[int]
    beats: list[int]


@dataclass(frozen=True, slots=True)
class Gone:
    """Connection ``conn`` closed (after everything it reported before)."""

    TYPE: ClassVar[str] = "gone"
    conn: int


# --- arbiter -> worker --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` (one protocol message) to the server on ``conn``."""

    TYPE: ClassVar[str] = "send"
    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    TYPE: ClassVar[str] = "close"
    conn: int
    code: int
    reason: str


LinkMessage = Hello | Report | Written | Alive | Gone | Send | Close
_FILE_KINDS = {kind.value: kind for kind in FileKind}


def _files_out(files: list[FrameFile]) -> list[list[Any]]:
    return [[f.name, f.sha256, f.size, f.kind.value] for f in files]


def _files_in(value: object, where: str) -> list[FrameFile]:
    if type(value) is not list:
        raise LinkError(f"{where} must be an array of files", field=where)
    files = []
    for item in value:
        if (
            type(item) is not list
            or len(item) != 4
            or type(item[0]) is not str
            or type(item[1]) is not str
            or type(item[2]) is not int
            or item[3] not in _FILE_KINDS
        ):
            raise LinkError(
                f"{where}: a file is [name, sha256, size, kind], got {item!r}", field=where
            )
        files.append(
            FrameFile(name=item[0], sha256=item[1], size=item[2], kind=_FILE_KINDS[item[3]])
        )
    return files


def _ints_in(value: object, where: str) -> list[int]:
    if type(value) is not list or any(type(v) is not int for v in value):
        raise LinkError(f"{where} must be an array of integers", field=where)
    return value


def _names(cls: type[Any], *, without: str = "") -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != without)


_DONE = _names(protocol.TaskDone)
_NESTED: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "outputs": (protocol.Output, _names(protocol.Output)),
    "frames": (protocol.InlineFrame, _names(protocol.InlineFrame, without="data")),
}
"""A forwarded TaskDone's lists of records, each record an array of these fields."""


def _done_out(msg: protocol.TaskDone) -> list[Any]:
    item: list[Any] = []
    for name in _DONE:
        value = getattr(msg, name)
        nested = _NESTED.get(name)
        if nested is not None:
            value = [[getattr(record, n) for n in nested[1]] for record in value]
        item.append(value)
    return item


def _done_in(value: object, where: str) -> protocol.TaskDone:
    """A TaskDone as :func:`_done_out` sent it: its shape is checked here, its values were
    checked by the worker when it decoded the server's report."""
    try:
        if type(value) is not list or len(value) != len(_DONE):
            raise ValueError(f"{len(_DONE)} fields ({', '.join(_DONE)}) expected")
        fields = dict(zip(_DONE, value, strict=True))
        for name, (cls, names) in _NESTED.items():
            fields[name] = [_nested_in(cls, names, record) for record in fields[name]]
        return protocol.TaskDone(**fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise LinkError(f"{where}: not a forwarded TaskDone: {exc}", field=where) from None


def _nested_in(cls: type[Any], names: tuple[str, ...], record: object) -> Any:
    if type(record) is not list or len(record) != len(names):
        raise ValueError(f"a {cls.__name__} is [{', '.join(names)}], got {record!r}")
    fields = dict(zip(names, record, strict=True))
    fields["kind"] = _FILE_KINDS[fields["kind"]]
    if cls is protocol.InlineFrame:
        fields["data"] = b""  # left out: the worker wrote it
    return cls(**fields)


_Check = type | Callable[[object, str], Any]
"""A scalar field's exact type, or a function that checks (and builds) the field."""
_CHECKS: dict[str, _Check] = {
    "int": int,
    "str": str,
    "bytes": bytes,
    "list[int]": _ints_in,
    "list[FrameFile]": _files_in,
    "protocol.TaskDone": _done_in,
}
_ENCODE: dict[str, Callable[[Any], Any]] = {
    "list[FrameFile]": _files_out,
    "protocol.TaskDone": _done_out,
}


@dataclass(frozen=True, slots=True)
class _Layout:
    """A message type's fields in wire order: names, checks, and the encoders of those
    that are not sent as they are."""

    cls: type[LinkMessage]
    names: tuple[str, ...]
    checks: tuple[_Check, ...]
    encoders: tuple[tuple[int, Callable[[Any], Any]], ...]


def _layout(cls: type[LinkMessage]) -> _Layout:
    fields = dataclasses.fields(cls)
    types = [str(f.type) for f in fields]
    return _Layout(
        cls=cls,
        names=tuple(f.name for f in fields),
        checks=tuple(_CHECKS[t] for t in types),  # a field type the link cannot carry: at import
        encoders=tuple((i, _ENCODE[t]) for i, t in enumerate(types) if t in _ENCODE),
    )


_LAYOUTS: dict[str, _Layout] = {
    cls.TYPE: _layout(cls) for cls in (Hello, Report, Written, Alive, Gone, Send, Close)
}


def encode_batch(messages: Sequence[LinkMessage]) -> bytes:
    """One length-prefixed batch."""
    body: list[list[Any]] = []
    for msg in messages:
        layout = _LAYOUTS[msg.TYPE]
        item = [msg.TYPE, *(getattr(msg, name) for name in layout.names)]
        for index, encode in layout.encoders:
            item[index + 1] = encode(item[index + 1])
        body.append(item)
    data: bytes = msgpack.packb([LINK_VERSION, body], use_bin_type=True)
    return _LENGTH.pack(len(data)) + data


def decode_batch(data: bytes) -> list[LinkMessage]:
    """The messages of one batch (without its length); raises LinkError."""
    try:
        raw = msgpack.unpackb(data, raw=False, max_bin_len=MAX_BATCH_BYTES)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise LinkError(f"not a msgpack link batch: {exc}") from None
    if type(raw) is not list or len(raw) != 2 or type(raw[1]) is not list:
        raise LinkError("a link batch is [version, [message, ...]]")
    if raw[0] != LINK_VERSION:
        raise LinkError(
            f"unsupported link version {raw[0]!r}; this side speaks {LINK_VERSION}", field="v"
        )
    return [_decode(item) for item in raw[1]]


def _decode(item: object) -> LinkMessage:
    if type(item) is not list or not item:
        raise LinkError("a link message must be an array [type, field, ...]")
    layout = _LAYOUTS.get(item[0]) if type(item[0]) is str else None
    if layout is None:
        raise LinkError(
            f"unknown message type {item[0]!r}; known types: {', '.join(sorted(_LAYOUTS))}",
            field="type",
        )
    values = item[1:]
    if len(values) != len(layout.checks):
        raise LinkError(
            f"{item[0]}: {len(values)} fields, expected {len(layout.checks)} "
            f"({', '.join(layout.names)})"
        )
    for index, (check, value) in enumerate(zip(layout.checks, values, strict=True)):
        if type(value) is check:
            continue
        where = f"{item[0]}.{layout.names[index]}"
        if isinstance(check, type):
            raise LinkError(
                f"{where} must be {check.__name__}, got {type(value).__name__}", field=where
            )
        values[index] = check(value, where)
    return layout.cls(*values)


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


def without_frame_data(msg: protocol.TaskDone) -> protocol.TaskDone:
    """A TaskDone as forwarded after its frames were written: the same, minus their bytes."""
    return dataclasses.replace(msg, frames=[dataclasses.replace(f, data=b"") for f in msg.frames])
