"""What the Spillway panel submits, as plain values: no ``bpy`` here, so it is tested
outside Blender.

The panel's settings become the client's :class:`~spillway.client.submission.SubmitOptions`;
a job's detail becomes the few lines the panel shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from spillway.client.errors import (
    Forbidden,
    SpillwayError,
    SubmissionError,
    Unauthorized,
    Unreachable,
)
from spillway.client.records import JobDetail
from spillway.client.submission import SubmitOptions
from spillway.core.frames import FrameSpecError, parse_frames

__all__ = [
    "FINISHED",
    "PanelSettings",
    "Status",
    "PREFERENCES",
    "explain",
    "frame_spec",
    "requirement",
    "status_of",
    "submit_options",
]

FINISHED = frozenset({"done", "failed", "cancelled"})
PREFERENCES = "Edit > Preferences > Add-ons > Spillway"
# The client's hints name the command line's options; in Blender the preferences hold them.
_CLI_HINTS = ("; is `spillway agent` running?", "; pass --token or set SPILLWAY_TOKEN")


@dataclass(frozen=True, slots=True, kw_only=True)
class PanelSettings:
    """The panel's values for one submission."""

    job_name: str  # "" = the .blend's name
    frame_start: int
    frame_end: int
    frame_step: int = 1
    chunk_size: int = 1
    priority: int = 50
    site: str = ""  # "" = the agent places the job (local first)
    forward: bool = True  # False: never forward to a peer site
    # (major, minor) of the submitting Blender to require the same on the farm; None = any.
    blender_version: tuple[int, int] | None = None


def frame_spec(start: int, end: int, step: int = 1) -> str:
    """``1-24``, ``1-24x2`` or ``5``; SubmissionError for a range the farm cannot render."""
    if end < start:
        raise SubmissionError(
            f"the frame range ends ({end}) before it starts ({start}); set End at or after Start"
        )
    if step < 1:
        raise SubmissionError(f"the frame step must be 1 or more, got {step}")
    spec = str(start) if start == end else f"{start}-{end}"
    if step > 1 and start != end:
        spec += f"x{step}"
    try:
        parse_frames(spec)
    except FrameSpecError as err:
        raise SubmissionError(f"frames {spec}: {err}") from None
    return spec


def requirement(version: tuple[int, int] | None) -> str:
    """The package requirement: ``blender``, or ``blender==3.4.*`` to match a version."""
    if version is None:
        return "blender"
    major, minor = version
    return f"blender=={major}.{minor}.*"


def submit_options(settings: PanelSettings) -> SubmitOptions:
    """The job the panel asks for; the .blend's own render settings are not overridden."""
    if settings.chunk_size < 1:
        raise SubmissionError(f"the chunk size must be 1 or more, got {settings.chunk_size}")
    if not 0 <= settings.priority <= 100:
        raise SubmissionError(f"the priority must be 0 to 100, got {settings.priority}")
    site = settings.site.strip()
    if site and not settings.forward:
        raise SubmissionError(
            f"a target site ({site}) forwards the job there; clear the site or untick No Forward"
        )
    return SubmitOptions(
        package=requirement(settings.blender_version),
        frames=frame_spec(settings.frame_start, settings.frame_end, settings.frame_step),
        chunk_size=settings.chunk_size,
        priority=settings.priority,
        name=settings.job_name.strip(),
        site=site or None,
        forward=settings.forward,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """One line of news for the panel about the submission in flight."""

    job_id: str = ""
    state: str = ""  # the job's state once it exists
    text: str = ""  # what to show, e.g. "running: 12/24 frames"
    error: str = ""  # set when the submission or the job failed
    finished: bool = False  # nothing more will come

    @property
    def failed(self) -> bool:
        return bool(self.error)


def status_of(detail: JobDetail) -> Status:
    """The panel's line for a job: its state, frames done and why it waits or failed."""
    job = detail.job
    state = str(job.state)
    text = f"{state}: {job.progress.frames_done}/{job.frame_count} frames"
    if job.placement not in ("", "local"):
        text += f" (at {job.placement})"
    if state == "queued" and job.why_waiting:
        text += f"; {job.why_waiting}"
    error = ""
    if state in ("failed", "cancelled"):
        error = job.error or f"the job was {state}"
    return Status(job_id=job.id, state=state, text=text, error=error, finished=state in FINISHED)


def explain(err: SpillwayError) -> str:
    """The client's error for the panel: what happened and where in Blender to fix it."""
    message = str(err)
    for hint in _CLI_HINTS:
        message = message.split(hint)[0]
    if isinstance(err, Unreachable):
        return f"{message}; check the agent URL in {PREFERENCES} and that the agent is running"
    if isinstance(err, Unauthorized | Forbidden):
        return f"{message}; set the agent's client token in {PREFERENCES}"
    return message
