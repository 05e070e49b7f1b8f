"""The client API's frame files: every file a frame has, each served only after its bytes
were checked against the recorded sha256, and its preview with caching headers.

``GET /api/v1/jobs/{job}/frames/{frame}`` (in :mod:`site_agent.api`) serves the frame's
main file; the routes here list and serve all of them (``.../files``,
``.../files/{name}``) and the preview (``.../preview``), which answers 304 to a
matching ``If-None-Match`` without reading the file: its ETag is its sha256.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from spillway.core.records import FileKind

from .appkeys import SITE
from .auth import check_client
from .errors import BadRequestError, NotFoundError
from .frame_response import send_frame
from .site import SiteAgent
from .storage import FrameCorruptError, FrameMissingError
from .store.records import FrameRecord, JobRecord

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

PREVIEW_CACHE_CONTROL = "private, no-cache"
"""Browsers keep previews but ask again each time: a re-rendered frame changes its preview,
and asking costs a 304 (the ETag is the sha256 on record), not the file."""


def frame_files_json(job_id: str, record: FrameRecord) -> dict[str, Any]:
    """A frame as the frame list shows it: its main file, every file with its URL, its preview."""
    base = f"/api/v1/jobs/{job_id}/frames/{record.frame}"
    files = [
        {"name": record.name, "kind": FileKind.MAIN.value, "sha256": record.sha256,
         "size": record.size, "url": f"{base}/files/{record.name}"},
        *(
            {"name": f.name, "kind": f.kind.value, "sha256": f.sha256, "size": f.size,
             "url": f"{base}/files/{f.name}"}
            for f in record.files
        ),
    ]  # fmt: skip
    return {
        "frame": record.frame,
        "name": record.name,
        "sha256": record.sha256,
        "size": record.size,
        "rendered_at": record.rendered_at,
        "url": base,
        "files": files,
        "preview_url": f"{base}/preview" if record.preview else None,
    }


async def _frame(request: web.Request) -> tuple[SiteAgent, JobRecord, FrameRecord]:
    site = request.app[SITE]
    check_client(request, site.config.auth)
    job = await site.jobs.get(request.match_info["job_id"])
    try:
        number = int(request.match_info["frame"])
    except ValueError:
        raise BadRequestError("the frame must be a whole number") from None
    record = await site.store.get_frame(job.id, number)
    if record is None:
        raise NotFoundError(f"frame {number} of job {job.id} is not rendered yet")
    return site, job, record


async def serve_file(
    request: web.Request,
    site: SiteAgent,
    job: JobRecord,
    frame: int,
    name: str,
    sha256: str,
    *,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Send a recorded file of a frame after checking its bytes (404 ``frame_missing``,
    409 ``frame_corrupt``)."""
    try:
        opened = await site.storage.open_frame(
            site.storage.job_dir(job.name, job.id), name, job_id=job.id, frame=frame, sha256=sha256
        )
    except FrameMissingError as exc:
        log.warning("%s", exc)
        raise
    except FrameCorruptError as exc:
        log.error("%s", exc)
        raise
    try:
        return await send_frame(request, opened, name, headers=headers)
    finally:
        opened.close()


@routes.get("/api/v1/jobs/{job_id}/frames/{frame}/files")
async def list_frame_files(request: web.Request) -> web.Response:
    """Every file of a rendered frame (main first), with URLs."""
    _, job, record = await _frame(request)
    return web.json_response(frame_files_json(job.id, record))


@routes.get("/api/v1/jobs/{job_id}/frames/{frame}/files/{name:.+}")
async def get_frame_file(request: web.Request) -> web.StreamResponse:
    """One file of a rendered frame by its name in the job folder."""
    site, job, record = await _frame(request)
    name = request.match_info["name"]
    if name == record.name:
        sha256 = record.sha256
    else:
        match = next((f for f in record.files if f.name == name), None)
        if match is None:
            raise NotFoundError(
                f"frame {record.frame} of job {job.id} has no file {name!r}; "
                f"list them at /api/v1/jobs/{job.id}/frames/{record.frame}/files"
            )
        sha256 = match.sha256
    etag = f'"{sha256}"'
    return await serve_file(request, site, job, record.frame, name, sha256, headers={"ETag": etag})


@routes.get("/api/v1/jobs/{job_id}/frames/{frame}/preview")
async def get_preview(request: web.Request) -> web.StreamResponse:
    """The frame's small PNG preview (made by the render server); 404 when it has none."""
    site, job, record = await _frame(request)
    preview = record.preview
    if preview is None:
        raise NotFoundError(f"frame {record.frame} of job {job.id} has no preview")
    headers = {"ETag": f'"{preview.sha256}"', "Cache-Control": PREVIEW_CACHE_CONTROL}
    if _etag_matches(request, preview.sha256):
        return web.Response(status=304, headers=headers)
    return await serve_file(
        request, site, job, record.frame, preview.name, preview.sha256, headers=headers
    )


def _etag_matches(request: web.Request, sha256: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return f'"{sha256}"' in tags or "*" in tags
