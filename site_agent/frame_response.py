"""Sending a checked frame over HTTP: the client API's and the federation API's frame routes."""

from __future__ import annotations

import logging
import mimetypes

from aiohttp import web

from .storage import FrameCorruptError, OpenFrame

log = logging.getLogger(__name__)


async def send_frame(request: web.Request, frame: OpenFrame, name: str) -> web.StreamResponse:
    """Stream ``frame`` (opened by ``FrameStorage.open_frame``); bytes that stop matching its
    sha256 while being sent are never delivered whole: the connection is cut."""
    response = web.StreamResponse(
        headers={
            "Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream",
            "X-Sha256": frame.sha256,
            "X-File-Mode": f"{frame.mode:04o}",
        }
    )
    response.content_length = frame.size
    await response.prepare(request)
    try:
        async for block in frame.chunks():
            await response.write(block)
    except FrameCorruptError as exc:
        # Changed in place after the check: the body stays one block short and the
        # connection is cut, so the client sees a broken download, never the bad bytes.
        log.error("%s (while sending it)", exc)
        response.force_close()
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
