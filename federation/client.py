"""Outgoing federation requests: signed messages to a peer over mutual TLS.

Every request authenticates the peer by its site name during the TLS handshake
(``TlsContexts.request_options``: the certificate's CN and a DNS SAN must both be
the configured peer's name) and presents this site's certificate; a peer address
that answers with another certificate gets nothing (:class:`PeerCertificateError`,
logged with the reason). Messages
go out as signed envelopes; replies come back unsigned (see
:func:`federation.envelope.encode_reply`). Failures are split in two: a peer
that could not be reached or answered 429/5xx (:class:`PeerUnavailableError`,
worth retrying) and a peer that refused (:class:`PeerRefusedError`, 4xx).
"""

from __future__ import annotations

import http.client
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from federation.bandwidth import BandwidthLimits
from federation.envelope import decode_reply, encode_envelope
from federation.errors import FederationError, TlsFilesError, UploadError
from federation.peers import PeerConfig
from federation.protocol import Message
from federation.tls import TlsContexts
from federation.transfer import BLOB_PORT, upload_blob, url_origin, with_port
from federation.upload_threads import UploadConnections

if TYPE_CHECKING:
    from federation.interfaces import FileSink

log = logging.getLogger(__name__)

ENVELOPE_TYPE = "application/vnd.spillway.fed+msgpack"
_R = TypeVar("_R", bound=Message)


class PeerUnavailableError(FederationError):
    """A peer could not be reached, timed out or answered 429/5xx; retry later."""

    def __init__(self, peer: str, problem: str) -> None:
        self.peer = peer
        super().__init__(f"peer {peer} is unavailable: {problem}; will retry")


class PeerCertificateError(PeerUnavailableError):
    """The address configured for a peer answered with a certificate that does not prove
    the peer's site name; nothing was sent to it."""

    def __init__(self, peer: str, url: str, problem: str) -> None:
        self.peer = peer
        self.url = url
        FederationError.__init__(
            self,
            f"refusing to talk to {url} as peer {peer}: its certificate does not prove site "
            f"{peer} ({problem}); nothing was sent; check that the [[peers]] url of {peer} "
            "reaches that site; will retry",
        )


class PeerRefusedError(FederationError):
    """A peer answered a request with a 4xx error."""

    def __init__(self, peer: str, status: int, code: str, message: str) -> None:
        self.peer = peer
        self.status = status
        self.code = code
        super().__init__(f"peer {peer} refused ({status} {code}): {message}")


