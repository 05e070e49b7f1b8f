"""The federation HTTPS API under ``/fed/v1`` (its own listener, mutual TLS only).

The TLS handshake already refuses clients without a certificate from the
federation CA. Every handler then requires the certificate's site name to be a
configured peer (403 otherwise). ``POST`` bodies are signed envelopes, checked
against that same certificate; a message id seen before from that peer is
refused with ``409 duplicate`` and changes nothing (replay guard). Replies to
``POST`` are msgpack messages (:func:`federation.protocol.encode_reply`); reads
(``GET``) answer JSON or the frame bytes, and only for jobs the caller owns.

| Route | Side | Message in -> out |
| --- | --- | --- |
| ``POST /fed/v1/offer`` | remote | Offer -> OfferReply |
| ``HEAD/PATCH /fed/v1/blobs/{sha256}`` | remote | resumable upload, only blobs of an open offer |
| ``POST /fed/v1/commit`` | remote | Commit -> CommitReply |
| ``POST /fed/v1/cancel`` | remote | Cancel -> Ack |
| ``GET /fed/v1/jobs/{id}`` | remote | status JSON, for reconciliation |
| ``GET /fed/v1/jobs/{id}/frames/{frame}`` | remote | frame bytes (``X-Sha256``) |
| ``POST /fed/v1/notify`` | origin | Notify -> Ack |
| ``POST /fed/v1/capacity`` | both | CapacityAdvert -> Ack |
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from aiohttp import web

from federation.certs import peer_certificate, peer_name
from federation.errors import ExpiredMessageError, ProtocolError, SignatureError
from federation.peers import PeerConfig
from federation.protocol import (
    Ack,
    Cancel,
    CapacityAdvert,
    Commit,
    Envelope,
    Message,
    Notify,
    Offer,
    decode_envelope,
    encode_reply,
)
from federation.transfer import BlobUploadEndpoint, ResumableReceiver
from site_agent.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    UnauthorizedError,
    error_middleware,
)

if TYPE_CHECKING:
    from federation.service import FederationService

SERVICE: web.AppKey[Any] = web.AppKey("federation")
REPLY_TYPE = "application/vnd.spillway.fed+msgpack"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class DuplicateMessageError(ConflictError):
    """The message id was already processed; nothing was done again."""

    code = "duplicate"


def build_federation_app(service: FederationService) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_MESSAGE_BYTES)
    app[SERVICE] = service
    receiver = ResumableReceiver(
        service.site.assets.partial_dir,
        commit=_adopt(service),
        is_stored=_stored(service),
        max_blob_size=service.site.assets.max_blob_bytes,
    )
    blobs = BlobUploadEndpoint(receiver)
    app.router.add_post("/fed/v1/offer", _offer)
    app.router.add_post("/fed/v1/commit", _commit)
    app.router.add_post("/fed/v1/cancel", _cancel)
    app.router.add_post("/fed/v1/notify", _notify)
    app.router.add_post("/fed/v1/capacity", _capacity)
    app.router.add_get("/fed/v1/jobs/{job_id}", _status)
    app.router.add_get("/fed/v1/jobs/{job_id}/frames/{frame}", _frame)
    app.router.add_route("HEAD", "/fed/v1/blobs/{sha256}", _guard_blob(blobs.head))
    app.router.add_patch("/fed/v1/blobs/{sha256}", _guard_blob(blobs.patch))
    return app


def _adopt(service: FederationService) -> Any:
    async def commit(sha256: str, path: Any) -> None:
        service.site.assets.adopt(sha256, path, verified=True)  # the receiver just verified it

    return commit


def _stored(service: FederationService) -> Any:
    async def is_stored(sha256: str) -> bool:
        return bool(service.site.assets.has(sha256))

    return is_stored


# --- authentication --------------------------------------------------------------


def _ssl_object(request: web.Request) -> ssl.SSLObject | None:
    return request.transport.get_extra_info("ssl_object") if request.transport else None


def authenticate(request: web.Request) -> PeerConfig:
    """The configured peer whose verified certificate made this request, or 403."""
    service: FederationService = request.app[SERVICE]
    name = peer_name(_ssl_object(request))
    if name is None:
        raise UnauthorizedError("present a site certificate issued by the federation CA")
    peer = service.config.peer(name)
    if peer is None:
        service.log_refusal(f"certificate of unconfigured site {name!r}")
        raise ForbiddenError(
            f"site {name!r} is not a configured peer of {service.name}; "
            "add it to [[peers]] at both sites"
        )
    return peer


async def receive(request: web.Request, kind: type[Message]) -> tuple[PeerConfig, Envelope]:
    """Authenticate, decode and replay-check a signed message of type ``kind``."""
    service: FederationService = request.app[SERVICE]
    peer = authenticate(request)
    cert = peer_certificate(_ssl_object(request))
    assert cert is not None  # authenticate() found a verified certificate
    try:
        env = decode_envelope(
            await request.read(), peer_cert=cert, expected_site=peer.name, now=service.clock()
        )
    except (SignatureError, ExpiredMessageError) as exc:
        service.log_refusal(f"{peer.name}: {exc}")
        raise ForbiddenError(str(exc)) from None
    except ProtocolError as exc:
        raise BadRequestError(str(exc)) from None
    if not isinstance(env.message, kind):
        raise BadRequestError(
            f"this endpoint takes a {kind.TYPE!r} message, not {env.message.TYPE!r}"
        )
    if await service.store.fed_seen(peer.name, env.msg_id):
        service.log_refusal(f"replayed message {env.msg_id} from {peer.name}")
        raise DuplicateMessageError(
            f"message {env.msg_id} from {peer.name} was already processed; nothing was done again"
        )
    return peer, env


async def _processed(
    request: web.Request, peer: PeerConfig, env: Envelope, reply: Message
) -> web.Response:
    service: FederationService = request.app[SERVICE]
    await service.store.fed_mark_seen(peer.name, env.msg_id, at=service.clock())
    return web.Response(body=encode_reply(reply), content_type=REPLY_TYPE)


# --- handlers --------------------------------------------------------------------


async def _offer(request: web.Request) -> web.Response:
    peer, env = await receive(request, Offer)
    assert isinstance(env.message, Offer)
    reply = await request.app[SERVICE].acceptance.offer(peer, env.message)
    return await _processed(request, peer, env, reply)


async def _commit(request: web.Request) -> web.Response:
    peer, env = await receive(request, Commit)
    assert isinstance(env.message, Commit)
    reply = await request.app[SERVICE].acceptance.commit(peer, env.message)
    return await _processed(request, peer, env, reply)


async def _cancel(request: web.Request) -> web.Response:
    peer, env = await receive(request, Cancel)
    assert isinstance(env.message, Cancel)
    reply = await request.app[SERVICE].acceptance.cancel(peer, env.message)
    return await _processed(request, peer, env, reply)


async def _notify(request: web.Request) -> web.Response:
    peer, env = await receive(request, Notify)
    assert isinstance(env.message, Notify)
    await request.app[SERVICE].results.notify(peer, env.message)
    return await _processed(request, peer, env, Ack(of=env.msg_id))


async def _capacity(request: web.Request) -> web.Response:
    peer, env = await receive(request, CapacityAdvert)
    assert isinstance(env.message, CapacityAdvert)
    await request.app[SERVICE].book.record_advert(peer.name, env.message)
    # Adverts are periodic and carry no effect to repeat, so their ids are not kept.
    return web.Response(body=encode_reply(Ack(of=env.msg_id)), content_type=REPLY_TYPE)


async def _status(request: web.Request) -> web.Response:
    peer = authenticate(request)
    body = await request.app[SERVICE].acceptance.status(peer, request.match_info["job_id"])
    return web.json_response(body)


async def _frame(request: web.Request) -> web.FileResponse:
    peer = authenticate(request)
    try:
        frame = int(request.match_info["frame"])
    except ValueError:
        raise BadRequestError("the frame must be a whole number") from None
    path, sha256 = await request.app[SERVICE].acceptance.frame_file(
        peer, request.match_info["job_id"], frame
    )
    return web.FileResponse(
        path, headers={"X-Sha256": sha256, "Content-Type": "application/octet-stream"}
    )


def _guard_blob(handler: Any) -> Any:
    async def guarded(request: web.Request) -> web.StreamResponse:
        peer = authenticate(request)
        sha256 = request.match_info["sha256"]
        if not await request.app[SERVICE].acceptance.blob_allowed(peer, sha256):
            raise ForbiddenError(
                f"blob {sha256} is not part of an open offer from {peer.name}; offer the job first"
            )
        response: web.StreamResponse = await handler(request)
        return response

    return guarded
