"""The Spillway client: talk to a site agent over HTTP, submit scenes, format what it says.

Imports nothing of the server side (only :mod:`spillway.core` and the package
catalog :mod:`spillway.packages`), so it runs where only the client is installed.

    async with AgentClient("http://127.0.0.1:8700", token=None) as agent:
        result = await submit_scene(agent, Path("shot/scene.json"),
                                    SubmitOptions(package="builtin", frames="1-24"))
        job = await wait_for_job(agent, result.job["id"])
"""

from spillway.client.http import CONTROL_ACTIONS, AgentClient, ClientError, SpillwayClientError
from spillway.client.submission import (
    LocalFile,
    Manifest,
    SubmissionError,
    SubmitOptions,
    SubmitResult,
    build_manifest,
    submit_scene,
    upload_missing,
    wait_for_job,
)

__all__ = [
    "CONTROL_ACTIONS",
    "AgentClient",
    "ClientError",
    "Manifest",
    "LocalFile",
    "SpillwayClientError",
    "SubmissionError",
    "SubmitOptions",
    "SubmitResult",
    "build_manifest",
    "submit_scene",
    "upload_missing",
    "wait_for_job",
]
