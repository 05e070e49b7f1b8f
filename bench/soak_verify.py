"""The soak's verdict: read every job of every site from the API, the database and the disk.

A *finding* is anything that means lost or inconsistent work: a job an agent
acknowledged but no longer has, a job not ``done`` (all soak scenes are valid,
so a failure is the farm's), a frame missing, recorded twice, without its file,
with a file whose hash or size differ from the record, a stray file in a job's
folder, two task rows for one (job, index), or a ``done`` job with unfinished tasks.
A *leftover* is a hidden ``.part`` temp file of an interrupted write left in a
job's folder: no frame is lost, but the disk holds debris; it fails the run too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from site_agent.storage import safe_name
from spillway.client import AgentClient, SpillwayClientError
from spillway.core.frames import parse_frames
from spillway.core.hashing import file_sha256

from .soak_clients import TERMINAL, SubmittedJob
from .soak_farm import Site

JOBS = "SELECT id, name, state, frames, error, placement, remote_job_id FROM jobs"
FRAMES = "SELECT job_id, frame, name, sha256, size FROM frames"
DUPLICATE_TASKS = "SELECT job_id, idx, COUNT(*) FROM tasks GROUP BY job_id, idx HAVING COUNT(*) > 1"
UNFINISHED_TASKS_OF_DONE_JOBS = (
    "SELECT t.job_id, t.idx, t.state FROM tasks t JOIN jobs j ON j.id = t.job_id "
    "WHERE j.state = 'done' AND t.state <> 'done'"
)
TASK_COUNT = "SELECT COUNT(*) FROM tasks"


@dataclass
class SiteVerdict:
    """What the check found at one site."""

    site: str
    jobs: Counter[str] = field(default_factory=Counter)  # by state
    frames: int = 0  # frame files checked against their records
    tasks: int = 0
    findings: list[str] = field(default_factory=list)  # lost or wrong work
    leftovers: list[str] = field(default_factory=list)  # temp files of interrupted writes


async def query(database: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read-only query on the site's database, SQLite or PostgreSQL."""
    if database.startswith("sqlite:"):
        path = "/" + database.removeprefix("sqlite:").lstrip("/")  # soak URLs are absolute
        return await asyncio.to_thread(_sqlite_rows, path, sql)
    import asyncpg

    conn = await asyncpg.connect(database, timeout=10)
    try:
        return [tuple(r) for r in await conn.fetch(sql, timeout=60)]
    finally:
        await conn.close()


def _sqlite_rows(path: str, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(
        sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, timeout=30)
    ) as db:
        return list(db.execute(sql).fetchall())


async def unfinished_jobs(site: Site) -> list[str]:
    """Ids of the site's jobs not yet in a terminal state (from its database)."""
    return [row[0] for row in await query(site.database, JOBS) if row[2] not in TERMINAL]


async def verify_site(site: Site, acknowledged: list[SubmittedJob]) -> SiteVerdict:
    """Check every job of ``site``; ``acknowledged`` are the jobs clients were told exist there."""
    verdict = SiteVerdict(site.name)
    jobs = {row[0]: row for row in await query(site.database, JOBS)}
    frames: dict[str, list[tuple[Any, ...]]] = {}
    for row in await query(site.database, FRAMES):
        frames.setdefault(row[0], []).append(row)
    for sub in acknowledged:
        if sub.id not in jobs:
            verdict.findings.append(f"{site.name}: acknowledged job {sub.id} is gone")
        elif parse_frames(jobs[sub.id][3]) != sub.frames:
            verdict.findings.append(f"{site.name}: job {sub.id} has other frames than submitted")
    for job_id, idx, count in await query(site.database, DUPLICATE_TASKS):
        verdict.findings.append(f"{site.name}: job {job_id} task {idx} has {count} task rows")
    for job_id, idx, state in await query(site.database, UNFINISHED_TASKS_OF_DONE_JOBS):
        verdict.findings.append(f"{site.name}: done job {job_id} has task {idx} {state}")
    verdict.tasks = int((await query(site.database, TASK_COUNT))[0][0])
    async with AgentClient(site.url, timeout_s=30) as client:
        for job_id, row in jobs.items():
            verdict.jobs[row[2]] += 1
            await _verify_job(site, client, row, frames.get(job_id, []), verdict)
    return verdict


async def _verify_job(
    site: Site,
    client: AgentClient,
    row: tuple[Any, ...],
    frame_rows: list[tuple[Any, ...]],
    verdict: SiteVerdict,
) -> None:
    job_id, name, state, spec, error = row[:5]
    where = f"{site.name}: job {job_id} ({name})"
    if state != "done":
        verdict.findings.append(f"{where} ended {state}: {error or 'no reason given'}")
        return
    try:
        detail = (await client.job(job_id))["job"]
        listed = {f["frame"]: f["sha256"] for f in await client.frames(job_id)}
    except SpillwayClientError as exc:
        verdict.findings.append(f"{where}: the API failed: {exc}")
        return
    if detail["state"] != state:
        verdict.findings.append(f"{where}: the API says {detail['state']}, the database {state}")
    folder = site.storage / f"{safe_name(name)}-{job_id}"
    if detail.get("storage_dir") and Path(detail["storage_dir"]) != folder:
        verdict.findings.append(f"{where}: the API names folder {detail['storage_dir']}")
    expected = set(parse_frames(spec))
    recorded = {r[1]: r for r in frame_rows}
    for frame in sorted(expected - set(recorded)):
        verdict.findings.append(f"{where}: frame {frame} is missing (no frame record)")
    for frame in sorted(set(recorded) - expected):
        verdict.findings.append(f"{where}: frame {frame} is recorded but was never asked for")
    for frame, frame_row in sorted(recorded.items()):
        problem = await asyncio.to_thread(_check_file, folder, frame_row)
        if listed.get(frame) != frame_row[3]:
            problem = problem or "the API lists another hash than the database"
        if problem:
            verdict.findings.append(f"{where}: frame {frame}: {problem}")
        verdict.frames += 1
    _find_strays(verdict, where, folder, {r[2] for r in frame_rows})


def _find_strays(verdict: SiteVerdict, where: str, folder: Path, names: set[str]) -> None:
    """Files in a job folder that no frame record names (its previews are named after them)."""
    on_disk = set(os.listdir(folder)) if folder.is_dir() else set()
    strays = sorted(on_disk - names - {".previews"})
    if ".previews" in on_disk:  # each frame's small PNG preview, named after its main file
        previews = {f"{name}.png" for name in names}
        strays += [
            f".previews/{p}" for p in sorted(set(os.listdir(folder / ".previews")) - previews)
        ]
    for stray in strays:
        # A hidden ``.part`` is the temp file of an interrupted write: debris, not a frame.
        debris = Path(stray).name.startswith(".") and stray.endswith(".part")
        (verdict.leftovers if debris else verdict.findings).append(
            f"{where}: stray file {stray} in {folder}"
        )


def _check_file(folder: Path, frame_row: tuple[Any, ...]) -> str:
    """What is wrong with a recorded frame's file ('' when it matches its record)."""
    path = folder / frame_row[2]
    try:
        size = path.stat().st_size
        digest = file_sha256(path)
    except OSError as exc:
        return f"file {path} unreadable: {exc.strerror or exc}"
    if size != frame_row[4]:
        return f"file {path} has {size} bytes, the record {frame_row[4]}"
    if digest != frame_row[3]:
        return f"file {path} sha256 {digest[:12]}…, the record {frame_row[3][:12]}…"
    return ""
