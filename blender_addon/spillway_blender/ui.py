"""The add-on's Blender side: preferences, the Render > Spillway panel, the submit operator.

Only this module touches ``bpy``.  The operator checks and reads the open file
on Blender's main thread (fast: no hashing, no network), then hands the upload,
the job's creation and the polling to a :class:`~spillway_blender.follow.Submission`
thread; a ``bpy.app.timers`` step moves its news into the panel.
"""

# No `from __future__ import annotations`: Blender reads the properties from the classes'
# annotations, which must be the property objects, not strings.
import logging
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, IntProperty, PointerProperty, StringProperty

from spillway.client.errors import SpillwayError, SubmissionError

from .follow import Submission, Target
from .request import PREFERENCES, PanelSettings, Status, explain, submit_options
from .scan import inspect_open_file

__all__ = ["register", "unregister", "wait"]

log = logging.getLogger(__name__)

ADDON = __package__ or "spillway_blender"
TIMER_S = 0.5


@dataclass
class _Following:
    """The submission the panel shows.  Blender's operators and timers are stateless
    functions, so the one submission in flight lives here, at module level."""

    submission: Submission | None = None


_following = _Following()


class SpillwayPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    agent_url: StringProperty(  # type: ignore[valid-type]
        name="Agent URL",
        description="The site agent to submit to, e.g. http://farm.example:8700",
        default="http://127.0.0.1:8700",
    )
    token: StringProperty(  # type: ignore[valid-type]
        name="Token",
        description="The agent's client token (empty when the agent needs none)",
        subtype="PASSWORD",
    )

    def draw(self, context: Any) -> None:
        self.layout.prop(self, "agent_url")
        self.layout.prop(self, "token")


def _copy_scene_frames(settings: Any, context: Any) -> None:
    """Unticking 'Scene Frame Range' starts the custom range from the scene's."""
    if not settings.use_scene_frames:
        scene = context.scene
        settings.frame_start, settings.frame_end = scene.frame_start, scene.frame_end
        settings.frame_step = scene.frame_step


class SpillwaySceneSettings(bpy.types.PropertyGroup):
    """What to submit; saved with the scene."""

    use_scene_frames: BoolProperty(  # type: ignore[valid-type]
        name="Scene Frame Range",
        description="Render the scene's frame range and step (Output properties)",
        default=True,
        update=_copy_scene_frames,
    )
    frame_start: IntProperty(name="Start", default=1)  # type: ignore[valid-type]
    frame_end: IntProperty(name="End", default=250)  # type: ignore[valid-type]
    frame_step: IntProperty(name="Step", default=1, min=1)  # type: ignore[valid-type]
    chunk_size: IntProperty(  # type: ignore[valid-type]
        name="Chunk", description="Frames per task (one Blender start)", default=1, min=1
    )
    priority: IntProperty(  # type: ignore[valid-type]
        name="Priority", description="Higher runs first", default=50, min=0, max=100
    )
    site: StringProperty(  # type: ignore[valid-type]
        name="Site", description="Render at this peer site (empty: the farm chooses)"
    )
    no_forward: BoolProperty(  # type: ignore[valid-type]
        name="No Forward", description="Render only at this site, never at a peer"
    )
    match_version: BoolProperty(  # type: ignore[valid-type]
        name="Same Blender Version",
        description="Only render servers with this Blender's major.minor version",
        default=True,
    )
    job_name: StringProperty(  # type: ignore[valid-type]
        name="Job Name", description="Empty: the .blend's name"
    )


class SpillwayJob(bpy.types.PropertyGroup):
    """The last submission's state, for the panel (not saved)."""

    job_id: StringProperty(name="Job")  # type: ignore[valid-type]
    state: StringProperty(name="State")  # type: ignore[valid-type]
    text: StringProperty(name="Status")  # type: ignore[valid-type]
    error: StringProperty(name="Error")  # type: ignore[valid-type]
    following: BoolProperty(name="Following")  # type: ignore[valid-type]


def _preferences(context: Any) -> Any:
    return context.preferences.addons[ADDON].preferences


def _saved_blend() -> Path:
    """The .blend to submit, saved first if it has changes."""
    if not bpy.data.is_saved:
        raise SubmissionError(
            "save the .blend first (File > Save As): the farm renders the saved file"
        )
    if bpy.data.is_dirty:
        bpy.ops.wm.save_mainfile()
    return Path(bpy.data.filepath)


def _panel_settings(scene: Any) -> PanelSettings:
    s = scene.spillway
    frames = (scene.frame_start, scene.frame_end, scene.frame_step)
    if not s.use_scene_frames:
        frames = (s.frame_start, s.frame_end, s.frame_step)
    return PanelSettings(
        job_name=s.job_name,
        frame_start=frames[0],
        frame_end=frames[1],
        frame_step=frames[2],
        chunk_size=s.chunk_size,
        priority=s.priority,
        site=s.site,
        forward=not s.no_forward,
        blender_version=tuple(bpy.app.version[:2]) if s.match_version else None,
    )


