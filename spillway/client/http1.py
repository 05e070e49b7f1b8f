"""A small HTTP/1.1 client connection over :mod:`socket` (TLS through :mod:`ssl` for https).

The sync client's transport needs little of HTTP: one request at a time on a
keep-alive connection, a body of bytes or a file with a known length, and an
answer sized by ``Content-Length``, chunked, or ended by the connection's close.
The standard library's ``http.client`` does that too, but importing it loads the
``email`` package to parse headers: about a third of a short command's start.

Errors: a connection closed before any answer raises :class:`RemoteDisconnected`
(a ``ConnectionResetError``, as in ``http.client``), so a caller can tell "send
again on a fresh connection" apart from :class:`BadResponse` (the peer answered
something that is not HTTP, or stopped mid-body). Socket timeouts raise
``TimeoutError``; other socket errors pass through as ``OSError``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import IO, Any

__all__ = ["BadResponse", "Connection", "RemoteDisconnected", "Response"]

_MAX_LINE = 65536
_MAX_HEADERS = 100
_SEND_CHUNK = 1024 * 1024

Connect = Callable[..., socket.socket]


class RemoteDisconnected(ConnectionResetError):
    """The peer closed the connection without answering (e.g. an idle keep-alive timed out)."""


class BadResponse(Exception):
    """The answer is not well-formed HTTP/1.x, or ended before its announced length."""


class Response:
    """One answer: status, reason, headers (names in lower case) and a body read on demand."""

    def __init__(self, conn: Connection, method: str) -> None:
        self._file = conn._reader()
        status_line = self._file.readline(_MAX_LINE + 1)
        if not status_line:
            raise RemoteDisconnected("the remote end closed the connection without a response")
        version, status, reason = _parse_status(status_line)
        while 100 <= status < 200:  # interim answers (100 Continue): skip to the real one
            self._read_headers()
            version, status, reason = _parse_status(self._file.readline(_MAX_LINE + 1))
        self.status = status
        self.reason = reason
        self.headers = self._read_headers()
        connection = self.headers.get("connection", "").lower()
        self.will_close = "close" in connection or (
            version == "HTTP/1.0" and "keep-alive" not in connection
        )
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self._chunk_left = 0
        self._left: int | None = None  # bytes still to read; None: chunked or until close
        if method == "HEAD" or status in (204, 304):
            self._left = 0
        elif not self._chunked:
            length = self.headers.get("content-length")
            if length is None:
                self.will_close = True  # the body ends when the peer closes
            else:
                try:
                    self._left = int(length)
                except ValueError:
                    raise BadResponse(f"bad Content-Length {length!r}") from None
                if self._left < 0:
                    raise BadResponse(f"bad Content-Length {length!r}")
        self._done = self._left == 0

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the body (all of what is left without ``amt``); b"" at its end."""
        if self._done:
            return b""
        if self._chunked:
            return self._read_chunked(amt)
        if self._left is None:  # until the peer closes
            data = self._file.read() if amt is None else self._file.read(amt)
            if amt is None or not data:
                self._done = True
            return data
        want = self._left if amt is None else min(amt, self._left)
        data = self._file.read(want)
        if len(data) < want:
            raise BadResponse(f"the body ended {self._left - len(data)} bytes short")
        self._left -= len(data)
        self._done = self._left == 0
        return data

    def _read_chunked(self, amt: int | None) -> bytes:
        parts: list[bytes] = []
        while amt is None or amt > 0:
            if self._chunk_left == 0:
                size = self._next_chunk_size()
                if size == 0:
                    self._read_headers()  # trailers, then the blank line
                    self._done = True
                    break
                self._chunk_left = size
            want = self._chunk_left if amt is None else min(amt, self._chunk_left)
            data = self._file.read(want)
            if len(data) < want:
                raise BadResponse("the chunked body ended early")
            parts.append(data)
            self._chunk_left -= want
            if self._chunk_left == 0 and self._file.read(2) != b"\r\n":
                raise BadResponse("a chunk does not end with CRLF")
            if amt is not None:
                amt -= want
                break  # return what one chunk gave; the caller asks again
        return b"".join(parts)

    def _next_chunk_size(self) -> int:
        line = self._file.readline(_MAX_LINE + 1)
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadResponse(f"bad chunk size line {line[:40]!r}") from None

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = self._file.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                raise BadResponse("a header line is too long")
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise BadResponse("the connection closed inside the headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise BadResponse(f"bad header line {line[:40]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raise BadResponse(f"more than {_MAX_HEADERS} headers")


def _parse_status(line: bytes) -> tuple[str, int, str]:
    if not line:
        raise BadResponse("the connection closed before the status line")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BadResponse(f"bad status line {line[:40]!r}")
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""


class Connection:
    """One keep-alive connection to ``host:port``; connects on the first request.

    Read each answer to its end before the next request (the transport does)."""

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        https: bool,
        timeout: float,
        connect: Connect = socket.create_connection,
    ) -> None:
        self.host = host
        self.https = https
        self.port = port or (443 if https else 80)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._file: IO[bytes] | None = None
        self._connect = connect
        default = 443 if https else 80
        name = f"[{host}]" if ":" in host else host
        self._host_header = name if self.port == default else f"{name}:{self.port}"

    def close(self) -> None:
        file, sock = self._file, self.sock
        self._file = self.sock = None
        if file is not None:
            file.close()
        if sock is not None:
            sock.close()

    def _open(self) -> socket.socket:
        sock = self._connect((self.host, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.https:
            import ssl  # only for https agents

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock
        return sock

    def _reader(self) -> IO[bytes]:
        if self._file is None:
            if self.sock is None:
                raise BadResponse("no request was sent")
            self._file = self.sock.makefile("rb")
        return self._file

    def request(
        self,
        method: str,
        target: str,
        body: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a request; a file ``body`` needs a Content-Length header (it is not chunked)."""
        sock = self.sock or self._open()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        given = {k.lower() for k in headers or {}}
        if "accept-encoding" not in given:
            lines.append("Accept-Encoding: identity")
        if "content-length" not in given:
            if isinstance(body, bytes):
                lines.append(f"Content-Length: {len(body)}")
            elif body is None and method in ("POST", "PUT", "PATCH"):
                lines.append("Content-Length: 0")
            elif body is not None:
                raise ValueError("a file body needs a Content-Length header")
        lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if isinstance(body, bytes) and len(body) <= _SEND_CHUNK:
            sock.sendall(head + body)
            return
        sock.sendall(head)
        if isinstance(body, bytes):
            sock.sendall(body)
        elif body is not None:
            while block := body.read(_SEND_CHUNK):
                sock.sendall(block)

    def getresponse(self, method: str = "GET") -> Response:
        """Read the status line and headers of the answer to the last request."""
        return Response(self, method)

    def set_timeout(self, timeout: float) -> None:
        self.timeout = timeout
        if self.sock is not None:
            self.sock.settimeout(timeout)


def ascii_connect(address: tuple[str, int], timeout: float, *args: Any) -> socket.socket:
    """``socket.create_connection`` with an ASCII host name passed as bytes.

    A ``str`` host makes the resolver load the IDNA codec (with ``unicodedata`` and
    ``stringprep``): a tenth of a short command's start, for nothing when the name is
    ASCII, as agent addresses are.
    """
    host, port = address
    if host.isascii():
        # getaddrinfo takes bytes too; typeshed lists only str.
        return socket.create_connection((host.encode(), port), timeout, *args)  # type: ignore[arg-type]
    return socket.create_connection(address, timeout, *args)
