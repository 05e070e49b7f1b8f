"""Sending a checked frame over HTTP: the client API's and the federation API's frame routes."""

from __future__ import annotations

import logging
import mimetypes

from aiohttp import web

from .storage import FrameCorruptError, OpenFrame

log = logging.getLogger(__name__)


def cache_headers(sha256: str) -> dict[str, str]:
    """A frame's validators: its hash is its ETag; caches revalidate, since a re-render
    replaces the bytes under the same URL."""
    return {"ETag": f'"{sha256}"', "Cache-Control": "private, no-cache"}


def not_modified(request: web.Request, sha256: str) -> web.Response | None:
    """304 when the client already holds these bytes (checked before reading the file)."""
    if f'"{sha256}"' in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=cache_headers(sha256))
    return None


def frame_headers(frame: OpenFrame, name: str) -> dict[str, str]:
    """The headers a frame's file is served with (both frame routes, and the federation's
    blob listener)."""
    return {
        "Content-Type": _content_type(name),
        "X-Sha256": frame.sha256,
        "X-File-Mode": f"{frame.mode:04o}",
        **cache_headers(frame.sha256),
    }


async def send_frame(
    request: web.Request, frame: OpenFrame, name: str, *, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Stream ``frame`` (opened by ``FrameStorage.open_frame``), a file called ``name``, with
    ``headers`` added; bytes that stop matching its sha256 while being sent are never
    delivered whole: the connection is cut."""
    response = web.StreamResponse(headers={**frame_headers(frame, name), **(headers or {})})
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


_TYPES = {".exr": "image/x-exr", ".hdr": "image/vnd.radiance", ".tga": "image/x-tga"}
"""Image types the platform's table may not know."""


def _content_type(name: str) -> str:
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
