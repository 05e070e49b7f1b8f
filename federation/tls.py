"""TLS contexts for the federation listener and for calls to peers, following file rotation.

Certificates are re-read when their files change, so a site's certificate can
be rotated (or the CA bundle extended) without restarting the agent. Outgoing
contexts made for a named peer check its identity during the handshake
(:class:`federation.identity.SiteCheckingSSLObject`).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.errors import TlsFilesError
from federation.identity import SiteCheckingSSLObject, validate_site_name

__all__ = ["TlsContexts", "TlsFiles"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    """This site's CA bundle, certificate and key (``[federation]`` ca, cert, key)."""

    ca: Path
    cert: Path
    key: Path


_Stamp = tuple[tuple[int, int, int, int], ...]
_KINDS = ("server", "client", "named-client")


class TlsContexts:
    """Server and client :class:`ssl.SSLContext` objects that follow file rotation.

    Server: pass :meth:`server_context` to ``web.TCPSite(ssl_context=...)``. Its
    ``sni_callback`` runs at the start of every handshake and swaps in a context
    rebuilt from the files whenever one of them changed (inode, size or mtime),
    so new connections present the new certificate without a restart. Handlers
    then call :func:`verify_peer` on ``request.transport.get_extra_info("ssl_object")``.

    Client: contexts verify the server against the federation CA only and present
    this site's certificate; they are cached and rebuilt when the files changed,
    so fetch one per request rather than keeping it.

    - :meth:`client_context` has ``check_hostname`` off, because peers are
      authenticated by certificate name, not by the address they were reached
      at: the caller checks the name with :func:`verify_peer` on the connection's
      ``ssl_object``. Use it where you hold that object (asyncio streams).
    - aiohttp releases a connection as soon as a small body is read, so a caller
      often cannot reach the ``ssl_object``. For aiohttp use
      :meth:`request_options` (``session.post(url, **tls.request_options(peer))``):
      it pins the TLS server name to the peer's site name; during the handshake
      OpenSSL checks that the certificate carries it as a DNS SAN and
      :class:`SiteCheckingSSLObject` that it is also the CN, so a certificate of
      another site that lists the name among its hosts is refused before any
      request is sent (``aiohttp.ClientConnectorCertificateError``).

    If the files are mid-rotation and do not fit together, the previous context
    keeps being used (and the failure is logged) until they do.
    """

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        stamp = self._stamp()
        self._cache: dict[str, tuple[_Stamp, ssl.SSLContext]] = {
            kind: (stamp, self._build(kind)) for kind in _KINDS
        }
        # The listening context only carries the callback; it is also a valid
        # context in its own right (same files), so a handshake never lacks one.
        self._listener = self._build("server")
        self._listener.sni_callback = self._on_client_hello

    def server_context(self) -> ssl.SSLContext:
        """The context to listen with; it refreshes certificates per handshake."""
        return self._listener

    def client_context(self) -> ssl.SSLContext:
        """Outgoing context without host name checks; pair it with :func:`verify_peer`."""
        return self._current("client")

    def named_client_context(self) -> ssl.SSLContext:
        """Outgoing context that checks the server name; connect with ``server_hostname=<site>``."""
        return self._current("named-client")

    def request_options(self, peer: str) -> dict[str, Any]:
        """aiohttp request keyword arguments that authenticate the server as site ``peer``."""
        return {"ssl": self.named_client_context(), "server_hostname": validate_site_name(peer)}

    def current_server_context(self) -> ssl.SSLContext:
        """The context new incoming handshakes use, rebuilt when the files changed."""
        return self._current("server")

    def _on_client_hello(
        self, ssl_object: ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        try:
            ssl_object.context = self.current_server_context()
        except Exception:  # an exception here would only abort the handshake obscurely
            log.exception("could not refresh the federation server TLS context")

    def _current(self, kind: str) -> ssl.SSLContext:
        stamp, ctx = self._cache[kind]
        try:
            current = self._stamp()
            if current == stamp:
                return ctx
            fresh = self._build(kind)
        except TlsFilesError as exc:
            # Typically a rotation caught between writing the key and the cert.
            log.warning("keeping the previous %s TLS context: %s", kind, exc)
            return ctx
        log.info("reloaded federation TLS files for %s contexts (%s)", kind, self.files.cert)
        self._cache[kind] = (current, fresh)
        return fresh

    def _stamp(self) -> _Stamp:
        stamps = []
        for path in (self.files.ca, self.files.cert, self.files.key):
            try:
                st = path.stat()
            except OSError as exc:
                raise TlsFilesError(path, exc.strerror or str(exc)) from exc
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(stamps)

    def _build(self, kind: str) -> ssl.SSLContext:
        server = kind == "server"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = kind == "named-client"
        if kind == "named-client":
            ctx.sslobject_class = SiteCheckingSSLObject
        ctx.verify_mode = ssl.CERT_REQUIRED
        # No session resumption: a resumed session would skip certificate checks
        # against rotated files, and federation connections are few and long-lived.
        ctx.options |= ssl.OP_NO_TICKET
        if server:
            ctx.num_tickets = 0
        try:
            ctx.load_verify_locations(cafile=self.files.ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFilesError(self.files.ca, str(exc)) from exc
        try:
            ctx.load_cert_chain(certfile=self.files.cert, keyfile=self.files.key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFilesError(
                self.files.cert, f"cannot load it with key {self.files.key} ({exc})"
            ) from exc
        return ctx
