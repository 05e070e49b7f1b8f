"""The Spillway client: talk to a site agent, submit scenes, follow and fetch jobs.

Imports nothing of the server side (only :mod:`spillway.core` and the package
catalog :mod:`spillway.packages`), so it runs where only the client is installed.
:class:`Client` is synchronous over the standard library; :class:`AsyncClient`
(asyncio, needs aiohttp: ``pip install 'spillway[async]'``) is loaded on first use.
Both return the typed records of :mod:`spillway.client.records` and raise the
exceptions of :mod:`spillway.client.errors`. See docs/client.md.

    from spillway.client import Client, SubmitOptions

    with Client("http://127.0.0.1:8700") as farm:
        submitted = farm.submit_scene(Path("shot/scene.json"),
                                      SubmitOptions(package="builtin", frames="1-24"))
        job = farm.wait(submitted.job.id)
        print(job.state, job.progress.frames_done)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spillway.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    ConnectionLost,
    Forbidden,
    HashMismatch,
    NotFound,
    SpillwayClientError,
    SpillwayError,
    SubmissionError,
    Timeout,
    TransportError,
    Unauthorized,
    Unavailable,
    Unprocessable,
    Unreachable,
)

if TYPE_CHECKING:
    from spillway.client.aio import AsyncClient
    from spillway.client.api import CONTROL_ACTIONS, Call
    from spillway.client.async_submit import (
        SubmitResult,
        submit_scene,
        upload_missing,
        wait_for_job,
    )
    from spillway.client.http import AgentClient
    from spillway.client.records import (
        Frame,
        Health,
        Job,
        JobDetail,
        JobState,
        Peer,
        Server,
        Task,
        TaskState,
    )
    from spillway.client.submission import (
        LocalFile,
        Manifest,
        SubmitOptions,
        build_manifest,
    )
    from spillway.client.sync import Client
    from spillway.client.sync_submit import Submitted

__all__ = [
    "CONTROL_ACTIONS",
    "AgentClient",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Call",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionLost",
    "Forbidden",
    "Frame",
    "HashMismatch",
    "Health",
    "Job",
    "JobDetail",
    "JobState",
    "LocalFile",
    "Manifest",
    "NotFound",
    "Peer",
    "Server",
    "SpillwayClientError",
    "SpillwayError",
    "SubmissionError",
    "SubmitOptions",
    "SubmitResult",
    "Submitted",
    "Task",
    "TaskState",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "Unreachable",
    "build_manifest",
    "submit_scene",
    "upload_missing",
    "wait_for_job",
]

# Loaded when first named, so that a command pays only for what it uses: the records
# and the sync client (dataclasses, and with them inspect), the asyncio side (aiohttp),
# and submission (scanners, hashing). `spillway --help` loads none of them.
_LAZY = {
    "CONTROL_ACTIONS": "spillway.client.api",
    "Call": "spillway.client.api",
    "Client": "spillway.client.sync",
    **{
        name: "spillway.client.records"
        for name in (
            "Frame",
            "Health",
            "Job",
            "JobDetail",
            "JobState",
            "Peer",
            "Server",
            "Task",
            "TaskState",
        )
    },
    "AsyncClient": "spillway.client.aio",
    "AgentClient": "spillway.client.http",
    "Submitted": "spillway.client.sync_submit",
    **{
        name: "spillway.client.submission"
        for name in ("LocalFile", "Manifest", "SubmitOptions", "build_manifest")
    },
    **{
        name: "spillway.client.async_submit"
        for name in ("SubmitResult", "submit_scene", "upload_missing", "wait_for_job")
    },
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spillway.client' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
