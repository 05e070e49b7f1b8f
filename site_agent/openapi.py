"""The OpenAPI 3.1 document served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_ANY_OBJECT = {"type": "object"}
_SHA = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_STR = {"schema": {"type": "string", "maxLength": 200}}


def _op(
    summary: str,
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    ok: int = 200,
    content: str = "application/json",
    errors: tuple[int, ...] = (400, 404),
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(ok): {
            "description": "success",
            "content": {
                content: {
                    "schema": _ANY_OBJECT
                    if content == "application/json"
                    else {"type": "string", "format": "binary"}
                }
            },
        },
    }
    for status in errors:
        responses[str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": _ERROR}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses, "parameters": params or []}
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query_int(name: str, minimum: int, *, required: bool = False) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": minimum}
    return {"name": name, "in": "query", "required": required, "schema": schema}


_TASK_LOG = {
    "type": "object",
    "description": (
        "Part of one task attempt's log. Each attempt keeps its first 256 KiB and last "
        "768 KiB of output; offsets count UTF-8 bytes of the whole output. Pass next_offset "
        "back as offset to read only what is new; a cut shows as a '[N bytes cut]' line."
    ),
    "required": [
        "job",
        "task",
        "frames",
        "attempt",
        "attempts",
        "server",
        "state",
        "error",
        "offset",
        "next_offset",
        "complete",
        "truncated_bytes",
        "text",
    ],
    "properties": {
        "job": {"type": "string"},
        "task": {"type": "integer"},
        "frames": {"type": "string", "examples": ["1-4"]},
        "attempt": {"type": "integer"},
        "attempts": {"type": "array", "items": {"type": "integer"}},
        "server": {"type": ["string", "null"]},
        "state": {
            "type": "string",
            "description": "dispatched, running, done, failed, or requeued (ended without a result)",
        },
        "error": {"type": "string", "description": "why the attempt failed ('' otherwise)"},
        "offset": {"type": "integer"},
        "next_offset": {"type": "integer"},
        "complete": {"type": "boolean", "description": "the attempt ended: no more text comes"},
        "truncated_bytes": {"type": "integer"},
        "text": {"type": "string"},
        "site": {
            "type": "string",
            "description": "only for a job forwarded to a peer: the site that ran the task",
        },
    },
}


def _job_op(job_id: dict[str, Any]) -> dict[str, Any]:
    op = _op(
        "A job with its first tasks (tasks_page says how many there are)",
        params=[
            job_id,
            {
                "name": "tasks",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": 1000},
            },
            {
                "name": "wait",
                "in": "query",
                "schema": {"type": "number", "minimum": 0, "maximum": 30},
            },
        ],
    )
    op["description"] = (
        "With wait=S (at most 30) the answer comes once the job has ended (done, failed or "
        "cancelled), or after S seconds as the job is then: a client waiting for a job asks "
        "again at once instead of polling."
    )
    return op


def _log_op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    op = _op(
        summary,
        params=[
            *params,
            _query_int("attempt", 1),
            _query_int("offset", 0),
            {
                "name": "wait",
                "in": "query",
                "schema": {"type": "number", "minimum": 0, "maximum": 30},
            },
        ],
    )
    op["description"] = (
        "404 codes: job_not_found, frame_not_found, task_not_found, attempt_not_found, "
        "log_not_found (the task has not run here yet). With wait=S (at most 30) the answer "
        "comes once text beyond offset arrives or the attempt ends, or after S seconds. "
        "A job forwarded to a peer site is read there (the answer's site names it); "
        "503 peer_unavailable while that site cannot be reached."
    )
    op["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/TaskLog"
    }
    return op


_AFTER_PROPERTIES: dict[str, Any] = {
    "after": {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 100,
        "description": "ids of jobs this job waits for: it starts once they are done, and "
        "fails (or is cancelled) with them",
    },
    "after_any": {
        "type": "boolean",
        "description": "with after: start once those jobs end, however they end",
    },
    "after_frames": {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 100,
        "description": "ids of jobs whose frame N each frame N of this job waits for "
        "(e.g. comp after render); it fails (or is cancelled) with them",
    },
}
_AFTER = {
    "type": "object",
    "additionalProperties": False,
    "properties": _AFTER_PROPERTIES,
}

_SUBMIT = {
    "type": "object",
    "required": ["scene", "manifest", "frames", "profile"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "scene": {"type": "string"},
        "manifest": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["path", "sha256", "size"],
                "additionalProperties": False,
                "properties": {
                    "path": {"type": "string"},
                    "sha256": _SHA,
                    "size": {"type": "integer", "minimum": 0},
                },
            },
        },
        "frames": {"type": "string", "examples": ["1-240", "1-240x10", "1,5,10-20"]},
        "chunk_size": {"type": "integer", "minimum": 1, "maximum": 100000},
        "priority": {"type": "integer", "minimum": 0, "maximum": 100},
        "profile": {
            "type": "object",
            "required": ["package"],
            "properties": {
                "package": {"type": "string"},
                "version": {"type": "string"},
                "min_memory_mb": {"type": "integer", "minimum": 0},
                "min_cores": {"type": "integer", "minimum": 0},
                "gpu": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "max_servers": {"type": "integer", "minimum": 0},
                "task_timeout_s": {"type": "number"},
                "max_attempts": {"type": "integer", "minimum": 1},
                "engine": {
                    "type": "string",
                    "description": "override the scene's engine (blender: cycles, eevee, "
                    "workbench); empty keeps the scene's",
                },
                "features": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "package features a server must report, e.g. blender:oidn "
                    "for a scene that denoises",
                },
            },
        },
        "settings": {
            "type": "object",
            "description": "overrides of the scene's own settings: width and height together, "
            "or neither to render at the scene's own resolution; samples and denoise (false "
            "only) for blender scenes",
            "additionalProperties": False,
            "properties": {
                "width": {"type": "integer", "minimum": 1, "maximum": 16384},
                "height": {"type": "integer", "minimum": 1, "maximum": 16384},
                "samples": {"type": "integer", "minimum": 1, "maximum": 16777216},
                "denoise": {"type": "boolean", "enum": [False]},
            },
        },
        "site": {"type": ["string", "null"]},
        "forward": {"type": "boolean"},
        "split": {
            "type": "boolean",
            "description": "render here and send parts of the frames to peers with free capacity",
        },
        "owner": {"type": "string"},
        "queue_anyway": {
            "type": "boolean",
            "description": "queue even if no known server or peer can run the profile (else 409)",
        },
        **_AFTER_PROPERTIES,
    },
}
_PAGE = [
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {
        "name": "state",
        "in": "query",
        "schema": {"type": "string", "examples": ["failed", "waiting,running"]},
    },
]
_RETRY_FRAMES = {
    "type": "object",
    "required": ["frames"],
    "additionalProperties": False,
    "properties": {"frames": {"type": "string", "examples": ["7", "1-3,9"]}},
}


_JOB_SORTS = ["created", "updated", "priority", "name", "state", "frames"]
_JOB_LIST = [
    {"name": "state", "in": "query", "schema": {"type": "string", "examples": ["queued,running"]}},
    {"name": "owner", "in": "query", "schema": {"type": "string"}},
    {"name": "q", "in": "query", "description": "part of the name or id, any case", **_STR},
    {"name": "package", "in": "query", "schema": {"type": "string", "examples": ["povray"]}},
    {
        "name": "placement",
        "in": "query",
        "description": "local, forwarded, accepted, or a peer's name",
        **_STR,
    },
    {
        "name": "sort",
        "in": "query",
        "schema": {"type": "string", "enum": _JOB_SORTS + [f"-{s}" for s in _JOB_SORTS]},
    },
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
]


def _monitor_paths() -> dict[str, Any]:
    """The routes the web monitor adds (site_agent/monitor_api.py)."""
    job_id = _path_param("job_id")
    return {
        "/api/v1/jobs/{job_id}/grid": {
            "get": _op(
                "Every frame's state, one character each (w, s, r, d, f), in task order, "
                "with per-task columns (size, attempt, server, started, finished)",
                params=[job_id],
            )
        },
        "/api/v1/jobs/{job_id}/priority": {
            "post": _op(
                "Change an unfinished job's priority (0-100, higher first)",
                params=[job_id],
                body={
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["priority"],
                            "additionalProperties": False,
                            "properties": {
                                "priority": {"type": "integer", "minimum": 0, "maximum": 100}
                            },
                        }
                    }
                },
                errors=(400, 404, 409),
            )
        },
        "/api/v1/events": {
            "get": _op(
                "Server-Sent Events: hello on connect, then change {jobs, servers, all} and "
                "a tick every 15 s",
                content="text/event-stream",
                errors=(401, 503),
            )
        },
    }


def _control() -> dict[str, Any]:
    op = _op(
        "cancel, pause, resume or retry; retry with {frames} renders those frames again",
        params=[
            _path_param("job_id"),
            _path_param(
                "action", {"type": "string", "enum": ["cancel", "pause", "resume", "retry"]}
            ),
        ],
        body={"application/json": {"schema": _RETRY_FRAMES}},
        errors=(400, 404, 409),
    )
    op["requestBody"]["required"] = False
    return op


def openapi_document() -> dict[str, Any]:
    job_id = {
        **_path_param("job_id"),
        "description": "the job's id; for a job accepted from a peer, also the origin's job id",
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spillway site agent", "version": "1"},
        "paths": {
            "/api/v1/health": {"get": _op("Site name and version", errors=())},
            "/api/v1/blobs/check": {
                "post": _op(
                    "Which asset blobs are missing",
                    body={
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["sha256"],
                                "properties": {"sha256": {"type": "array", "items": _SHA}},
                            }
                        }
                    },
                )
            },
            "/api/v1/blobs/{sha256}": {
                "put": _op(
                    "Upload an asset blob (hash-verified)",
                    params=[_path_param("sha256", _SHA)],
                    body={
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                    ok=201,
                    errors=(400, 413, 422),
                ),
                "get": _op(
                    "Download an asset blob",
                    params=[_path_param("sha256", _SHA)],
                    content="application/octet-stream",
                ),
            },
            "/api/v1/jobs": {
                "get": _op(
                    "One page of jobs (newest first by default) with progress and ETA; "
                    "page.total counts every match",
                    params=_JOB_LIST,
                ),
                "post": _op(
                    "Submit a job",
                    body={"application/json": {"schema": _SUBMIT}},
                    ok=201,
                    errors=(400, 409, 422),
                ),
            },
            "/api/v1/jobs/{job_id}": {"get": _job_op(job_id)},
            "/api/v1/jobs/{job_id}/tasks": {
                "get": _op("One page of a job's tasks with their frames", params=[job_id, *_PAGE])
            },
            "/api/v1/jobs/{job_id}/after": {
                "post": _op(
                    "A queued or paused job also waits for these jobs (409 for a cycle)",
                    params=[job_id],
                    body={"application/json": {"schema": _AFTER}},
                    errors=(400, 404, 409),
                )
            },
            "/api/v1/jobs/{job_id}/{action}": {"post": _control()},
            "/api/v1/jobs/{job_id}/frames": {
                "get": _op("Rendered frames of a job", params=[job_id])
            },
            "/api/v1/jobs/{job_id}/frames/{frame}": {
                "get": _op(
                    "One rendered frame",
                    params=[job_id, _path_param("frame", {"type": "integer"})],
                    content="image/png",
                    errors=(400, 404, 409),
                )
            },
            "/api/v1/jobs/{job_id}/log": {
                "get": _log_op(
                    "The log of the task holding ?frame=N (its latest attempt unless ?attempt=K)",
                    [job_id, _query_int("frame", 0, required=True)],
                )
            },
            "/api/v1/jobs/{job_id}/tasks/{index}/log": {
                "get": _log_op(
                    "The log of task ?index (its latest attempt unless ?attempt=K)",
                    [job_id, _path_param("index", {"type": "integer", "minimum": 0})],
                )
            },
            "/api/v1/jobs/{job_id}/frames/{frame}/files": {
                "get": _op(
                    "Every file a frame has (main first, other outputs, preview) with URLs",
                    params=[job_id, _path_param("frame", {"type": "integer"})],
                    errors=(400, 404),
                )
            },
            "/api/v1/jobs/{job_id}/frames/{frame}/files/{name}": {
                "get": _op(
                    "One file of a frame by its name in the job folder (ETag: its sha256)",
                    params=[
                        job_id,
                        _path_param("frame", {"type": "integer"}),
                        _path_param("name"),
                    ],
                    content="application/octet-stream",
                    errors=(400, 404, 409),
                )
            },
            "/api/v1/jobs/{job_id}/frames/{frame}/preview": {
                "get": _op(
                    "The frame's PNG preview (longest side 256 px); ETag is its sha256, "
                    "If-None-Match answers 304; Cache-Control: private, no-cache",
                    params=[job_id, _path_param("frame", {"type": "integer"})],
                    content="image/png",
                    errors=(400, 404, 409),
                )
            },
            "/api/v1/servers": {
                "get": _op(
                    "Render servers; with ?job= why each can or cannot run it",
                    params=[{"name": "job", "in": "query", "schema": {"type": "string"}}],
                )
            },
            "/api/v1/servers/{server_id}": {
                "delete": _op(
                    "forget an offline render server (by name or id); 409 while it is "
                    "connected or holds tasks",
                    params=[_path_param("server_id")],
                    errors=(404, 409),
                )
            },
            "/api/v1/servers/{server_id}/{action}": {
                "post": _op(
                    "enable or disable a render server",
                    params=[
                        _path_param("server_id"),
                        _path_param("action", {"type": "string", "enum": ["enable", "disable"]}),
                    ],
                )
            },
            "/api/v1/webhooks": {
                "get": _op("Webhook endpoints and their recent deliveries", errors=())
            },
            "/api/v1/peers": {
                "get": _op("Federation peers and their advertised capacity", errors=())
            },
            "/api/v1/usage": {
                "get": _op(
                    "Accounting: core-seconds, frames, failed attempts, bytes in/out per peer or job",
                    params=[
                        {
                            "name": "group",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["peer", "job"]},
                        },
                        {"name": "peer", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "since",
                            "in": "query",
                            "schema": {"type": "string", "examples": ["2026-11-30", "1764460800"]},
                        },
                        {"name": "until", "in": "query", "schema": {"type": "string"}},
                    ],
                    errors=(400,),
                )
            },
            **_monitor_paths(),
        },
        "components": {
            "schemas": {
                "TaskLog": _TASK_LOG,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
            }
        },
    }
