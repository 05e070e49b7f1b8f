"""The federation wire protocol: the only definition of the messages between sites.

Every message is a frozen dataclass with a class-level ``TYPE`` tag. On the
wire it travels inside a signed msgpack envelope (never pickle), made and
checked by :mod:`federation.envelope`::

    {"v": 1, "type": "offer", "site": "studio", "id": "<hex>", "sent_at": 1.7e9,
     "body": {...message fields by name...}, "sig": <bytes>}

This module says what each message holds; :mod:`federation.envelope` says how
one is signed, authenticated and framed. Decoding validates every body field;
any failure raises :class:`FederationProtocolError` (or a subclass) naming the
field. Body keys this version does not know are ignored, so a newer peer can
add optional fields. Bodies are read and written by the shared wire codec
(:mod:`spillway.core.wire`, :data:`CODEC`) from the dataclass field types; what
a valid value is (a sha256, a safe relative path, an integer minimum) is stated
on the field type with ``Annotated`` checks.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Self

from federation.errors import FederationProtocolError
from spillway.core.checks import NonNegative, RelPath, Sha256, at_least
from spillway.core.records import CheckedFileEntry, FileKind
from spillway.core.wire import Codec

__all__ = [
    "CODEC",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "Ack",
    "Cancel",
    "CapacityAdvert",
    "Commit",
    "CommitReply",
    "FrameFileOutput",
    "FrameOutput",
    "JobSpec",
    "Message",
    "Notify",
    "NotifyState",
    "Offer",
    "OfferReply",
    "Pause",
    "Progress",
    "Reclaim",
    "ReclaimReply",
    "Resume",
    "ServerCapacity",
    "TaskProgress",
]

PROTOCOL_VERSION = 1
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024

SignedInt = Annotated[int, at_least(-(2**31))]
"""A priority or frame number: may be negative, not below the 32-bit minimum."""


class Message:
    """Base of every federation message: a frozen dataclass with a ``TYPE`` tag."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_body(self) -> dict[str, Any]:
        """The message's fields by name, as plain msgpack-able values."""
        return CODEC.to_fields(self)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Validate a decoded body; raises :class:`FederationProtocolError` naming the bad field."""
        return CODEC.from_fields(cls, body, "body")


class WireRecord:
    """Base of the records nested in messages."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, value: object, where: str) -> Self:
        """Validate one decoded record found at ``where``; raises :class:`FederationProtocolError`."""
        return CODEC.from_fields(cls, value, where)


