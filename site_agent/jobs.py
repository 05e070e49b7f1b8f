"""Job submission (validated at the boundary) and job control."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from scheduler.dependencies import DependencyKind
from scheduler.frames import chunk_frames, format_frames, parse_frames
from scheduler.profile import JobProfile, ServerView, explain_unmatched, matches
from spillway.core.checks import bad_string, first_bad_string, manifest_path_problem, path_clash
from spillway.core.records import FileEntry
from spillway.packages.blender import ENGINES as BLENDER_ENGINES

from .errors import BadRequestError, ConflictError, MissingAssetsError, NotFoundError
from .files import check_sha256, safe_relative_path
from .storage import safe_name
from .store.records import LOCAL, JobRecord, TaskRecord, TaskState

log = logging.getLogger(__name__)

MAX_MANIFEST = 10_000
MAX_FRAMES = 1_000_000
MAX_NAME = 200
SUBMIT_KEYS = {
    "name",
    "scene",
    "manifest",
    "frames",
    "chunk_size",
    "priority",
    "profile",
    "settings",
    "site",
    "forward",
    "split",
    "owner",
    "queue_anyway",
    "after",
    "after_any",
    "after_frames",
}
SETTINGS_KEYS = {"width", "height", "samples", "denoise"}
MAX_SAMPLES = 16_777_216  # Cycles' own limit


def _get(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = body.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) and kind is int or not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRequestError(f"'{key}' must be a {name}, got {value!r}")
    return value


def _int_in(body: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = _get(body, key, int, default)
    if not lo <= value <= hi:
        raise BadRequestError(f"'{key}' must be between {lo} and {hi}, got {value}")
    return int(value)


def parse_manifest(raw: Any) -> tuple[FileEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadRequestError("'manifest' must be a non-empty list of {path, sha256, size}")
    if len(raw) > MAX_MANIFEST:
        raise BadRequestError(f"a job may carry at most {MAX_MANIFEST} assets, got {len(raw)}")
    seen: set[str] = set()
    assets = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"path", "sha256", "size"}:
            raise BadRequestError(
                f"manifest[{i}] must be an object with exactly path, sha256 and size"
            )
        path = str(safe_relative_path(item["path"]))
        problem = manifest_path_problem(path)
        if problem is not None:
            raise BadRequestError(f"manifest[{i}].path {path!r} {problem}")
        sha = check_sha256(item["sha256"])
        size = item["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BadRequestError(f"manifest[{i}].size must be a non-negative whole number")
        if path in seen:
            raise BadRequestError(f"manifest lists '{path}' twice")
        seen.add(path)
        assets.append(FileEntry(path=path, sha256=sha, size=size))
    clash = path_clash(seen)
    if clash is not None:
        raise BadRequestError(
            f"manifest lists '{clash[0]}' as a file and '{clash[1]}' inside it as a folder; "
            "rename one of them"
        )
    return tuple(assets)


def _spec_text(raw: str, frames: Sequence[int]) -> str:
    """The frame spec as the user wrote it, or compacted when that is long (a frame list):
    the job's JSON carries it on every poll."""
    spec = raw.strip()
    return spec if len(spec) <= 256 else format_frames(frames)


def parse_name(body: Mapping[str, Any], scene: str) -> str:
    """The job name: given, or the scene's file name without its extension."""
    name: str = _get(body, "name", str, "") or scene.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    problem = bad_string(name)
    if problem is None and any(ord(c) < 32 or c == "\x7f" for c in name):
        problem = "contains a control character"
    if problem is None and len(name) > MAX_NAME:
        problem = f"is longer than {MAX_NAME} characters"
    if problem is not None:
        raise BadRequestError(f"the job name {name[:40]!r} {problem}")
    return name


