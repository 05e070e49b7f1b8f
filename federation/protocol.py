"""The federation wire protocol: the only definition of messages between sites.

Every message is a frozen dataclass with a class-level ``TYPE`` tag. On the
wire it travels inside a signed msgpack envelope (never pickle)::

    {"v": 1, "type": "offer", "site": "studio", "id": "<hex>", "sent_at": 1.7e9,
     "body": {...message fields by name...}, "sig": <bytes>}

``sig`` is an ECDSA-SHA256 signature, by the sending site's certificate key,
over :func:`canonical_bytes` of the envelope without ``sig``. The receiver
checks it with the public key of the certificate the peer presented in the
mutual TLS handshake, so a message stays attributable to a site even when it
is stored and relayed (outbox, logs).

Decoding validates the version, the type, the claimed site, the signature, the
clock skew and every body field; any failure raises :class:`ProtocolError` (or a
subclass) naming the field. Body keys this version does not know are ignored,
so a newer peer can add optional fields.

Replay protection is the receiver's job: see :class:`ReplayGuard`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, TypeVar

import msgpack
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from federation.errors import (
    ExpiredMessageError,
    ProtocolError,
    SignatureError,
    SiteMismatchError,
)
from federation.fields import Fields, sha256_item, str_item

__all__ = [
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "Ack",
    "Cancel",
    "CapacityAdvert",
    "Commit",
    "CommitReply",
    "Envelope",
    "FrameOutput",
    "JobSpec",
    "ManifestEntry",
    "Message",
    "Notify",
    "NotifyState",
    "Offer",
    "OfferReply",
    "ReplayGuard",
    "ServerCapacity",
    "canonical_bytes",
    "decode_envelope",
    "decode_reply",
    "encode_envelope",
    "encode_reply",
]

PROTOCOL_VERSION = 1
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
_MAX_ID_LENGTH = 128


class Message:
    """Base of every federation message: a frozen dataclass with a ``TYPE`` tag."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_body(self) -> dict[str, Any]:
        """The message's fields by name, as plain msgpack-able values."""
        body = _to_wire(self)
        assert isinstance(body, dict)
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Validate a decoded body; raises :class:`ProtocolError` naming the bad field."""
        raise NotImplementedError


class NotifyState(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerCapacity:
    """One render server as advertised to peers."""

    name: str
    cores: int
    memory_mb: int
    gpus: int
    packages: Mapping[str, str] = field(default_factory=dict)
    """Render package name -> installed version."""
    tags: tuple[str, ...] = ()
    slots: int
    free_slots: int
    status: str

    @classmethod
    def from_wire(cls, value: object, where: str) -> ServerCapacity:
        f = Fields(value, where)
        return cls(
            name=f.text("name"),
            cores=f.integer("cores"),
            memory_mb=f.integer("memory_mb"),
            gpus=f.integer("gpus", 0),
            packages=f.str_map("packages", {}),
            tags=f.items("tags", str_item, ()),
            slots=f.integer("slots"),
            free_slots=f.integer("free_slots"),
            status=f.text("status"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    """One asset of a job: where it goes relative to the job root, and its content hash."""

    path: str
    sha256: str
    size: int

    @classmethod
    def from_wire(cls, value: object, where: str) -> ManifestEntry:
        f = Fields(value, where)
        return cls(path=f.relpath("path"), sha256=f.sha256("sha256"), size=f.integer("size"))


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """The part of a job a remote site needs to run it."""

    name: str
    owner: str
    priority: int
    profile: Mapping[str, Any]
    """The job profile as the scheduler serialises it; opaque to this module."""
    frames: str
    """Frame spec, e.g. ``1-240x10``."""
    chunk_size: int
    scene: str
    """Scene path relative to the job root (one of the manifest paths)."""
    output_name: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, value: object, where: str) -> JobSpec:
        f = Fields(value, where)
        return cls(
            name=f.text("name"),
            owner=f.text("owner"),
            priority=f.integer("priority", minimum=-(2**31)),
            profile=f.mapping("profile"),
            frames=f.text("frames"),
            chunk_size=f.integer("chunk_size", minimum=1),
            scene=f.relpath("scene"),
            output_name=f.relpath("output_name"),
            settings=f.mapping("settings", {}),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameOutput:
    """One rendered frame ready to be fetched back by the origin."""

    frame: int
    sha256: str
    size: int
    name: str
    """File name relative to the job's output directory."""

    @classmethod
    def from_wire(cls, value: object, where: str) -> FrameOutput:
        f = Fields(value, where)
        return cls(
            frame=f.integer("frame", minimum=-(2**31)),
            sha256=f.sha256("sha256"),
            size=f.integer("size"),
            name=f.relpath("name"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityAdvert(Message):
    """R -> O: what R could render for its peers right now."""

    TYPE: ClassVar[str] = "capacity"
    servers: tuple[ServerCapacity, ...]
    queue_depth: int

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        f = Fields(body, "body")
        return cls(
            servers=f.items("servers", ServerCapacity.from_wire),
            queue_depth=f.integer("queue_depth"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer(Message):
    """O -> R: please run this job; ``key`` makes repeated offers idempotent."""

    TYPE: ClassVar[str] = "offer"
    key: str
    origin_job_id: str
    epoch: int
    job: JobSpec
    manifest: tuple[ManifestEntry, ...]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        f = Fields(body, "body")
        return cls(
            key=f.text("key"),
            origin_job_id=f.text("origin_job_id"),
            epoch=f.integer("epoch"),
            job=JobSpec.from_wire(body.get("job"), "body.job"),
            manifest=f.items("manifest", ManifestEntry.from_wire),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferReply(Message):
    """R -> O: accepted (upload ``missing`` blobs, then commit) or rejected with reasons."""

    TYPE: ClassVar[str] = "offer_reply"
    key: str
    accepted: bool
    missing: tuple[str, ...] = ()
    """sha256 of the manifest blobs R does not have yet."""
    reasons: tuple[str, ...] = ()
    remote_job_id: str | None = None
    """Set when this offer was already committed earlier (a resend)."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        f = Fields(body, "body")
        return cls(
            key=f.text("key"),
            accepted=f.flag("accepted"),
            missing=f.items("missing", sha256_item, ()),
            reasons=f.items("reasons", str_item, ()),
            remote_job_id=f.text("remote_job_id", None),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit(Message):
    """O -> R: every blob is uploaded; create the job."""

    TYPE: ClassVar[str] = "commit"
    key: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        return cls(key=Fields(body, "body").text("key"))


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitReply(Message):
    """R -> O: the job exists at R under ``remote_job_id``."""

    TYPE: ClassVar[str] = "commit_reply"
    key: str
    remote_job_id: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        f = Fields(body, "body")
        return cls(key=f.text("key"), remote_job_id=f.text("remote_job_id"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify(Message):
    """R -> O: progress or completion of a forwarded job (delivered at least once)."""

    TYPE: ClassVar[str] = "notify"
    origin_job_id: str
    remote_job_id: str
    epoch: int
    state: NotifyState
    frames_done: int
    frames_total: int
    frames: tuple[FrameOutput, ...] = ()
    """The rendered frames, on ``done``."""
    error: str = ""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        f = Fields(body, "body")
        return cls(
            origin_job_id=f.text("origin_job_id"),
            remote_job_id=f.text("remote_job_id"),
            epoch=f.integer("epoch"),
            state=NotifyState(f.choice("state", tuple(NotifyState))),
            frames_done=f.integer("frames_done"),
            frames_total=f.integer("frames_total"),
            frames=f.items("frames", FrameOutput.from_wire, ()),
            error=f.text("error", ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Message):
    """Either way: the message with id ``of`` was processed."""

    TYPE: ClassVar[str] = "ack"
    of: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        return cls(of=Fields(body, "body").text("of"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Message):
    """O -> R: stop the job placed with ``epoch``."""

    TYPE: ClassVar[str] = "cancel"
    origin_job_id: str
    remote_job_id: str
    epoch: int

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        f = Fields(body, "body")
        return cls(
            origin_job_id=f.text("origin_job_id"),
            remote_job_id=f.text("remote_job_id"),
            epoch=f.integer("epoch"),
        )


_M = TypeVar("_M", bound="Message")

MESSAGE_TYPES: Mapping[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (CapacityAdvert, Offer, OfferReply, Commit, CommitReply, Notify, Ack, Cancel)
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A decoded, authenticated message."""

    site: str
    msg_id: str
    sent_at: float
    message: Message


class ReplayGuard(Protocol):
    """How a receiver rejects a message it has already processed.

    :func:`decode_envelope` proves who sent a message and that it is fresh, not
    that it is new. The receiver records ``(site, msg_id)`` in its store, in the
    same transaction as the message's effect, and treats a repeat as a duplicate:
    it answers as it did the first time (idempotent resend) instead of acting
    again. Ids need only be kept for ``2 * max_skew_s`` past ``sent_at``; older
    messages already fail the skew check.
    """

    async def first_seen(self, *, site: str, msg_id: str, sent_at: float) -> bool:
        """Record the id; True if it was new, False if it had been seen before."""
        ...


def canonical_bytes(value: Any) -> bytes:
    """msgpack of ``value`` with map keys sorted at every level: the signed form."""
    packed: bytes = msgpack.packb(_canonical(value), use_bin_type=True)
    return packed


def encode_envelope(
    msg: Message,
    *,
    site: str,
    key: ec.EllipticCurvePrivateKey,
    now: float,
    msg_id: str | None = None,
) -> bytes:
    """Sign ``msg`` as coming from ``site`` and return the envelope bytes.

    ``msg_id`` defaults to a fresh random id; pass a stable one when resending
    the same logical message so the receiver can recognise the duplicate.
    """
    fields: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "type": msg.TYPE,
        "site": site,
        "id": msg_id if msg_id is not None else uuid.uuid4().hex,
        "sent_at": float(now),
        "body": msg.to_body(),
    }
    fields["sig"] = key.sign(canonical_bytes(fields), ec.ECDSA(hashes.SHA256()))
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def decode_envelope(
    data: bytes,
    *,
    peer_cert: x509.Certificate,
    expected_site: str,
    now: float,
    max_skew_s: float = 300,
) -> Envelope:
    """Authenticate and decode an envelope received from the peer ``expected_site``.

    ``peer_cert`` is the certificate the peer presented in the TLS handshake.
    Raises :class:`ProtocolError`, :class:`SiteMismatchError`,
    :class:`SignatureError` or :class:`ExpiredMessageError`.
    """
    fields = _unpack(data)
    version = fields.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {version!r}; this site speaks "
            f"{PROTOCOL_VERSION}. Upgrade the older site",
            field="v",
        )
    site = _field(fields, "site", str)
    if site != expected_site:
        raise SiteMismatchError(
            f"message claims to come from site {site!r} but the connection is from "
            f"{expected_site!r}; the sender is misconfigured or forging",
            field="site",
        )
    msg_id = _field(fields, "id", str)
    if not 0 < len(msg_id) <= _MAX_ID_LENGTH:
        raise ProtocolError(f"field 'id' must be 1-{_MAX_ID_LENGTH} characters", field="id")
    sent_at = _field(fields, "sent_at", float)
    type_name = _field(fields, "type", str)
    body = _field(fields, "body", dict)
    _verify_signature(fields, peer_cert, site)
    _check_skew(sent_at, now=now, max_skew_s=max_skew_s, site=site)
    cls = MESSAGE_TYPES.get(type_name)
    if cls is None:
        raise ProtocolError(
            f"unknown message type {type_name!r} from {site!r}; known types: "
            f"{', '.join(sorted(MESSAGE_TYPES))}",
            field="type",
        )
    return Envelope(site=site, msg_id=msg_id, sent_at=sent_at, message=cls.from_body(body))


def encode_reply(msg: Message) -> bytes:
    """The body of a 200 answer to a request: ``{"v", "type", "body"}``, unsigned.

    A reply needs no signature: the requester pinned the responder's site name in
    the mutual TLS handshake (``TlsContexts.request_options``), and a reply is
    never stored or relayed.
    """
    packed: bytes = msgpack.packb(
        {"v": PROTOCOL_VERSION, "type": msg.TYPE, "body": msg.to_body()}, use_bin_type=True
    )
    return packed


def decode_reply(data: bytes, expected: type[_M]) -> _M:
    """Decode a reply made by :func:`encode_reply`; raises :class:`ProtocolError`."""
    fields = _unpack(data)
    if fields.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported reply version {fields.get('v')!r}", field="v")
    type_name = _field(fields, "type", str)
    if type_name != expected.TYPE:
        raise ProtocolError(f"expected a {expected.TYPE!r} reply, got {type_name!r}", field="type")
    return expected.from_body(_field(fields, "body", dict))


# --- helpers --------------------------------------------------------------------


def _unpack(data: bytes) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError("envelope must be bytes")
    if len(data) > MAX_ENVELOPE_BYTES:
        raise ProtocolError(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises many unrelated types for bad input
        raise ProtocolError(f"envelope is not valid msgpack ({type(exc).__name__})") from exc
    if not isinstance(fields, dict):
        raise ProtocolError(f"envelope must be a map, got {type(fields).__name__}")
    return fields


def _field(fields: Mapping[str, Any], name: str, kind: type) -> Any:
    value = fields.get(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProtocolError(
            f"envelope field {name!r} must be {kind.__name__}, got {type(value).__name__}",
            field=name,
        )
    return value


def _verify_signature(fields: Mapping[str, Any], peer_cert: x509.Certificate, site: str) -> None:
    signature = fields.get("sig")
    if not isinstance(signature, bytes):
        raise SignatureError(f"message from {site!r} carries no signature", field="sig")
    public_key = peer_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise SignatureError(
            f"certificate of {site!r} has no EC key; reissue it with `spillway certs issue`",
            field="sig",
        )
    signed = {k: v for k, v in fields.items() if k != "sig"}
    try:
        public_key.verify(signature, canonical_bytes(signed), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ProtocolError) as exc:
        raise SignatureError(
            f"signature of a message from {site!r} does not verify with its certificate; "
            "the message was altered or signed with another key",
            field="sig",
        ) from exc


def _check_skew(sent_at: float, *, now: float, max_skew_s: float, site: str) -> None:
    if not math.isfinite(sent_at):
        raise ProtocolError("field 'sent_at' must be a finite timestamp", field="sent_at")
    age = now - sent_at
    if age > max_skew_s:
        raise ExpiredMessageError(
            f"message from {site!r} was sent {age:.0f}s ago, more than the allowed "
            f"{max_skew_s:.0f}s; resend it with a fresh timestamp",
            field="sent_at",
        )
    if age < -max_skew_s:
        raise ExpiredMessageError(
            f"message from {site!r} is dated {-age:.0f}s in the future, beyond the allowed "
            f"{max_skew_s:.0f}s skew; synchronise the sites' clocks (NTP)",
            field="sent_at",
        )


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ProtocolError("map keys must be strings")
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _to_wire(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_wire(v) for v in value]
    return value
