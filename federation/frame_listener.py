"""Frames served to their origin from the blob listener's threads (:mod:`federation.blob_listener`).

Why: the ``/fed/v1`` frame route reads and hashes a frame in worker threads but
encrypts it on the event loop (asyncio's TLS transport), so while an origin
fetched frames back, the remote's loop spent most of its CPU on them. On the
blob listener the connection's own thread reads the checked file, hashes it
again while sending (:meth:`~site_agent.storage.OpenFrame.blocks`: bytes changed
since the check are never sent whole, the connection is cut instead) and
encrypts it in C with the GIL released.

Only the routes' decisions run on the loop, through the same code as the
``/fed/v1`` route (:func:`federation.api.frame_listener_handler`): the peer is
authenticated from its certificate names, it must own the job, and the frame (or
its file) must be recorded and match its hash. ``GET`` of
``/fed/v1/jobs/{id}/frames/{frame}`` and ``.../files/{name}``, as on ``/fed/v1``;
origins learn the port from the ``Blob-Port`` header of a ``/fed/v1`` frame
answer (or of a blob ``HEAD``), and fall back to ``/fed/v1`` on any failure.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from federation.identity import CertificateNames
from site_agent.frame_response import frame_headers
from site_agent.storage import FrameCorruptError, OpenFrame

__all__ = ["FrameHandler", "FrameRequest", "ServedFrame", "frame_request", "send_checked"]

log = logging.getLogger(__name__)

_TARGET = re.compile(r"^/fed/v1/jobs/([^/?#]+)/frames/([^/?#]+)(?:/files/([^?#]+))?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameRequest:
    """A ``GET`` of a frame's file on the listener, as the handler sees it."""

    job_id: str
    frame: str
    """As in the path (the handler checks it is a whole number)."""
    name: str | None
    """Another file of the frame (None: its main file)."""
    names: CertificateNames | None
    remote: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedFrame:
    """The handler's yes: the checked file to send, and what to call once it was sent whole."""

    opened: OpenFrame
    name: str
    sent: Callable[[int], Awaitable[None]]


FrameHandler = Callable[[FrameRequest], Awaitable[ServedFrame]]


def frame_request(target: str, names: CertificateNames | None, remote: str) -> FrameRequest | None:
    """The request ``target`` names, or None when it is not a frame's path."""
    match = _TARGET.match(target)
    if match is None:
        return None
    job_id, frame, name = match.groups()
    return FrameRequest(
        job_id=unquote(job_id),
        frame=unquote(frame),
        name=unquote(name) if name is not None else None,
        names=names,
        remote=remote,
    )


def send_checked(tls: ssl.SSLSocket, served: ServedFrame) -> bool:
    """Send the frame's answer (in the connection's thread); False when the file stopped
    matching its hash part way (the connection must then be closed: the body is short)."""
    opened = served.opened
    lines = ["HTTP/1.1 200 OK", f"Content-Length: {opened.size}"]
    lines += [f"{k}: {v}" for k, v in frame_headers(opened, served.name).items()]
    tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        for block in opened.blocks():
            tls.sendall(block)
    except FrameCorruptError as exc:
        log.error("%s (while sending it)", exc)
        return False
    return True
