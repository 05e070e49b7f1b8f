"""The signed envelope every federation message travels in, and the unsigned reply.

A request carries one message of :mod:`federation.protocol` in a msgpack envelope::

    {"v": 1, "type": "offer", "site": "studio", "id": "<hex>", "sent_at": 1.7e9,
     "body": {...message fields by name...}, "sig": <bytes>}

``sig`` is an ECDSA-SHA256 signature, by the sending site's certificate key,
over :func:`canonical_bytes` of the envelope without ``sig``. The receiver
checks it with the public key of the certificate the peer presented in the
mutual TLS handshake, so a message stays attributable to a site even when it
is stored and relayed (outbox, logs).

Decoding validates the version, the type, the claimed site, the signature and
the clock skew, then the body (:meth:`federation.protocol.Message.from_body`);
any failure raises :class:`FederationProtocolError` (or a subclass) naming the
field.

Replay protection is the receiver's job: it records each (site, message id) it acted on
(:class:`federation.api_auth.ReplayGuard`) and answers a repeat without acting again.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from federation.errors import (
    ExpiredMessageError,
    FederationProtocolError,
    SignatureError,
    SiteMismatchError,
)
from federation.protocol import CODEC, PROTOCOL_VERSION, Message

_MAX_ID_LENGTH = 128

_M = TypeVar("_M", bound=Message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A decoded, authenticated message."""

    site: str
    msg_id: str
    sent_at: float
    message: Message


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
    Raises :class:`FederationProtocolError`, :class:`SiteMismatchError`,
    :class:`SignatureError` or :class:`ExpiredMessageError`.
    """
    fields = CODEC.unpack(data)
    CODEC.check_version(fields.get("v"))
    site = _field(fields, "site", str)
    if site != expected_site:
        raise SiteMismatchError(
            f"message claims to come from site {site!r} but the connection is from "
            f"{expected_site!r}; the sender is misconfigured or forging",
            field="site",
        )
    msg_id = _field(fields, "id", str)
    if not 0 < len(msg_id) <= _MAX_ID_LENGTH:
        raise FederationProtocolError(
            f"field 'id' must be 1-{_MAX_ID_LENGTH} characters", field="id"
        )
    sent_at = _field(fields, "sent_at", float)
    type_name = _field(fields, "type", str)
    body = _field(fields, "body", dict)
    _verify_signature(fields, peer_cert, site)
    _check_skew(sent_at, now=now, max_skew_s=max_skew_s, site=site)
    cls: type[Message] = CODEC.message_type(type_name)
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
    """Decode a reply made by :func:`encode_reply`; raises :class:`FederationProtocolError`."""
    fields = CODEC.unpack(data)
    CODEC.check_version(fields.get("v"))
    type_name = _field(fields, "type", str)
    if type_name != expected.TYPE:
        raise FederationProtocolError(
            f"expected a {expected.TYPE!r} reply, got {type_name!r}", field="type"
        )
    return expected.from_body(_field(fields, "body", dict))


# --- helpers --------------------------------------------------------------------


def _field(fields: Mapping[str, Any], name: str, kind: type) -> Any:
    value = fields.get(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise FederationProtocolError(
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
    except (InvalidSignature, FederationProtocolError) as exc:
        raise SignatureError(
            f"signature of a message from {site!r} does not verify with its certificate; "
            "the message was altered or signed with another key",
            field="sig",
        ) from exc


def _check_skew(sent_at: float, *, now: float, max_skew_s: float, site: str) -> None:
    if not math.isfinite(sent_at):
        raise FederationProtocolError("field 'sent_at' must be a finite timestamp", field="sent_at")
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
            raise FederationProtocolError("map keys must be strings")
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value
