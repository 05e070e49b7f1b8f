"""HTTP/1.1 request heads read, and answers written, by the blob listener's connection
threads (:mod:`federation.blob_listener`): the little of HTTP that the blob protocol
(:mod:`federation.transfer`) and a frame's ``GET`` need, read without ``http.client``'s
email parser, whose CPU per request was as much as a small blob's disk work."""

from __future__ import annotations

import io
import re
import ssl
from collections.abc import Mapping

from aiohttp import web

from federation.transfer import BLOBS_PATH

__all__ = [
    "MAX_HEADERS",
    "MAX_LINE",
    "Refused",
    "blob_target",
    "content_length",
    "parse_head",
    "read_headers",
    "send_response",
]

MAX_LINE = 8192
"""The longest request or header line read."""
MAX_HEADERS = 100
"""The most header lines a request may have."""
_TARGET = re.compile(rf"^{re.escape(BLOBS_PATH)}/([^/?#]+)$")


class Refused(Exception):
    """A request the listener does not serve: answered with ``status`` and closed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def parse_head(line: bytes, reader: io.BufferedReader) -> tuple[str, str, dict[str, str]]:
    """The request's method, target and headers."""
    if len(line) > MAX_LINE:
        raise Refused(400, "bad_request", "request line too long")
    try:
        method, target, version = line.decode("ascii").split()
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "bad_request", "malformed request line") from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise Refused(400, "bad_request", f"{version!r} is not HTTP/1.1")
    return method, target, read_headers(reader)


def read_headers(reader: io.BufferedReader) -> dict[str, str]:
    """The header fields up to the blank line, names title-cased (the last of repeated
    ones)."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise Refused(400, "bad_request", "header line too long")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise Refused(400, "bad_request", f"malformed header line {line[:80]!r}")
        headers[name.title()] = value.strip()
    raise Refused(400, "bad_request", f"more than {MAX_HEADERS} header lines")


def blob_target(method: str, target: str) -> str:
    """The blob a ``HEAD`` or ``PATCH`` names."""
    match = _TARGET.match(target)
    if match is None:
        raise Refused(404, "not_found", f"this listener serves only {BLOBS_PATH}/{{sha256}}")
    if method not in ("HEAD", "PATCH"):
        raise Refused(405, "method_not_allowed", "this listener serves only HEAD and PATCH")
    return match.group(1)


def content_length(method: str, headers: Mapping[str, str]) -> int:
    if "Transfer-Encoding" in headers:
        raise Refused(411, "length_required", "send the body with a Content-Length")
    value = headers.get("Content-Length", "0" if method == "HEAD" else "")
    if not value.isdigit():
        raise Refused(411, "length_required", "send the body with a Content-Length")
    return int(value)


def send_response(tls: ssl.SSLSocket, response: web.Response, *, keep: bool) -> None:
    body = response.body if isinstance(response.body, bytes) else b""
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "connection"):
            lines.append(f"{name}: {value}")
    if response.status != 204:
        lines.append(f"Content-Length: {len(body)}")
    if not keep:
        lines.append("Connection: close")
    tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
