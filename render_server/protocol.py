"""The wire protocol between a site agent and its render servers.

This module is the only definition of that protocol. Messages travel as msgpack
maps over one WebSocket per render server (the server dials out, so it works
through NAT). Every map carries ``type`` and ``v`` (the protocol version);
the remaining keys are the message's fields, by name. The shared wire codec
(:mod:`spillway.core.wire`) reads and writes them from the dataclass field
types; decoding validates every field and raises :class:`ProtocolError` for
anything malformed; nothing is ever unpickled.

Rendered frames travel over HTTP (``PUT /api/v1/servers/{server}/tasks/{task}/attempts/{attempt}/frames/{frame}?name=N&kind=K``,
one request per file of the frame, named as the renderer named it; the frame's
``main`` file last, after its ``extra`` files and its ``preview``),
fenced by task id, attempt and server like every other task report, and carrying
the server's key in ``X-Server-Key`` (the agent checks it against the hash it
enrolled, so a holder of the enrollment token alone cannot upload for another
server), except
small ones: when every frame of a task is at most INLINE_FRAME_BYTES and all
of them together at most INLINE_TOTAL_BYTES, they ride in ``TaskDone.frames``
(msgpack bin) and the agent stores them exactly as it stores an upload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from spillway.core.records import FileEntry
from spillway.core.records import FileKind as FileKind  # re-exported: part of this protocol
from spillway.core.wire import Codec

PROTOCOL_VERSION = 1
RECONNECT_BACKOFF_MAX_S = 5.0
"""A render server that lost its agent tries again after a delay that doubles up to this,
each delay drawn between half and one and a half times it."""
RECONNECT_MAX_DELAY_S = 1.5 * RECONNECT_BACKOFF_MAX_S
"""So a render server tries to reach its agent at least this often: a restarted agent gives
the servers it has not seen yet this long beyond ``heartbeat_timeout`` to come back."""
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
INLINE_FRAME_BYTES = 1024 * 1024
"""A frame at most this big may travel inline in TaskDone."""
INLINE_TOTAL_BYTES = 3 * 1024 * 1024
"""Inline frames of one TaskDone together; leaves room under MAX_MESSAGE_BYTES."""


class ProtocolError(Exception):
    """A message could not be decoded or does not fit the protocol."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        """The offending value's path (``task_done.frames[0].data``), when one is to blame."""
        super().__init__(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRef:
    task_id: int
    attempt: int


"""An asset of the job, by content. The agent sends the manifest it validated at
submission, so the render server takes the entries as they come (its runner
still refuses a path that leaves the work directory)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """One file written for a frame, under the renderer's own file name (no folders)."""

    frame: int
    name: str
    sha256: str
    size: int
    kind: FileKind = FileKind.MAIN
    """Older servers send one file per frame: the main one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InlineFrame:
    """A small file of a frame sent inside TaskDone instead of its own HTTP upload."""

    frame: int
    name: str
    sha256: str
    data: bytes
    kind: FileKind = FileKind.MAIN


# --- render server -> agent --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    TYPE: ClassVar[str] = "hello"
    token: str
    name: str
    host: str
    cores: int
    memory_mb: int
    gpus: list[str] = field(default_factory=list)
    os: str = ""
    cpu_model: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    slots: int = 1
    running: list[TaskRef] = field(default_factory=list)
    """Tasks still running on the server, reported after a reconnect."""
    key: str = ""
    """The server's own secret, kept in its state folder: the agent binds the name to it
    at first enrolment and refuses the name with another key. Empty from older servers."""
    instance: str = ""
    """Random per process start: a reconnect of this process replaces its old connection,
    a second process under a name already connected is refused. Empty from older servers."""
    queue: int = 0
    """How many tasks beyond ``slots`` the server keeps waiting in its queue, starting each
    the moment a slot frees (look-ahead); 0 from older servers, which the agent never sends
    more than ``slots`` tasks."""
    queued: list[TaskRef] = field(default_factory=list)
    """Tasks waiting in the server's queue (not started), reported after a reconnect."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    TYPE: ClassVar[str] = "heartbeat"
    free_slots: int
    """Slots with no task started in them."""
    running: list[TaskRef] = field(default_factory=list)
    """Tasks started (preparing or rendering) and not yet ended."""
    queued: list[TaskRef] = field(default_factory=list)
    """Tasks waiting in the queue for a slot (look-ahead)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted:
    """The task left the server's queue (if it waited there) and its assets are in place:
    its renderer starts now. The task's timeout counts from this report."""

    TYPE: ClassVar[str] = "task_started"
    task_id: int
    attempt: int
    running_for_s: float = 0.0
    """How long the task had run when this report was sent: 0 when sent at its start;
    more when the start happened while the server was disconnected and is reported after
    its reconnect. The agent counts the start (and the timeout) from now minus this."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskLog:
    TYPE: ClassVar[str] = "task_log"
    task_id: int
    attempt: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDone:
    TYPE: ClassVar[str] = "task_done"
    task_id: int
    attempt: int
    outputs: list[Output]
    started_at: float
    finished_at: float
    log_tail: str = ""
    frames: list[InlineFrame] = field(default_factory=list)
    """Small frames sent inline (not uploaded over HTTP); empty from older senders."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed:
    TYPE: ClassVar[str] = "task_failed"
    task_id: int
    attempt: int
    error: str
    log_tail: str = ""


# --- agent -> render server --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    server_id: str
    site: str
    heartbeat_interval_s: float
    keep: list[TaskRef] = field(default_factory=list)
    """Of the tasks the server reported running, those the agent still expects."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Assign:
    """Run a task. A server that announced a ``queue`` in its hello may hold up to
    ``slots + queue`` tasks: those beyond its free slots wait, first in first out, and
    each starts the moment a slot frees (no round trip to the agent)."""

    TYPE: ClassVar[str] = "assign"
    task_id: int
    attempt: int
    job_id: str
    job_name: str
    package: str
    version: str
    engine: str
    scene: str
    manifest: list[FileEntry]
    frames: list[int]
    output_name: str
    output_ext: str
    timeout_s: float
    width: int | None = None
    height: int | None = None
    """An explicit resolution; None renders at the scene's own."""
    threads: int = 1
    first_frame: int | None = None
    last_frame: int | None = None
    """The job's first and last frame (an animation's range); None from older agents: the chunk's."""
    samples: int | None = None
    """Render samples replacing the scene's; None renders with the scene's own."""
    denoise: bool | None = None
    """False renders without the scene's denoising; None denoises as the scene says."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    """Stop the task attempt; one still waiting in the server's queue is dropped, never started."""

    TYPE: ClassVar[str] = "cancel"
    task_id: int
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    TYPE: ClassVar[str] = "refused"
    reason: str


Message = (
    Hello
    | Heartbeat
    | TaskStarted
    | TaskLog
    | TaskDone
    | TaskFailed
    | Welcome
    | Assign
    | Cancel
    | Refused
)
_CODEC = Codec(
    messages=(
        Hello,
        Heartbeat,
        TaskStarted,
        TaskLog,
        TaskDone,
        TaskFailed,
        Welcome,
        Assign,
        Cancel,
        Refused,
    ),
    version=PROTOCOL_VERSION,
    error=ProtocolError,
    max_bytes=MAX_MESSAGE_BYTES,
)
MESSAGES: dict[str, type[Any]] = dict(_CODEC.types)


def encode(msg: Message) -> bytes:
    """Serialise a message to msgpack bytes."""
    return _CODEC.encode(msg)


def decode(data: bytes) -> Message:
    """Parse and validate one message; raises ProtocolError with the offending field named."""
    msg: Message = _CODEC.decode(data)
    return msg