class NotifyState(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerCapacity(WireRecord):
    """One render server as advertised to peers."""

    name: str
    cores: NonNegative
    memory_mb: NonNegative
    gpus: NonNegative = 0
    packages: Mapping[str, str] = field(default_factory=dict)
    """Render package name -> installed version."""
    tags: tuple[str, ...] = ()
    slots: NonNegative
    free_slots: NonNegative
    status: str


"""One asset of a job: where it goes relative to the job root, and its content hash.
Offers carry it as :data:`CheckedFileEntry`, validated field by field on decode."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec(WireRecord):
    """The part of a job a remote site needs to run it."""

    name: str
    owner: str
    priority: SignedInt
    profile: Mapping[str, Any]
    """The job profile as the scheduler serialises it; opaque to this module."""
    frames: str
    """Frame spec, e.g. ``1-240x10``."""
    chunk_size: Annotated[int, at_least(1)]
    scene: RelPath
    """Scene path relative to the job root (one of the manifest paths)."""
    output_name: RelPath
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameFileOutput(WireRecord):
    """A file of a rendered frame besides its main one (another output, its preview)."""

    name: RelPath
    """Path relative to the job's output directory (``shot_0001_R.exr``, ``.previews/...``)."""
    sha256: Sha256
    size: NonNegative
    kind: FileKind


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameOutput(WireRecord):
    """One rendered frame ready to be fetched back by the origin."""

    frame: SignedInt
    sha256: Sha256
    size: NonNegative
    name: RelPath
    """File name of the main file relative to the job's output directory."""
    files: tuple[FrameFileOutput, ...] = ()
    """Its other files, each fetched from ``.../frames/{frame}/files/{name}``; none from older peers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityAdvert(Message):
    """R -> O: what R could render for its peers right now."""

    TYPE: ClassVar[str] = "capacity"
    servers: tuple[ServerCapacity, ...]
    queue_depth: NonNegative


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer(Message):
    """O -> R: please run this job; ``key`` makes repeated offers idempotent."""

    TYPE: ClassVar[str] = "offer"
    key: str
    origin_job_id: str
    epoch: NonNegative
    job: JobSpec
    manifest: tuple[CheckedFileEntry, ...]
    path: tuple[str, ...] = ()
    """Sites the job went through before the receiver, its origin first (the sender last).
    Empty from older peers: read as ``(sender,)``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferReply(Message):
    """R -> O: accepted (upload ``missing`` blobs, then commit) or rejected with reasons."""

    TYPE: ClassVar[str] = "offer_reply"
    key: str
    accepted: bool
    missing: tuple[Sha256, ...] = ()
    """sha256 of the manifest blobs R does not have yet."""
    reasons: tuple[str, ...] = ()
    """One line per reason, for people."""
    remote_job_id: str | None = None
    """Set when this offer was already committed earlier (a resend)."""
    codes: tuple[str, ...] = ()
    """Machine-readable refusal codes, one per reason (``package``, ``hop_limit``, ...;
    see :class:`federation.policy.RefusalCode`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit(Message):
    """O -> R: every blob is uploaded; create the job."""

    TYPE: ClassVar[str] = "commit"
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitReply(Message):
    """R -> O: the job exists at R under ``remote_job_id``."""

    TYPE: ClassVar[str] = "commit_reply"
    key: str
    remote_job_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskProgress(WireRecord):
    """One task of a forwarded job as the remote sees it (tasks are chunked alike at both sites)."""

    index: NonNegative
    """The task's position in the job (the same chunking of the same frames at both sites)."""
    state: str
    """``waiting``, ``dispatched``, ``running``, ``done`` or ``failed`` at the remote."""
    attempt: NonNegative = 0
    server: str = ""
    """The remote render server's name (empty while waiting)."""
    started_at: float | None = None
    finished_at: float | None = None
    error: str = ""
    """The renderer's error line of the last failed attempt."""
    frames: tuple[FrameOutput, ...] = ()
    """The task's rendered frames, once done: the origin fetches them right away."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify(Message):
    """R -> O: progress or completion of a forwarded job (delivered at least once)."""

    TYPE: ClassVar[str] = "notify"
    origin_job_id: str
    remote_job_id: str
    epoch: NonNegative
    state: NotifyState
    frames_done: NonNegative
    frames_total: NonNegative
    frames: tuple[FrameOutput, ...] = ()
    """The rendered frames, on ``done``."""
    error: str = ""
    core_seconds: float = 0.0
    """Accounting, on a final state: slot time x cores spent on the job at R (and beyond)."""
    failed_attempts: NonNegative = 0
    """Accounting, on a final state: render attempts of the job that failed at R (and beyond)."""
    tasks: tuple[TaskProgress, ...] = ()
    """The job's tasks as they ended at R (on a final notification; empty from older peers)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress(Message):
    """R -> O: a snapshot of a forwarded job's tasks while it runs (delivered at least once).

    ``seq`` grows with every snapshot of one job at R; O applies a snapshot only if
    its ``seq`` is above the last one applied, so duplicates, reordered and stale
    snapshots change nothing. ``tasks`` are those changed since the last snapshot the
    origin acknowledged, plus those of every snapshot sent since (see
    :mod:`federation.progress_delta`); tasks still waiting with no attempt are left out.
    """

    TYPE: ClassVar[str] = "progress"
    origin_job_id: str
    remote_job_id: str
    epoch: NonNegative
    seq: NonNegative
    state: str
    """The job's state at R: ``queued``, ``running`` or ``paused``."""
    frames_done: NonNegative
    frames_total: NonNegative
    tasks: tuple[TaskProgress, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause(Message):
    """Either way: pause the job placed with ``epoch`` (O -> R), or R's users paused it (R -> O).

    ``seq`` orders the pauses and resumes of one job from one sender; an older one
    than the last applied is ignored.
    """

    TYPE: ClassVar[str] = "pause"
    origin_job_id: str
    remote_job_id: str
    epoch: NonNegative
    seq: NonNegative = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(Message):
    """Either way: resume the paused job (fields as :class:`Pause`)."""

    TYPE: ClassVar[str] = "resume"
    origin_job_id: str
    remote_job_id: str
    epoch: NonNegative
    seq: NonNegative = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Message):
    """Either way: the message with id ``of`` was processed."""

    TYPE: ClassVar[str] = "ack"
    of: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Message):
    """O -> R: stop the job placed with ``epoch``."""

    TYPE: ClassVar[str] = "cancel"
    origin_job_id: str
    remote_job_id: str
    epoch: NonNegative


@dataclass(frozen=True, slots=True, kw_only=True)
class Reclaim(Message):
    """O -> R: give back the chunks at ``indices`` of the job placed with ``epoch`` that R
    has not started (a part of a split job, whose origin has idle slots).

    ``key`` makes it idempotent: R answers a repeat with the answer it gave first, and
    withdraws nothing more.
    """

    TYPE: ClassVar[str] = "reclaim"
    key: str
    origin_job_id: str
    remote_job_id: str
    epoch: NonNegative
    indices: tuple[NonNegative, ...]
    """Task positions in the job (the same chunking at both sites), as in :class:`TaskProgress`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReclaimReply(Message):
    """R -> O: the chunks R withdrew (never started there, and now never will be)."""

    TYPE: ClassVar[str] = "reclaim_reply"
    key: str
    withdrawn: tuple[NonNegative, ...] = ()
    """Task positions withdrawn, a subset of those asked for (empty: none could be)."""
    reason: str = ""
    """Why the others stay (for people)."""


MESSAGE_TYPES: Mapping[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        CapacityAdvert,
        Offer,
        OfferReply,
        Commit,
        CommitReply,
        Notify,
        Ack,
        Cancel,
        Progress,
        Pause,
        Resume,
        Reclaim,
        ReclaimReply,
    )
}
CODEC = Codec(
    messages=MESSAGE_TYPES.values(),
    version=PROTOCOL_VERSION,
    error=FederationProtocolError,
    max_bytes=MAX_ENVELOPE_BYTES,
    noun="envelope",
)