def parse_settings(raw: Any) -> dict[str, Any]:
    """Overrides of the scene's own render settings; {} renders the scene as it is.

    ``width`` and ``height`` (an explicit resolution) come together or not at all;
    ``samples`` replaces the scene's render samples; ``denoise`` may only be false
    (render without the scene's denoising).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequestError(
            '\'settings\' must be an object such as {"width": 1920, "height": 1080}'
        )
    unknown = sorted(set(raw) - SETTINGS_KEYS)
    if unknown:
        raise BadRequestError(
            f"unknown setting '{unknown[0]}'; known: {', '.join(sorted(SETTINGS_KEYS))}"
        )
    settings = {key: _int_in(raw, key, 0, 1, 16384) for key in ("width", "height") if key in raw}
    if len(settings) == 1:
        raise BadRequestError(
            "settings 'width' and 'height' go together; give both to override the scene's "
            "resolution, or neither to keep it"
        )
    if "samples" in raw:
        settings["samples"] = _int_in(raw, "samples", 1, 1, MAX_SAMPLES)
    if "denoise" in raw:
        if raw["denoise"] is not False:
            raise BadRequestError(
                "setting 'denoise' can only be false (render without the scene's denoising); "
                "leave it out to denoise as the scene says"
            )
        settings["denoise"] = False
    return settings


def check_overrides(profile: JobProfile, settings: Mapping[str, Any]) -> None:
    """Refuse overrides the job's render package does not have."""
    if profile.package == "blender":
        if profile.engine and profile.engine not in BLENDER_ENGINES:
            raise BadRequestError(
                f"unknown blender engine {profile.engine!r}; use one of: "
                f"{', '.join(BLENDER_ENGINES)}"
            )
        return
    asked = sorted({"samples", "denoise"} & settings.keys())
    if asked:
        raise BadRequestError(
            f"setting '{asked[0]}' applies to blender scenes only, not {profile.package}; "
            "leave it out"
        )


def _job_ids(body: Mapping[str, Any], key: str) -> list[str]:
    raw = body.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(i, str) and i.strip() for i in raw):
        raise BadRequestError(
            f"'{key}' must be a list of job ids, e.g. [\"3f2a9c1b7d4e\"] (`spillway jobs` lists them)"
        )
    return list(dict.fromkeys(i.strip() for i in raw))


def parse_after(body: Mapping[str, Any]) -> list[tuple[str, DependencyKind]]:
    """The jobs a submission waits for: ``after`` (each to be done, or to end if
    ``after_any``) and ``after_frames`` (frame N waits for their frame N)."""
    after, frames = _job_ids(body, "after"), _job_ids(body, "after_frames")
    after_any = _get(body, "after_any", bool, False)
    if after_any and not after:
        raise BadRequestError(
            "'after_any' needs 'after': the jobs to wait for (--after-any goes with --after)"
        )
    both = sorted(set(after) & set(frames))
    if both:
        raise BadRequestError(
            f"job {both[0]} is in both 'after' and 'after_frames'; wait for it one way"
        )
    kind = DependencyKind.END if after_any else DependencyKind.DONE
    return [(i, kind) for i in after] + [(i, DependencyKind.FRAMES) for i in frames]


def parse_submission(
    body: Any, *, site_name: str, known_packages: set[str], now: float
) -> tuple[JobRecord, tuple[int, ...], str | None]:
    """Validate a submission body; returns the job, its frames and the requested site."""
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    bad = first_bad_string(body)
    if bad is not None:
        raise BadRequestError(f"{bad[0]} {bad[1]}")
    unknown = sorted(set(body) - SUBMIT_KEYS)
    if unknown:
        raise BadRequestError(
            f"unknown field '{unknown[0]}'; known fields: {', '.join(sorted(SUBMIT_KEYS))}"
        )
    manifest = parse_manifest(body.get("manifest"))
    scene = str(safe_relative_path(_get(body, "scene", str, "")))
    if scene not in {a.path for a in manifest}:
        raise BadRequestError(f"the scene '{scene}' must also be listed in the manifest")
    frames = parse_frames(_get(body, "frames", str, ""), max_frames=MAX_FRAMES)
    chunk = _int_in(body, "chunk_size", 1, 1, 100_000)
    profile_raw = _get(body, "profile", dict, None)
    if profile_raw is None:
        raise BadRequestError('\'profile\' is required, e.g. {"package": "builtin"}')
    profile = JobProfile.from_dict(profile_raw)
    if profile.package not in known_packages:
        raise BadRequestError(
            f"unknown render package '{profile.package}'; known packages: {', '.join(sorted(known_packages))}"
        )
    name = parse_name(body, scene)
    site = _get(body, "site", str, None)
    settings = parse_settings(body.get("settings"))
    check_overrides(profile, settings)
    job = JobRecord(
        id=uuid.uuid4().hex[:12],
        name=name,
        owner=_get(body, "owner", str, "")[:100],
        origin_site=site_name,
        priority=_int_in(body, "priority", 50, 0, 100),
        profile=profile,
        frames=_spec_text(body["frames"], frames),
        frame_count=len(frames),
        chunk_size=chunk,
        scene=scene,
        manifest=manifest,
        output_name=safe_name(name),
        settings=settings,
        forward_allowed=_get(body, "forward", bool, True),
        split=_get(body, "split", bool, False),
        created_at=now,
        updated_at=now,
    )
    return job, frames, site


