"""Standard Webhooks signatures: HMAC-SHA256 of ``{id}.{timestamp}.{body}``, base64, ``v1,``.

See https://www.standardwebhooks.com: the receiver recomputes the signature
with the shared secret and compares; the timestamp lets it refuse replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


class SignatureError(Exception):
    """A delivery's signature headers are missing, stale or do not match."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a configured secret: ``whsec_<base64>`` decoded, other text as UTF-8."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            pass  # not base64 after all: the whole text is the key
    return secret.encode("utf-8")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    key: bytes,
    received: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> str:
    """Check a received delivery (headers by lower-case name); returns its id.

    SignatureError when a header is missing, the timestamp is further than
    ``tolerance_s`` from ``now``, or no ``v1`` signature matches.
    """
    try:
        msg_id = received["webhook-id"]
        timestamp = int(received["webhook-timestamp"])
        signatures = received["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise SignatureError(f"missing or malformed webhook headers: {exc}") from None
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"timestamp {timestamp} is too far from now ({now:.0f})")
    expected = sign(key, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("no signature matches")
    return msg_id
