"""Who is calling the federation API, and whether its message is new.

Every ``/fed/v1`` request (and the blob listener's) must come with a certificate
that proves a configured peer's site name, its CN and a DNS SAN both equal to it
(401 without one, 403 otherwise, logged with the reason). A ``POST`` body is a
signed envelope, checked against that same certificate; a message id seen before
from that peer is refused with ``409 duplicate`` and changes nothing (replay guard).
:mod:`federation.api` routes requests through these checks.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from federation.envelope import Envelope, decode_envelope, encode_reply
from federation.errors import ExpiredMessageError, FederationProtocolError, SignatureError
from federation.identity import (
    CertificateNames,
    CertificateNamesError,
    certificate_names,
    peer_certificate,
)
from federation.peers import FederationConfig, PeerConfig
from federation.protocol import Message
from site_agent.errors import BadRequestError, ConflictError, ForbiddenError, UnauthorizedError

REPLY_TYPE = "application/vnd.spillway.fed+msgpack"


class DuplicateMessageError(ConflictError):
    """The message id was already processed; nothing was done again."""


class ReplayGuard(Protocol):
    """Message ids already processed, per sending site (:class:`~federation.store.FederationStore`)."""

    async def seen(self, site: str, msg_id: str) -> bool: ...

    async def mark_seen(self, site: str, msg_id: str, *, at: float) -> None: ...


class Gate(Protocol):
    """What the checks need of the site (:class:`~federation.api.FederationEndpoints`)."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> FederationConfig: ...

    @property
    def seen(self) -> ReplayGuard: ...

    @property
    def refused(self) -> Callable[[str], None]: ...

    @property
    def clock(self) -> Callable[[], float]: ...


def _ssl_object(request: web.Request) -> ssl.SSLObject | None:
    return request.transport.get_extra_info("ssl_object") if request.transport else None


def authenticate(gate: Gate, request: web.Request) -> PeerConfig:
    """The configured peer whose verified certificate made this request, or 401/403."""
    return authenticate_names(gate, certificate_names(_ssl_object(request)), request.remote)


def authenticate_names(
    gate: Gate, names: CertificateNames | None, remote: str | None
) -> PeerConfig:
    """The configured peer whose verified certificate carries ``names``, or 401/403.

    The certificate must prove the peer's site name: CN and a DNS SAN both equal
    to it (:attr:`~federation.certs.CertificateNames.site`), the same check an
    outgoing call makes of the site it dials.
    """
    if names is None:
        raise UnauthorizedError("present a site certificate issued by the federation CA")
    name = names.site
    if name is None:
        problem = CertificateNamesError(
            expected="", common_name=names.common_name, dns_names=names.dns_names
        )
        gate.refused(f"{problem} (from {remote})")
        raise ForbiddenError(str(problem))
    peer = gate.config.peer(name)
    if peer is None:
        gate.refused(f"certificate of unconfigured site {name!r}")
        raise ForbiddenError(
            f"site {name!r} is not a configured peer of {gate.name}; "
            "add it to [[peers]] at both sites"
        )
    return peer


async def receive(
    gate: Gate, request: web.Request, kind: type[Message]
) -> tuple[PeerConfig, Envelope]:
    """Authenticate, decode and replay-check a signed message of type ``kind``."""
    peer = authenticate(gate, request)
    cert = peer_certificate(_ssl_object(request))
    assert cert is not None  # authenticate() found a verified certificate
    try:
        env = decode_envelope(
            await request.read(), peer_cert=cert, expected_site=peer.name, now=gate.clock()
        )
    except (SignatureError, ExpiredMessageError) as exc:
        gate.refused(f"{peer.name}: {exc}")
        raise ForbiddenError(str(exc)) from None
    except FederationProtocolError as exc:
        raise BadRequestError(str(exc)) from None
    if not isinstance(env.message, kind):
        raise BadRequestError(
            f"this endpoint takes a {kind.TYPE!r} message, not {env.message.TYPE!r}"
        )
    if await gate.seen.seen(peer.name, env.msg_id):
        gate.refused(f"replayed message {env.msg_id} from {peer.name}")
        raise DuplicateMessageError(
            f"message {env.msg_id} from {peer.name} was already processed; nothing was done again"
        )
    return peer, env


async def processed(gate: Gate, peer: PeerConfig, env: Envelope, reply: Message) -> web.Response:
    """Remember the message as processed, and answer ``reply``."""
    await gate.seen.mark_seen(peer.name, env.msg_id, at=gate.clock())
    return web.Response(body=encode_reply(reply), content_type=REPLY_TYPE)