def _start(context: Any) -> Submission:
    """Check, save and read the open file, then start submitting it."""
    prefs = _preferences(context)
    url = prefs.agent_url.strip()
    if not url:
        raise SubmissionError(f"set the agent URL in {PREFERENCES}")
    options = submit_options(_panel_settings(context.scene))
    blend = _saved_blend()
    scanner = inspect_open_file()
    scanner.check(blend)  # a missing texture is reported now, before any upload
    if _following.submission is not None:
        _following.submission.stop()  # the panel follows one job: the newest
    submission = Submission(Target(url=url, token=prefs.token), blend, options, scanner)
    _following.submission = submission
    job = context.window_manager.spillway_job
    job.job_id, job.state, job.text, job.error = "", "", "submitting", ""
    job.following = True
    submission.start()
    if not bpy.app.timers.is_registered(_step):
        bpy.app.timers.register(_step, first_interval=TIMER_S, persistent=True)
    return submission


class SPILLWAY_OT_submit(bpy.types.Operator):
    """Save the .blend and submit it with its files to the Spillway farm"""

    bl_idname = "spillway.submit"
    bl_label = "Submit to Spillway"

    _submission: Submission | None = None
    _timer: Any = None

    def execute(self, context: Any) -> set[str]:
        try:
            self._submission = _start(context)
        except SpillwayError as err:
            self.report({"ERROR"}, explain(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"submitting {Path(bpy.data.filepath).name} to Spillway")
        return {"FINISHED"}

    def invoke(self, context: Any, event: Any) -> set[str]:
        """From the panel: stay until the job exists, to report the agent's answer."""
        result: set[str] = self.execute(context)
        if result != {"FINISHED"} or context.window is None:
            return result
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> set[str]:
        submission = self._submission
        if event.type != "TIMER" or submission is None or not submission.settled.is_set():
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        outcome = submission.outcome
        if outcome is not None and outcome.error:
            self.report({"ERROR"}, outcome.error)
            return {"CANCELLED"}
        if outcome is not None and outcome.job_id:
            self.report({"INFO"}, f"Spillway job {outcome.job_id}: {outcome.text}")
        return {"FINISHED"}


class SPILLWAY_OT_stop_following(bpy.types.Operator):
    """Stop showing the job's progress (the job carries on at the farm)"""

    bl_idname = "spillway.stop_following"
    bl_label = "Stop Following"

    def execute(self, context: Any) -> set[str]:
        if _following.submission is not None:
            _following.submission.stop()
        return {"FINISHED"}


class SPILLWAY_PT_render(bpy.types.Panel):
    bl_label = "Spillway"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.use_property_split = True
        scene = context.scene
        settings = scene.spillway
        layout.label(text=f"Agent: {_preferences(context).agent_url or 'not set'}", icon="URL")
        layout.prop(settings, "use_scene_frames")
        col = layout.column(align=True)
        if settings.use_scene_frames:
            col.label(text=f"Frames {scene.frame_start}-{scene.frame_end} step {scene.frame_step}")
        else:
            col.prop(settings, "frame_start")
            col.prop(settings, "frame_end")
            col.prop(settings, "frame_step")
        for name in ("chunk_size", "priority", "site", "no_forward", "match_version", "job_name"):
            layout.prop(settings, name)
        layout.operator(SPILLWAY_OT_submit.bl_idname, icon="RENDER_ANIMATION")
        _draw_job(layout, context.window_manager.spillway_job)


def _draw_job(layout: Any, job: Any) -> None:
    if not (job.job_id or job.text or job.error):
        return
    box = layout.box()
    if job.job_id:
        box.label(text=f"Job {job.job_id}", icon="RENDER_RESULT")
    if job.text:
        box.label(text=job.text)
    if job.error:
        box.label(text=job.error, icon="ERROR")
    if job.following:
        box.operator(SPILLWAY_OT_stop_following.bl_idname, icon="CANCEL")


def _show(job: Any, status: Status) -> None:
    if status.job_id:
        job.job_id = status.job_id
    if status.state:
        job.state = status.state
    if status.text:
        job.text = status.text
    if status.error:
        job.error = status.error
        log.error("Spillway: %s", status.error)


def _redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PROPERTIES":
                area.tag_redraw()


def _step() -> float | None:
    """Timer step: show the submission's news; stop once it has finished."""
    submission = _following.submission
    job = bpy.context.window_manager.spillway_job
    if submission is None:
        job.following = False
        return None
    while True:
        try:
            _show(job, submission.updates.get_nowait())
        except queue.Empty:
            break
    done = not submission.running and submission.updates.empty()
    if done:
        job.following = False
        _following.submission = None
    _redraw()
    return None if done else TIMER_S


def wait(timeout_s: float = 3600.0) -> dict[str, str]:
    """Follow the submission in flight until its job ends; for ``blender -b`` scripts,
    where timers do not run.  Returns the panel's job, state, status and error."""
    deadline = time.monotonic() + timeout_s
    while _step() is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Spillway job did not finish within {timeout_s:.0f} s")
        time.sleep(TIMER_S)
    job = bpy.context.window_manager.spillway_job
    return {"job_id": job.job_id, "state": job.state, "text": job.text, "error": job.error}


_CLASSES = (
    SpillwayPreferences,
    SpillwaySceneSettings,
    SpillwayJob,
    SPILLWAY_OT_submit,
    SPILLWAY_OT_stop_following,
    SPILLWAY_PT_render,
)


def register() -> None:
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.spillway = PointerProperty(type=SpillwaySceneSettings)
    bpy.types.WindowManager.spillway_job = PointerProperty(type=SpillwayJob)


def unregister() -> None:
    if _following.submission is not None:
        _following.submission.stop()
        _following.submission = None
    if bpy.app.timers.is_registered(_step):
        bpy.app.timers.unregister(_step)
    del bpy.types.WindowManager.spillway_job
    del bpy.types.Scene.spillway
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
