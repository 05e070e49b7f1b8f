"""Submit a saved .blend and follow its job on a thread of its own, so Blender stays
responsive: hashing, uploads and polls never run on Blender's main thread.

The thread only talks to the agent and puts :class:`~spillway_blender.request.Status`
lines on a queue; Blender's main thread (a ``bpy.app.timers`` step) takes them
off and shows them, since ``bpy`` may only be touched there.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spillway.client.errors import SpillwayError
from spillway.client.records import JobDetail

from .request import Status, explain, status_of

if TYPE_CHECKING:
    from spillway.client import Client
    from spillway.client.submission import LocalFile, SubmitOptions
    from spillway.packages import Scanner

__all__ = ["CALL_TIMEOUT_S", "Submission", "Target"]

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 15.0
"""Each request's limit: a dead agent shows up in the panel within seconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where to submit: the add-on's preferences."""

    url: str
    token: str = ""


class _Stopped(Exception):
    """Following was stopped from Blender (a new submission, the add-on disabled)."""


class Submission:
    """One .blend's submission and job, followed until the job ends or :meth:`stop`."""

    def __init__(
        self,
        target: Target,
        scene: Path,
        options: SubmitOptions,
        scanner: Scanner,
        *,
        poll_s: float = 1.0,
        connect: Callable[[Target], Client] | None = None,
    ) -> None:
        self.updates: queue.Queue[Status] = queue.Queue()
        # The first news that settles the submission: the job created, or why not.
        self.settled = threading.Event()
        self.outcome: Status | None = None
        self._target = target
        self._scene = scene
        self._options = options
        self._scanner = scanner
        self._poll_s = poll_s
        self._connect = connect or _connect
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"spillway-submit-{scene.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop following (the job carries on at the agent)."""
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def _put(self, status: Status) -> None:
        if not self.settled.is_set() and (status.job_id or status.finished):
            self.outcome = status
            self.settled.set()
        self.updates.put(status)

    def _run(self) -> None:
        try:
            with self._connect(self._target) as client:
                job_id = self._submit(client)
                client.wait(job_id, poll_s=self._poll_s, on_update=self._polled)
        except _Stopped:
            self._put(Status(text="stopped following; the job carries on", finished=True))
        except SpillwayError as err:
            self._put(Status(error=explain(err), text="submission failed", finished=True))
        except Exception as err:  # a thread must not die silently: say so in the panel
            log.exception("submitting %s failed", self._scene)
            self._put(Status(error=f"unexpected error: {err}", finished=True))

    def _submit(self, client: Client) -> str:
        def uploading(entry: LocalFile) -> None:
            if self._stop.is_set():
                raise _Stopped
            self._put(Status(text=f"uploading {entry.path}"))

        self._put(Status(text=f"submitting {self._scene.name} to {self._target.url}"))
        submitted = client.submit_scene(
            self._scene, self._options, scanner=self._scanner, on_upload=uploading
        )
        job = submitted.job
        files = len(submitted.manifest.entries)
        self._put(
            Status(
                job_id=job.id,
                state=str(job.state),
                text=f"submitted {files} files ({submitted.uploaded_files} uploaded)",
            )
        )
        return job.id

    def _polled(self, detail: JobDetail) -> None:
        if self._stop.is_set():
            raise _Stopped
        self._put(status_of(detail))


def _connect(target: Target) -> Client:
    from spillway.client import Client

    return Client(target.url, token=target.token or None, timeout_s=CALL_TIMEOUT_S)
