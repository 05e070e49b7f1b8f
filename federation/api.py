"""The federation HTTPS API under ``/fed/v1`` (its own listener, mutual TLS only).

The TLS handshake already refuses clients without a certificate from the
federation CA. Every handler then authenticates the caller as a configured peer
and ``POST`` bodies are signed envelopes, replay-checked
(:mod:`federation.api_auth`). Replies to ``POST`` are msgpack messages
(:func:`federation.envelope.encode_reply`); reads (``GET``) answer JSON or the
frame bytes, and only for jobs the caller owns.

| Route | Side | Message in -> out |
| --- | --- | --- |
| ``POST /fed/v1/offer`` | remote | Offer -> OfferReply |
| ``HEAD/PATCH /fed/v1/blobs/{sha256}`` | remote | resumable upload, only blobs of an open offer |
| ``POST /fed/v1/commit`` | remote | Commit -> CommitReply |
| ``POST /fed/v1/cancel`` | remote | Cancel -> Ack |
| ``GET /fed/v1/jobs/{id}`` | remote | status JSON, for reconciliation |
| ``GET /fed/v1/jobs/{id}/frames/{frame}`` | remote | frame bytes (``X-Sha256``, ``Blob-Port``) |
| ``GET /fed/v1/jobs/{id}/frames/{frame}/files/{name}`` | remote | another file of the frame |
| ``GET /fed/v1/jobs/{id}/tasks/{index}/log`` | remote | task log page JSON (``attempt``, ``offset``, ``wait``) |
| ``POST /fed/v1/notify`` | origin | Notify -> Ack |
| ``POST /fed/v1/progress`` | origin | Progress -> Ack |
| ``POST /fed/v1/reclaim`` | remote | Reclaim -> ReclaimReply (unstarted chunks of a part back) |
| ``POST /fed/v1/pause``, ``/fed/v1/resume`` | both | Pause/Resume -> Ack |
| ``POST /fed/v1/capacity`` | both | CapacityAdvert -> Ack |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiohttp import web

from federation.accept import Acceptance
from federation.api_auth import (
    REPLY_TYPE,
    DuplicateMessageError,
    ReplayGuard,
    authenticate,
    authenticate_names,
    processed,
    receive,
)
from federation.blob_listener import BlobRequest, Handler
from federation.blob_listener import answer as answer_blob
from federation.blob_receiver import STORED_BYTES, BlobUploadEndpoint, ResumableReceiver
from federation.capacity import PeerBook
from federation.envelope import encode_reply
from federation.frame_listener import FrameHandler, FrameRequest, ServedFrame
from federation.peers import FederationConfig, PeerConfig
from federation.progress import Controls
from federation.protocol import (
    Ack,
    Cancel,
    CapacityAdvert,
    Commit,
    Notify,
    Offer,
    Pause,
    Progress,
    Reclaim,
    Resume,
)
from federation.reclaim import Withdrawals
from federation.remote_logs import LogServing
from federation.results import Results
from federation.transfer import BLOB_PORT
from site_agent.errors import BadRequestError, ForbiddenError, NotFoundError
from site_agent.frame_response import send_frame
from site_agent.http_errors import make_error_middleware

_Answer = TypeVar("_Answer", bound=web.StreamResponse)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class BlobReceiving(Protocol):
    """Where uploaded blobs land (the site's :class:`~site_agent.assets.AssetStore`)."""

    max_blob_bytes: int

    @property
    def partial_dir(self) -> Path: ...

    def has(self, sha256: str) -> bool: ...

    def adopt(self, sha256: str, path: Path, *, verified: bool = False) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationEndpoints:
    """What the routes call: the roles that answer, and the checks every request passes."""

    name: str
    config: FederationConfig
    seen: ReplayGuard
    acceptance: Acceptance
    results: Results
    controls: Controls
    book: PeerBook
    blobs: BlobReceiving
    refused: Callable[[str], None]
    """Counts and logs a refused request (``what`` says which and why)."""
    clock: Callable[[], float] = field(default=time.time)
    logs: LogServing | None = None
    """Task logs of accepted jobs, for their origin (none: this site serves none)."""
    withdrawals: Withdrawals | None = None
    """Answers reclaims of split jobs' parts (none: this site gives no chunks back)."""


ENDPOINTS: web.AppKey[FederationEndpoints] = web.AppKey("federation", FederationEndpoints)
BLOBS: web.AppKey[BlobUploadEndpoint] = web.AppKey("federation-blobs", BlobUploadEndpoint)
"""The app's blob endpoint, which the threaded blob listener shares (:func:`blob_listener_handler`)."""


def build_federation_app(endpoints: FederationEndpoints) -> web.Application:
    app = web.Application(
        middlewares=[make_error_middleware({DuplicateMessageError: (409, "duplicate")})],
        client_max_size=MAX_MESSAGE_BYTES,
    )
    app[ENDPOINTS] = endpoints
    receiver = ResumableReceiver(
        endpoints.blobs.partial_dir,
        commit=_adopt(endpoints.blobs),
        is_stored=_stored(endpoints.blobs),
        max_blob_size=endpoints.blobs.max_blob_bytes,
    )
    blobs = app[BLOBS] = BlobUploadEndpoint(receiver)
    app.router.add_post("/fed/v1/offer", _offer)
    app.router.add_post("/fed/v1/commit", _commit)
    app.router.add_post("/fed/v1/cancel", _cancel)
    app.router.add_post("/fed/v1/notify", _notify)
    app.router.add_post("/fed/v1/progress", _progress)
    app.router.add_post("/fed/v1/reclaim", _reclaim)
    app.router.add_post("/fed/v1/pause", _control)
    app.router.add_post("/fed/v1/resume", _control)
    app.router.add_post("/fed/v1/capacity", _capacity)
    app.router.add_get("/fed/v1/jobs/{job_id}", _status)
    app.router.add_get("/fed/v1/jobs/{job_id}/frames/{frame}", _frame)
    app.router.add_get("/fed/v1/jobs/{job_id}/frames/{frame}/files/{name:.+}", _frame)
    app.router.add_get("/fed/v1/jobs/{job_id}/tasks/{index}/log", _task_log)
    app.router.add_route("HEAD", "/fed/v1/blobs/{sha256}", _guard_blob(blobs.head))
    app.router.add_patch("/fed/v1/blobs/{sha256}", _guard_blob(blobs.patch))
    return app


def _adopt(blobs: BlobReceiving) -> Any:
    async def commit(sha256: str, path: Any) -> None:
        # The receiver just verified it; adopting syncs its folder: off the loop.
        await asyncio.to_thread(blobs.adopt, sha256, path, verified=True)

    return commit


def _stored(blobs: BlobReceiving) -> Any:
    async def is_stored(sha256: str) -> bool:
        return bool(blobs.has(sha256))

    return is_stored


# --- handlers --------------------------------------------------------------------


async def _offer(request: web.Request) -> web.Response:
    peer, env = await receive(request.app[ENDPOINTS], request, Offer)
    assert isinstance(env.message, Offer)
    reply = await request.app[ENDPOINTS].acceptance.offer(peer, env.message)
    return await processed(request.app[ENDPOINTS], peer, env, reply)


async def _commit(request: web.Request) -> web.Response:
    peer, env = await receive(request.app[ENDPOINTS], request, Commit)
    assert isinstance(env.message, Commit)
    reply = await request.app[ENDPOINTS].acceptance.commit(peer, env.message)
    return await processed(request.app[ENDPOINTS], peer, env, reply)


async def _cancel(request: web.Request) -> web.Response:
    peer, env = await receive(request.app[ENDPOINTS], request, Cancel)
    assert isinstance(env.message, Cancel)
    reply = await request.app[ENDPOINTS].acceptance.cancel(peer, env.message)
    return await processed(request.app[ENDPOINTS], peer, env, reply)


async def _notify(request: web.Request) -> web.Response:
    peer, env = await receive(request.app[ENDPOINTS], request, Notify)
    assert isinstance(env.message, Notify)
    await request.app[ENDPOINTS].results.notify(peer, env.message)
    return await processed(request.app[ENDPOINTS], peer, env, Ack(of=env.msg_id))


async def _progress(request: web.Request) -> web.Response:
    peer, env = await receive(request.app[ENDPOINTS], request, Progress)
    assert isinstance(env.message, Progress)
    await request.app[ENDPOINTS].results.progress(peer, env.message)
    return await processed(request.app[ENDPOINTS], peer, env, Ack(of=env.msg_id))


async def _reclaim(request: web.Request) -> web.Response:
    peer, env = await receive(request.app[ENDPOINTS], request, Reclaim)
    assert isinstance(env.message, Reclaim)
    withdrawals = request.app[ENDPOINTS].withdrawals
    if withdrawals is None:
        raise NotFoundError("this site gives no chunks of accepted jobs back")
    reply = await withdrawals.reclaim(peer, env.message)
    return await processed(request.app[ENDPOINTS], peer, env, reply)


async def _control(request: web.Request) -> web.Response:
    kind = Pause if request.path.endswith("/pause") else Resume
    peer, env = await receive(request.app[ENDPOINTS], request, kind)
    assert isinstance(env.message, Pause | Resume)
    await request.app[ENDPOINTS].controls.apply(peer, env.message)
    return await processed(request.app[ENDPOINTS], peer, env, Ack(of=env.msg_id))


async def _capacity(request: web.Request) -> web.Response:
    peer, env = await receive(request.app[ENDPOINTS], request, CapacityAdvert)
    assert isinstance(env.message, CapacityAdvert)
    await request.app[ENDPOINTS].book.record_advert(peer.name, env.message)
    # Adverts are periodic and carry no effect to repeat, so their ids are not kept.
    return web.Response(body=encode_reply(Ack(of=env.msg_id)), content_type=REPLY_TYPE)


async def _status(request: web.Request) -> web.Response:
    peer = authenticate(request.app[ENDPOINTS], request)
    body = await request.app[ENDPOINTS].acceptance.status(peer, request.match_info["job_id"])
    return web.json_response(body)


async def _frame(request: web.Request) -> web.StreamResponse:
    peer = authenticate(request.app[ENDPOINTS], request)
    served = await _frame_file(
        request.app[ENDPOINTS],
        peer,
        request.match_info["job_id"],
        request.match_info["frame"],
        request.match_info.get("name"),
    )
    port = request.app[BLOBS].stream_port  # later frames come faster from the blob listener
    try:
        response = await send_frame(
            request, served.opened, served.name, headers={BLOB_PORT: str(port)} if port else None
        )
    finally:
        served.opened.close()
    await served.sent(served.opened.size)
    return response


async def _frame_file(
    endpoints: FederationEndpoints, peer: PeerConfig, job_id: str, frame: str, name: str | None
) -> ServedFrame:
    """The checked file of a frame of ``peer``'s job ``job_id`` (both frame routes)."""
    try:
        number = int(frame)
    except ValueError:
        raise BadRequestError("the frame must be a whole number") from None
    opened, file_name = await endpoints.acceptance.frame_file(peer, job_id, number, name)
    return ServedFrame(
        opened=opened,
        name=file_name,
        sent=partial(endpoints.acceptance.frame_sent, peer, job_id),
    )


def frame_listener_handler(app: web.Application) -> FrameHandler:
    """How the blob listener serves frames (:mod:`federation.frame_listener`): the same
    peer authentication, ownership and hash checks and accounting as ``/fed/v1``."""
    endpoints = app[ENDPOINTS]

    async def handle(request: FrameRequest) -> ServedFrame:
        peer = authenticate_names(endpoints, request.names, request.remote)
        return await _frame_file(endpoints, peer, request.job_id, request.frame, request.name)

    return handle


async def _task_log(request: web.Request) -> web.Response:
    peer = authenticate(request.app[ENDPOINTS], request)
    logs = request.app[ENDPOINTS].logs
    if logs is None:
        raise NotFoundError("this site serves no task logs to its peers")
    body = await logs.serve(
        peer, request.match_info["job_id"], request.match_info["index"], request.query
    )
    return web.json_response(body)


def _guard_blob(handler: Any) -> Any:
    async def guarded(request: web.Request) -> web.StreamResponse:
        peer = authenticate(request.app[ENDPOINTS], request)

        async def answer(stored: Callable[[int], None]) -> web.StreamResponse:
            try:
                response: web.StreamResponse = await handler(request)
            finally:
                stored(request.get(STORED_BYTES, 0))
            return response

        return await _blob_checked(
            request.app[ENDPOINTS], peer, request.match_info["sha256"], answer
        )

    return guarded


def blob_listener_handler(app: web.Application) -> Handler:
    """What the threaded blob listener (:mod:`federation.blob_listener`) answers with: the
    same peer authentication, blob checks and accounting as the ``/fed/v1`` blob route."""
    endpoints, blobs = app[ENDPOINTS], app[BLOBS]

    async def handle(request: BlobRequest) -> web.Response:
        peer = authenticate_names(endpoints, request.names, request.remote)

        return await _blob_checked(
            endpoints, peer, request.sha256, partial(answer_blob, blobs, request)
        )

    return handle


async def _blob_checked(
    endpoints: FederationEndpoints,
    peer: PeerConfig,
    sha256: str,
    answer: Callable[[Callable[[int], None]], Awaitable[_Answer]],
) -> _Answer:
    """``answer(stored)`` once ``peer`` may upload blob ``sha256``; the bytes it reports
    stored (also of a stream cut part way: the sender resumes after them) are accounted."""
    if not await endpoints.acceptance.blob_allowed(peer, sha256):
        raise ForbiddenError(
            f"blob {sha256} is not part of an open offer from {peer.name}; offer the job first"
        )
    stored = 0

    def count(size: int) -> None:
        nonlocal stored
        stored = size

    try:
        return await answer(count)
    finally:
        if stored:  # a refused request stored none
            await endpoints.acceptance.blob_received(peer, sha256, stored)