class JobReader(Protocol):
    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def get_job_by_origin_id(self, origin_job_id: str) -> JobRecord | None: ...

    async def list_tasks(self, job_id: str) -> list[TaskRecord]: ...


class BlobIndex(Protocol):
    def missing(self, hashes: Iterable[str]) -> list[str]: ...


class Placement(Protocol):
    async def place(self, job: JobRecord, requested: str | None) -> JobRecord:
        """The job with its placement decided (here, or a peer)."""


class JobTransitions(Protocol):
    """The lifecycle transitions a client can ask for."""

    async def create(
        self,
        job: JobRecord,
        chunks: Sequence[tuple[int, ...]],
        *,
        after: Sequence[tuple[str, DependencyKind]] = (),
    ) -> JobRecord: ...

    async def add_dependencies(
        self, job_id: str, after: Sequence[tuple[str, DependencyKind]], *, at: float
    ) -> bool: ...

    async def cancel(self, job_id: str, *, at: float) -> list[TaskRecord]: ...

    async def pause(self, job_id: str, *, at: float) -> None: ...

    async def resume(self, job_id: str, *, at: float) -> None: ...

    async def retry_failed(self, job_id: str, *, at: float) -> int: ...

    async def set_priority(self, job_id: str, priority: int, *, at: float) -> None: ...

    async def rerender(self, job_id: str, task_ids: Sequence[int], *, at: float) -> int: ...


ServerViews = Callable[[], Awaitable[list[ServerView]]]
"""Every registered render server of the site, online or not, as the scheduler sees it."""


def unrunnable(job: JobRecord, servers: Sequence[ServerView]) -> str | None:
    """Why no known server could ever run ``job`` (placed here), or None if one could.

    Offline and disabled servers count: they may come back. A site that knows no
    server yet cannot judge, so it accepts.
    """
    if job.placement != LOCAL or not servers or any(matches(job.profile, s) for s in servers):
        return None
    return explain_unmatched(job.profile, servers)