class SigningKey:
    """This site's private key, re-read when the file changes (certificate rotation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._key: ec.EllipticCurvePrivateKey | None = None

    def get(self) -> ec.EllipticCurvePrivateKey:
        st = self.path.stat()
        stamp = (st.st_ino, st.st_mtime_ns)
        if self._key is None or stamp != self._stamp:
            key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise TlsFilesError(self.path, "the site key is not an EC key")
            self._key, self._stamp = key, stamp
        return self._key


class PeerClient:
    def __init__(
        self,
        site: str,
        tls: TlsContexts,
        *,
        clock: Callable[[], float] = time.time,
        limits: BandwidthLimits | None = None,
    ):
        self.site = site
        self.tls = tls
        self.clock = clock
        # Per-peer bandwidth caps, shared by every upload to and frame fetch from that peer.
        self.limits = limits or BandwidthLimits(())
        self.key = SigningKey(tls.files.key)
        self._session: aiohttp.ClientSession | None = None
        self.bytes_sent = 0  # blobs uploaded to peers (the agent's /metrics)
        self.bytes_received = 0  # frames fetched from peers
        self._transfers: aiohttp.ClientSession | None = None
        # Blob chunks go through blocking TLS sockets in threads: encryption off the loop.
        self._uploads: UploadConnections | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # force_close: a new handshake per request, so rotated certificates apply at once.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=32)
            )
        return self._session

    @property
    def transfer_session(self) -> aiohttp.ClientSession:
        """Kept-alive connections for blob chunks and frames: a handshake per 4 MiB chunk cost
        more than the chunk's encryption. A rotated certificate still applies to every new
        connection (the rebuilt TLS context is part of aiohttp's pool key), and idle ones
        close after a few seconds."""
        if self._transfers is None:
            self._transfers = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=5)
            )
        return self._transfers

    async def close(self) -> None:
        for session in (self._session, self._transfers):
            if session is not None:
                await session.close()
        self._session = self._transfers = None
        if self._uploads is not None:
            self._uploads.close()
            self._uploads = None

    def options(self, peer: PeerConfig) -> dict[str, Any]:
        return self.tls.request_options(peer.name)

    def encode(self, msg: Message, *, msg_id: str | None = None) -> bytes:
        return encode_envelope(
            msg, site=self.site, key=self.key.get(), now=self.clock(), msg_id=msg_id
        )

    async def send(
        self,
        peer: PeerConfig,
        path: str,
        msg: Message,
        reply: type[_R],
        *,
        msg_id: str | None = None,
        timeout_s: float = 30,
    ) -> _R:
        """POST a signed ``msg`` to ``peer``; returns the decoded reply of type ``reply``."""
        data = self.encode(msg, msg_id=msg_id)
        return await self.post_raw(peer, path, data, reply, timeout_s=timeout_s)

    async def post_raw(
        self, peer: PeerConfig, path: str, data: bytes, reply: type[_R], *, timeout_s: float = 30
    ) -> _R:
        try:
            async with self.session.post(
                f"{peer.url}{path}",
                data=data,
                headers={"Content-Type": ENVELOPE_TYPE},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                **self.options(peer),
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise _status_error(peer.name, resp.status, body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _unavailable(peer, exc) from exc
        return decode_reply(body, reply)

    async def get_json(self, peer: PeerConfig, path: str, *, timeout_s: float = 15) -> Any:
        try:
            async with self.session.get(
                f"{peer.url}{path}",
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                **self.options(peer),
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise _status_error(peer.name, resp.status, body)
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _unavailable(peer, exc) from exc

    @asynccontextmanager
    async def stream(
        self, peer: PeerConfig, path: str, *, timeout_s: float = 300
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``path`` and yield the response once it answered 200 (body unread)."""
        try:
            async with self.transfer_session.get(
                f"{peer.url}{path}",
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                **self.options(peer),
            ) as resp:
                if resp.status != 200:
                    raise _status_error(peer.name, resp.status, await resp.read())
                yield resp
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _unavailable(peer, exc) from exc

    async def download(
        self, peer: PeerConfig, path: str, target: FileSink, *, timeout_s: float = 300
    ) -> None:
        """GET ``path`` and write the body into ``target`` as it arrives (at most as fast as
        the peer's bandwidth cap allows: a slow reader holds the sender back over TCP).
        Without a cap the body is received, decrypted and written by worker threads over
        blocking TLS sockets (:meth:`UploadConnections.get`), from the peer's blob listener
        when its port is known (``Blob-Port``), else (or when that fails before the body)
        from ``/fed/v1``; with a cap it is paced and written on the loop. ``timeout_s``
        bounds each wait (threads) or the whole."""
        if self.limits.bucket(peer.name) is not None:
            async with self.stream(peer, path, timeout_s=timeout_s) as resp:
                chunks = self.limits.paced(peer.name, resp.content.iter_chunked(1 << 16))
                async for chunk in self._counted(chunks):
                    target.write(chunk)
            return
        uploads = self._upload_connections()
        port = uploads.stream_ports.get(url_origin(peer.url))
        if port is not None:
            try:
                listener = with_port(peer.url, port) + path
                if await self._get_threaded(peer, listener, target, timeout_s=timeout_s):
                    return
            except PeerUnavailableError as exc:
                if target.size:
                    raise
                log.info(
                    "frame %s: %s blob listener failed (%s); using /fed/v1", path, peer.name, exc
                )
                uploads.stream_ports.pop(url_origin(peer.url), None)
        await self._get_threaded(
            peer, peer.url + path, target, authoritative=True, timeout_s=timeout_s
        )

    async def _get_threaded(
        self,
        peer: PeerConfig,
        url: str,
        target: FileSink,
        *,
        timeout_s: float,
        authoritative: bool = False,
    ) -> bool:
        """GET ``url`` into ``target`` in worker threads; whether it answered 200. Another
        answer is raised as the peer's error when ``authoritative`` (``/fed/v1``'s)."""
        options = self.options(peer)
        uploads = self._upload_connections()
        try:
            async with uploads.get(
                url,
                tls=options.get("ssl"),
                peer=options.get("server_hostname"),
                timeout_s=timeout_s,
            ) as got:
                if got.status != 200:
                    body = await got.body()
                    if authoritative:
                        raise _status_error(peer.name, got.status, body)
                    return False
                port = got.headers.get(BLOB_PORT, "")
                if authoritative and port.isdigit() and 0 < int(port) < 65536:
                    uploads.stream_ports[url_origin(peer.url)] = int(port)
                received = await got.into(target.write)
                # Not ``+= await``: that reads the counter before the wait, and concurrent
                # fetches would overwrite each other's counts.
                self.bytes_received += received
                return True
        except ssl.SSLCertVerificationError as exc:
            refused = PeerCertificateError(peer.name, peer.url, str(exc))
            log.error("%s", refused)
            raise refused from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _unavailable(peer, exc) from exc

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.bytes_received += len(chunk)
            yield chunk

    async def upload_blob(self, peer: PeerConfig, sha256: str, path: Path) -> int:
        """Upload the file ``path`` as blob ``sha256`` to ``peer`` (resumable); returns bytes sent."""
        try:
            sent = await upload_blob(
                self.transfer_session,
                peer.url,
                sha256,
                path,
                request_options=self.options(peer),
                bucket=self.limits.bucket(peer.name),
                connections=self._upload_connections(),
                missing=True,  # what forwarding uploads, its offer's reply named missing
            )
            self.bytes_sent += sent
            return sent
        except UploadError as exc:
            if isinstance(exc.__cause__, aiohttp.ClientConnectorCertificateError):
                raise _unavailable(peer, exc.__cause__) from exc
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                refused = PeerCertificateError(peer.name, peer.url, str(exc.__cause__))
                log.error("%s", refused)
                raise refused from exc
            raise

    def _upload_connections(self) -> UploadConnections:
        if self._uploads is None:
            self._uploads = UploadConnections()
        return self._uploads


def _unavailable(peer: PeerConfig, exc: BaseException) -> PeerUnavailableError:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        refused = PeerCertificateError(peer.name, peer.url, str(exc.certificate_error))
        log.error("%s", refused)
        return refused
    return PeerUnavailableError(peer.name, _describe(exc))


def _status_error(peer: str, status: int, body: bytes) -> FederationError:
    code, message = "http_error", body[:200].decode(errors="replace")
    try:
        import json

        err = json.loads(body)["error"]
        code, message = str(err.get("code", code)), str(err.get("message", message))
    except (ValueError, KeyError, TypeError):
        pass
    if status == 429 or status >= 500:
        return PeerUnavailableError(peer, f"answered {status} ({message})")
    return PeerRefusedError(peer, status, code, message)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
