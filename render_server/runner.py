"""Runs one task: lays out its assets, renders the chunk in a child process, uploads frames."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath

import aiohttp

from . import protocol
from .cache import AssetCache, CacheError
from .packages.base import PackageAdapter, PackageError, RenderRequest

log = logging.getLogger(__name__)
LOG_FLUSH_S = 1.0
TAIL_LINES = 60

Send = Callable[[protocol.Message], Awaitable[None]]


class TaskFailure(Exception):
    """The task failed; the message is what the user sees in `spillway job`."""


class TaskRunner:
    def __init__(
        self,
        assign: protocol.Assign,
        *,
        adapter: PackageAdapter,
        cache: AssetCache,
        work_root: Path,
        session: aiohttp.ClientSession,
        agent_url: str,
        token: str,
        server_id: str,
        send: Send,
    ) -> None:
        self.assign = assign
        self._adapter = adapter
        self._cache = cache
        self._workdir = work_root / f"task-{assign.task_id}-{assign.attempt}"
        self._session = session
        self._agent_url = agent_url.rstrip("/")
        self._token = token
        self._server_id = server_id
        self._send = send
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._pending_log: list[str] = []

    @property
    def log_tail(self) -> str:
        return "\n".join(self._tail)

    async def run(self) -> protocol.Message:
        """Render and upload; returns the final report (TaskDone or TaskFailed) to send."""
        a = self.assign
        started = time.time()
        try:
            req = await self._prepare()
            await self._send(protocol.TaskStarted(task_id=a.task_id, attempt=a.attempt))
            await self._render(req)
            outputs, inline = await self._upload(req)
        except (TaskFailure, PackageError, CacheError) as exc:
            log.warning("task %s attempt %s failed: %s", a.task_id, a.attempt, exc)
            return protocol.TaskFailed(
                task_id=a.task_id, attempt=a.attempt, error=str(exc), log_tail=self.log_tail
            )
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)
        done = protocol.TaskDone(
            task_id=a.task_id,
            attempt=a.attempt,
            outputs=outputs,
            started_at=started,
            finished_at=time.time(),
            log_tail=self.log_tail,
            frames=inline,
        )
        if (
            inline
            and _may_exceed_limit(done)
            and len(protocol.encode(done)) > protocol.MAX_MESSAGE_BYTES
        ):
            try:  # a long log tail or very many frames: upload them over HTTP after all
                for f in inline:
                    await self._put_frame(f.frame, f.data, f.sha256)
            except TaskFailure as exc:
                return protocol.TaskFailed(
                    task_id=a.task_id, attempt=a.attempt, error=str(exc), log_tail=self.log_tail
                )
            done = dataclasses.replace(done, frames=[])
        return done

    async def _prepare(self) -> RenderRequest:
        a = self.assign
        shutil.rmtree(self._workdir, ignore_errors=True)
        outdir = self._workdir / "_spillway_out"
        outdir.mkdir(parents=True)
        for asset in a.manifest:
            rel = PurePosixPath(asset.path)
            if rel.is_absolute() or ".." in rel.parts:
                raise TaskFailure(f"asset path {asset.path!r} is not a safe relative path")
            await self._cache.ensure(asset.sha256)
            self._cache.link_into(asset.sha256, self._workdir / rel)
        req = RenderRequest(
            scene=self._workdir / a.scene,
            workdir=self._workdir,
            outdir=outdir,
            frames=tuple(a.frames),
            width=a.width,
            height=a.height,
            threads=a.threads,
            engine=a.engine,
            declared_assets=tuple(x.path for x in a.manifest),
        )
        self._adapter.preflight(req)
        return req

    async def _render(self, req: RenderRequest) -> None:
        argv = self._adapter.command(req)
        env = {**os.environ, **self._adapter.env(req)}
        self._tail.append("$ " + " ".join(argv))
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=req.workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        flusher = asyncio.create_task(self._flush_logs(), name=f"log-{self.assign.task_id}")
        try:
            await asyncio.wait_for(self._pump(proc), self.assign.timeout_s)
        except TimeoutError:
            _kill_group(proc)
            raise TaskFailure(
                f"render exceeded the task timeout of {self.assign.timeout_s:.0f}s"
            ) from None
        except asyncio.CancelledError:
            _kill_group(proc)
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(proc.wait(), 5)
            raise
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self._send_log()
        if proc.returncode != 0:
            last = next((line for line in reversed(self._tail) if line.strip()), "")
            raise TaskFailure(f"{self.assign.package} exited with status {proc.returncode}: {last}")

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self._tail.append(line)
            self._pending_log.append(line)
        await proc.wait()

    async def _flush_logs(self) -> None:
        while True:
            await asyncio.sleep(LOG_FLUSH_S)
            await self._send_log()

    async def _send_log(self) -> None:
        if self._pending_log:
            text, self._pending_log = "\n".join(self._pending_log) + "\n", []
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(
                    protocol.TaskLog(
                        task_id=self.assign.task_id, attempt=self.assign.attempt, text=text
                    )
                )

    async def _upload(
        self, req: RenderRequest
    ) -> tuple[list[protocol.Output], list[protocol.InlineFrame]]:
        """Upload the frames over HTTP, or keep them for TaskDone when they are all small.

        Returns the outputs (always every frame) and the frames to send inline.
        """
        files = self._adapter.collect(req)
        a = self.assign
        inline_ok = fits_inline([files[frame].stat().st_size for frame in req.frames])
        outputs: list[protocol.Output] = []
        inline: list[protocol.InlineFrame] = []
        for frame in req.frames:
            data = files[frame].read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            name = f"{a.output_name}_{frame:04d}.{a.output_ext}"
            if inline_ok:
                inline.append(protocol.InlineFrame(frame=frame, name=name, sha256=sha, data=data))
            else:
                await self._put_frame(frame, data, sha)
            outputs.append(protocol.Output(frame=frame, name=name, sha256=sha, size=len(data)))
        if (
            sum(len(f.data) for f in inline) > protocol.INLINE_TOTAL_BYTES
        ):  # a file grew after its stat
            for f in inline:
                await self._put_frame(f.frame, f.data, f.sha256)
            inline = []
        return outputs, inline

    async def _put_frame(self, frame: int, data: bytes, sha: str) -> None:
        a = self.assign
        url = (
            f"{self._agent_url}/api/v1/servers/{self._server_id}/tasks/{a.task_id}"
            f"/attempts/{a.attempt}/frames/{frame}"
        )
        headers = {"X-Sha256": sha, "Content-Type": "application/octet-stream"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        delay = 0.5
        deadline = time.monotonic() + 300
        while True:
            try:
                async with self._session.put(
                    url,
                    data=io.BytesIO(data),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=120),
                ) as resp:
                    if resp.status == 201:
                        return
                    body = await resp.text()
                    if resp.status < 500:
                        raise TaskFailure(
                            f"agent refused frame {frame}: {resp.status} {body[:200]}"
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("upload of frame %s failed (%s); retrying", frame, exc)
            if time.monotonic() > deadline:
                raise TaskFailure(f"could not upload frame {frame} to the agent for 5 minutes")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def fits_inline(sizes: list[int]) -> bool:
    """Whether frames of these sizes all go inline in TaskDone (each and together small enough)."""
    return (
        all(size <= protocol.INLINE_FRAME_BYTES for size in sizes)
        and sum(sizes) <= protocol.INLINE_TOTAL_BYTES
    )


def _may_exceed_limit(done: protocol.TaskDone) -> bool:
    """A cheap over-estimate of TaskDone's encoded size against the message limit."""
    estimate = (
        sum(len(f.data) for f in done.frames)
        + 4 * len(done.log_tail)
        + 512 * (len(done.frames) + len(done.outputs))
        + 4096
    )
    return estimate > protocol.MAX_MESSAGE_BYTES


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
