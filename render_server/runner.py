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
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path, PurePosixPath

import aiohttp

from . import protocol
from .cache import AssetCache, CacheError
from .output import LineSplitter, OutputLog
from .packages.base import PackageAdapter, PackageError, RenderRequest, chunk_commands
from .preview import PreviewError, make_preview, preview_name
from .workdirs import WorkdirJanitor

log = logging.getLogger(__name__)
LOG_FLUSH_S = 1.0
READ_CHUNK_BYTES = 64 * 1024

Send = Callable[[protocol.Message], Awaitable[None]]
PreflightKey = tuple[str, str, str, tuple[tuple[str, str], ...]]


class TaskFailure(Exception):
    """The task failed; the message is what the user sees in `spillway job`."""


class PreflightCache:
    """Scene checks that passed, remembered per job and exact inputs.

    An adapter's preflight looks only at the task folder, which is laid out from
    the assignment's scene path and manifest (paths and sha256s): identical
    inputs give an identical folder and so an identical answer. Chunks of one
    job therefore parse their scene once per render server, not once per task.
    Only passes are kept (a failing job fails its tasks anyway); bounded, LRU.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._passed: collections.OrderedDict[PreflightKey, None] = collections.OrderedDict()

    def check(self, adapter: PackageAdapter, req: RenderRequest, assign: protocol.Assign) -> None:
        """Run ``adapter.preflight(req)`` unless the same inputs passed before."""
        key: PreflightKey = (
            assign.package,
            assign.job_id,
            assign.scene,
            tuple(sorted((a.path, a.sha256) for a in assign.manifest)),
        )
        if key in self._passed:
            self._passed.move_to_end(key)
            return
        adapter.preflight(req)
        self._passed[key] = None
        if len(self._passed) > self._size:
            self._passed.popitem(last=False)


class TaskRunner:
    """One task attempt. ``run`` reports every outcome as a message and leaves its
    folder (``workdir``) for the caller to discard once the report is sent."""

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
        janitor: WorkdirJanitor,
        preflight: PreflightCache | None = None,
        server_key: str = "",
        child_env: Mapping[str, str] | None = None,
        rendered: Callable[[], None] | None = None,
    ) -> None:
        self.assign = assign
        self._adapter = adapter
        self._cache = cache
        # Unique per runner: a cancelled try still being cleaned up never shares a
        # folder with a new try of the same task attempt.
        self.workdir = work_root / f"task-{assign.task_id}-{assign.attempt}-{uuid.uuid4().hex[:8]}"
        self._session = session
        self._agent_url = agent_url.rstrip("/")
        self._token = token
        self._server_id = server_id
        self._server_key = server_key
        self._send = send
        self._janitor = janitor
        self._preflight = preflight or PreflightCache()
        self._output = OutputLog()
        self._child_env = dict(child_env or {})
        """Added to each renderer's environment: the reaper's marker (see :mod:`.reaper`)."""
        self._rendered = rendered
        """Called once the renderer's last process has exited well, before the frames are
        collected and uploaded: the slot it used may take the next task."""

    @property
    def log_tail(self) -> str:
        return self._output.tail

    async def run(self) -> protocol.Message:
        """Render and upload; returns the final report (TaskDone or TaskFailed) to send.

        Never raises but CancelledError: an unexpected error (a bug, a file system
        error) becomes a TaskFailed naming it, so the agent learns at once instead
        of after the task timeout.
        """
        a = self.assign
        started = time.time()
        try:
            req = await self._prepare()
            await self._send(protocol.TaskStarted(task_id=a.task_id, attempt=a.attempt))
            await self._render(req)
            if self._rendered is not None:
                self._rendered()
            outputs, inline = await self._upload(req)
        except asyncio.CancelledError:
            await self._send_log()  # a cancelled attempt sends no final report with its tail
            raise
        except (TaskFailure, PackageError, CacheError) as exc:
            log.warning("task %s attempt %s failed: %s", a.task_id, a.attempt, exc)
            return self._failed(str(exc))
        except Exception as exc:
            log.exception("task %s attempt %s: unexpected error", a.task_id, a.attempt)
            return self._failed(f"render server error: {type(exc).__name__}: {exc}")
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
                await self._put_inline(inline)
            except TaskFailure as exc:
                return self._failed(str(exc))
            done = dataclasses.replace(done, frames=[])
        return done

    def _failed(self, error: str) -> protocol.TaskFailed:
        return protocol.TaskFailed(
            task_id=self.assign.task_id,
            attempt=self.assign.attempt,
            error=error,
            log_tail=self.log_tail,
        )

    async def _prepare(self) -> RenderRequest:
        a = self.assign
        outdir = self.workdir / "_spillway_out"
        outdir.mkdir(parents=True)
        for asset in a.manifest:
            rel = PurePosixPath(asset.path)
            if rel.is_absolute() or ".." in rel.parts:
                raise TaskFailure(f"asset path {asset.path!r} is not a safe relative path")
            await self._cache.ensure(asset.sha256)
            self._cache.link_into(asset.sha256, self.workdir / rel)
        req = RenderRequest(
            scene=self.workdir / a.scene,
            workdir=self.workdir,
            outdir=outdir,
            frames=tuple(a.frames),
            width=a.width,
            height=a.height,
            threads=a.threads,
            engine=a.engine,
            samples=a.samples,
            denoise=a.denoise,
            declared_assets=tuple(x.path for x in a.manifest),
            job_first=a.first_frame,
            job_last=a.last_frame,
        )
        self._preflight.check(self._adapter, req, a)
        return req

    async def _render(self, req: RenderRequest) -> None:
        """Run the chunk's child processes one after another, all within the task timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.assign.timeout_s
        for argv in chunk_commands(self._adapter, req):
            await self._render_process(argv, req, max(0.0, deadline - loop.time()))

    async def _render_process(self, argv: list[str], req: RenderRequest, limit_s: float) -> None:
        self._output.note("$ " + " ".join(argv))
        # No code runs in the child between fork and exec (no preexec_fn, no exec
        # through a helper), so CPython starts it with vfork; the reaper, not a
        # parent-death signal, ends it if this process dies.
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=req.workdir,
            env={**os.environ, **self._adapter.env(req), **self._child_env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        flusher = asyncio.create_task(self._flush_logs(), name=f"log-{self.assign.task_id}")
        ended = False
        try:
            await asyncio.wait_for(self._pump(proc), limit_s)
            ended = True
        except TimeoutError:
            _kill_group(proc)
            raise TaskFailure(
                f"render exceeded the task timeout of {self.assign.timeout_s:.0f}s"
            ) from None
        except BaseException:  # cancelled, or reading failed: never leave the renderer running
            _kill_group(proc)
            with contextlib.suppress(ProcessLookupError, TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
            raise
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            # A short task's whole output goes as the tail of its final report, which the
            # agent keeps as the log: one message and one transaction fewer per task.
            if not (ended and proc.returncode == 0 and self._output.tail_is_whole()):
                await self._send_log()
        if proc.returncode != 0:
            exited = f"{self.assign.package} exited with status {proc.returncode}"
            own = self._output.error_line()  # the renderer's words are what the user can act on
            raise TaskFailure(
                f"{own} ({exited})" if own else f"{exited}: {self._output.last_words()}"
            )

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        """Read the renderer's output in chunks until it closes, then wait for its exit.

        Not line by line: a stream reader's line limit (64 KiB) ends the read
        with an error on one long line, and POV-Ray writes such lines.
        """
        assert proc.stdout is not None
        lines = LineSplitter()
        while chunk := await proc.stdout.read(READ_CHUNK_BYTES):
            for line in lines.feed(chunk):
                self._output.add(line)
        for line in lines.finish():
            self._output.add(line)
        await proc.wait()

    async def _flush_logs(self) -> None:
        while True:
            await asyncio.sleep(LOG_FLUSH_S)
            await self._send_log()

    async def _send_log(self) -> None:
        text = self._output.take_pending()
        if text:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(
                    protocol.TaskLog(
                        task_id=self.assign.task_id, attempt=self.assign.attempt, text=text
                    )
                )

    async def _upload(
        self, req: RenderRequest
    ) -> tuple[list[protocol.Output], list[protocol.InlineFrame]]:
        """Upload every file of every frame over HTTP, or keep them for TaskDone when all are small.

        Each frame's files keep the renderer's names; the first the adapter lists is the
        frame's main file, uploaded last (after its other files and its preview), so the
        agent records the frame once all of it is stored. Returns the outputs (every file)
        and the files to send inline.
        """
        files = await asyncio.to_thread(self._files_with_previews, req)
        sizes = [path.stat().st_size for frame in req.frames for _, path in files[frame]]
        inline_ok = fits_inline(sizes)
        outputs: list[protocol.Output] = []
        inline: list[protocol.InlineFrame] = []
        for frame in req.frames:
            for kind, path in files[frame]:
                data = path.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                out = protocol.Output(
                    frame=frame, name=path.name, sha256=sha, size=len(data), kind=kind
                )
                if inline_ok:
                    inline.append(
                        protocol.InlineFrame(
                            frame=frame, name=out.name, sha256=sha, data=data, kind=kind
                        )
                    )
                else:
                    await self._put_file(out, data)
                outputs.append(out)
        if (
            sum(len(f.data) for f in inline) > protocol.INLINE_TOTAL_BYTES
        ):  # a file grew after its stat
            await self._put_inline(inline)
            inline = []
        return outputs, inline

    def _files_with_previews(
        self, req: RenderRequest
    ) -> dict[int, list[tuple[protocol.FileKind, Path]]]:
        """Each frame's files in upload order: extras, preview, main.

        Blocking (reads and encodes images): call it in a worker thread. A frame whose
        main file cannot be read here (see :mod:`render_server.preview`) has no preview.
        """
        a = self.assign
        collected = self._adapter.collect(req)
        previews = self.workdir / "_spillway_previews"
        ordered: dict[int, list[tuple[protocol.FileKind, Path]]] = {}
        for frame in req.frames:
            main, *extras = collected[frame]
            names = [p.name for p in collected[frame]]
            if len(set(names)) != len(names):
                raise TaskFailure(f"frame {frame}: the renderer wrote two files named alike")
            entry = [(protocol.FileKind.EXTRA, p) for p in extras]
            preview = previews / preview_name(main.name)
            try:
                make_preview(main, preview)
                entry.append((protocol.FileKind.PREVIEW, preview))
            except PreviewError as exc:
                log.info("task %s: no preview of frame %s: %s", self.assign.task_id, frame, exc)
            except Exception:  # noqa: BLE001 - a preview is a convenience: it never fails a render
                log.exception("task %s: making the preview of frame %s failed", a.task_id, frame)
            entry.append((protocol.FileKind.MAIN, main))
            ordered[frame] = entry
        return ordered

    async def _put_inline(self, inline: list[protocol.InlineFrame]) -> None:
        for f in inline:
            out = protocol.Output(
                frame=f.frame, name=f.name, sha256=f.sha256, size=len(f.data), kind=f.kind
            )
            await self._put_file(out, f.data)

    async def _put_file(self, out: protocol.Output, data: bytes) -> None:
        a = self.assign
        frame = out.frame
        url = (
            f"{self._agent_url}/api/v1/servers/{self._server_id}/tasks/{a.task_id}"
            f"/attempts/{a.attempt}/frames/{frame}"
        )
        params = {"name": out.name, "kind": out.kind.value}
        headers = {"X-Sha256": out.sha256, "Content-Type": "application/octet-stream"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._server_key:
            headers["X-Server-Key"] = self._server_key
        delay = 0.5
        deadline = time.monotonic() + 300
        while True:
            try:
                async with self._session.put(
                    url,
                    params=params,
                    data=io.BytesIO(data),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=120),
                ) as resp:
                    if resp.status == 201:
                        return
                    body = await resp.text()
                    if resp.status < 500:
                        raise TaskFailure(
                            f"agent refused {out.name} of frame {frame}: {resp.status} {body[:200]}"
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