class JobService:
    """Client requests on jobs: validate a submission, place and create it; job control."""

    def __init__(
        self,
        *,
        site_name: str,
        known_packages: set[str],
        jobs: JobReader,
        blobs: BlobIndex,
        placement: Placement,
        lifecycle: JobTransitions,
        servers: ServerViews | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``servers`` lets a submission no server could run be refused (unchecked if None)."""
        self._site_name = site_name
        self._known_packages = known_packages
        self._jobs = jobs
        self._blobs = blobs
        self._placement = placement
        self._lifecycle = lifecycle
        self._servers = servers
        self._clock = clock

    async def submit(self, body: Any) -> JobRecord:
        # A million-frame list takes a second to check and chunk: off the event loop,
        # so /health and render-server heartbeats keep their timing meanwhile.
        job, chunks, requested = await asyncio.to_thread(self._parse, body, self._clock())
        after = parse_after(body)
        missing = self._blobs.missing(a.sha256 for a in job.manifest)
        if missing:
            raise MissingAssetsError(
                f"{len(missing)} asset blobs are not uploaded yet; PUT them to /api/v1/blobs/<sha256> first",
                missing=missing,
            )
        job = await self._placement.place(job, requested)
        if self._servers is not None and not _get(body, "queue_anyway", bool, False):
            why = unrunnable(job, await self._servers())
            if why is not None:
                where = "its peers" if job.forward_allowed else "peers (forwarding is off)"
                raise ConflictError(
                    f"no server of this site or {where} can run this job: {why}; "
                    "submit with --queue-anyway (queue_anyway) to queue it for a server to come"
                )
        return await self._lifecycle.create(job, chunks, after=after)

    async def add_dependencies(self, job_id: str, body: Any) -> JobRecord:
        """The job waits for the jobs of ``body`` (``after``, ``after_any``, ``after_frames``) too."""
        keys = {"after", "after_any", "after_frames"}
        if not isinstance(body, dict) or not set(body) <= keys or not parse_after(body):
            raise BadRequestError(
                'send {"after": [JOB_ID, ...]} (and "after_any": true to wait for them to end '
                'however they end), or {"after_frames": [JOB_ID, ...]}'
            )
        await self._lifecycle.add_dependencies(job_id, parse_after(body), at=self._clock())
        return await self.get(job_id)

    def _parse(self, body: Any, now: float) -> tuple[JobRecord, list[tuple[int, ...]], str | None]:
        job, frames, requested = parse_submission(
            body, site_name=self._site_name, known_packages=self._known_packages, now=now
        )
        return job, chunk_frames(frames, job.chunk_size), requested

    async def get(self, job_id: str) -> JobRecord:
        """The job with this id, or else the job accepted from a peer under this origin id."""
        job = await self._jobs.get_job(job_id) or await self._jobs.get_job_by_origin_id(job_id)
        if job is None:
            raise NotFoundError(f"no job '{job_id}'; `spillway jobs` lists the jobs of this site")
        return job

    async def control(self, job_id: str, action: str) -> JobRecord:
        job = await self.get(job_id)
        job_id, now = job.id, self._clock()
        if action == "cancel":
            if job.state.finished:
                raise ConflictError(f"job {job_id} is already {job.state}")
            await self._lifecycle.cancel(job_id, at=now)
        elif action == "pause":
            await self._lifecycle.pause(job_id, at=now)
        elif action == "resume":
            await self._lifecycle.resume(job_id, at=now)
        elif action == "retry":
            if job.placement != LOCAL:
                raise ConflictError(f"job {job_id} runs at {job.placement}; retry it there")
            if await self._lifecycle.retry_failed(job_id, at=now) == 0:
                raise ConflictError(
                    f"job {job_id} has no failed tasks to retry; "
                    "`spillway retry --frames SPEC` renders chosen frames again"
                )
        else:
            raise NotFoundError(f"unknown action '{action}'; use cancel, pause, resume or retry")
        return await self.get(job_id)

    async def set_priority(self, job_id: str, body: Any) -> JobRecord:
        """Change an unfinished job's priority from ``{"priority": N}`` (0-100, higher first)."""
        if not isinstance(body, dict) or set(body) != {"priority"}:
            raise BadRequestError('send {"priority": N} with N from 0 to 100 (higher runs first)')
        priority = _int_in(body, "priority", 50, 0, 100)
        await self._lifecycle.set_priority(job_id, priority, at=self._clock())
        return await self.get(job_id)

    async def retry_frames(self, job_id: str, spec: Any) -> JobRecord:
        """Render the frames of ``spec`` again: the done or failed tasks holding them.

        BadRequestError for a spec naming frames the job does not have; ConflictError
        when every task holding them is still waiting or rendering.
        """
        job = await self.get(job_id)
        job_id = job.id
        if job.placement != LOCAL:
            raise ConflictError(f"job {job_id} runs at {job.placement}; retry it there")
        if not isinstance(spec, str):
            raise BadRequestError(
                f"'frames' must be a frame spec such as 1-10 or 3,7, got {spec!r}"
            )
        wanted = set(parse_frames(spec, max_frames=MAX_FRAMES))
        tasks = await self._jobs.list_tasks(job_id)
        unknown = wanted.difference(*(t.frames for t in tasks))
        if unknown:
            raise BadRequestError(
                f"job {job_id} has no frame {format_frames(sorted(unknown))}; its frames are {job.frames}"
            )
        ended = (TaskState.DONE, TaskState.FAILED)
        chosen = [t.id for t in tasks if t.state in ended and wanted.intersection(t.frames)]
        if not chosen:
            raise ConflictError(
                f"frames {spec} of job {job_id} are already waiting or rendering; nothing to retry"
            )
        await self._lifecycle.rerender(job_id, chosen, at=self._clock())
        return await self.get(job_id)
