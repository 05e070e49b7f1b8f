"""The asyncio transport to a site agent's client API (``/api/v1/``), over aiohttp.

:class:`AgentClient` answers plain JSON dicts; :class:`spillway.client.AsyncClient`
gives typed records over it, and :class:`spillway.client.Client` is the synchronous
client (standard library only) that the CLI uses.  Every call has
a timeout; every failure surfaces as a :class:`ClientError` whose message says
what happened and what to do, so callers can print it verbatim.

    async with AgentClient("http://127.0.0.1:8700", token=None) as agent:
        print(await agent.health())
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from spillway.client.api import Call, parse_reply
from spillway.client.api import job as job_call
from spillway.client.errors import (
    BadRequest,
    ClientError,
    ConnectionLost,
    HashMismatch,
    NotFound,
    SpillwayClientError,
    Timeout,
    Unreachable,
    error_for_status,
)
from spillway.client.localfiles import file_mode, place, temp_beside

# aiohttp is imported where a request is made, not here: `spillway --help` and commands
# refused for bad arguments start in ~0.1 s instead of ~0.25 s (its import is most of that).
if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "CONTROL_ACTIONS",
    "AgentClient",
    "ClientError",
    "SpillwayClientError",
]

T = TypeVar("T")
API = "/api/v1"
CONTROL_ACTIONS = frozenset({"cancel", "pause", "resume", "retry"})
# Uploads get a total deadline that grows with the file size, assuming at least
# this throughput to the agent, so a large scene is not cut off by the 30 s default.
_MIN_UPLOAD_RATE = 256 * 1024  # bytes per second
_CHUNK = 1024 * 1024


class AgentClient:
    """One session with a site agent; use as ``async with AgentClient(url) as c``."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AgentClient:
        import aiohttp  # on first use: commands that fail early never load it

        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def call(self, call: Call[T]) -> T:
        """Run one request of :mod:`spillway.client.api`; returns its typed answer."""
        extra = self._timeout(call)
        body = await self._json(call.method, call.path, params=call.params, json=call.body, **extra)
        return parse_reply(call, body, self.url)

    def _timeout(self, call: Call[Any]) -> dict[str, Any]:
        """A long poll's timeout: the agent may hold the answer ``call.wait_s`` longer."""
        if not call.wait_s:
            return {}
        import aiohttp

        return {"timeout": aiohttp.ClientTimeout(total=self.timeout_s + call.wait_s)}

    # --- endpoints --------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``{"site", "version"}`` of the agent."""
        return await self._json("GET", "/health")

    async def check_blobs(self, hashes: list[str]) -> list[str]:
        """The subset of ``hashes`` the agent's asset store does not hold yet."""
        if not hashes:
            return []
        body = await self._json("POST", "/blobs/check", json={"sha256": list(hashes)})
        return list(body.get("missing", []))

    async def upload_blob(self, path: Path, sha256: str) -> dict[str, Any]:
        """Stream one file to the asset store; the agent verifies the hash (422 if not)."""
        import aiohttp  # on first use: commands that fail early never load it

        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            timeout = aiohttp.ClientTimeout(
                total=self.timeout_s + size / _MIN_UPLOAD_RATE, sock_connect=self.timeout_s
            )
            return await self._json(
                "PUT",
                f"/blobs/{quote(sha256)}",
                data=stream,
                headers={"Content-Type": "application/octet-stream"},
                timeout=timeout,
            )

    async def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a job; returns the JOB record.  422 ``missing_assets`` lists absent blobs."""
        reply = await self._json("POST", "/jobs", json=dict(body))
        return dict(reply["job"])

    async def jobs(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Jobs, newest first, optionally only those in ``state``."""
        params: dict[str, str] = {"limit": str(limit)}
        if state:
            params["state"] = state
        reply = await self._json("GET", "/jobs", params=params)
        return list(reply.get("jobs", []))

    async def job(
        self, job_id: str, *, tasks: int | None = None, wait: float = 0.0
    ) -> dict[str, Any]:
        """``{"job": JOB, "tasks": [TASK...], "frames": [FRAME...], "tasks_page": PAGE}``.

        Only the first ``tasks`` tasks (the agent's default, 100, if None) and their
        frames; ``PAGE`` is ``{offset, limit, total, next_offset}``. ``wait`` long-polls
        as :func:`spillway.client.api.job` says.
        """
        call = job_call(job_id, tasks=tasks, wait=wait)
        return await self._json("GET", call.path, params=call.params, **self._timeout(call))

    async def job_tasks(
        self, job_id: str, *, offset: int = 0, limit: int = 100, state: str | None = None
    ) -> dict[str, Any]:
        """One page: ``{"tasks": [TASK...], "frames": [FRAME...], "tasks_page": PAGE}``."""
        params = {"offset": str(offset), "limit": str(limit)}
        if state:
            params["state"] = state
        return await self._json("GET", f"/jobs/{quote(job_id, safe='')}/tasks", params=params)

    async def task_log(
        self,
        job_id: str,
        *,
        frame: int | None = None,
        task: int | None = None,
        attempt: int | None = None,
        offset: int = 0,
        wait: float = 0.0,
    ) -> dict[str, Any]:
        """Part of a task attempt's log from byte ``offset`` (the task holding ``frame``, or
        task ``task``; the latest attempt unless ``attempt``): ``{"text", "next_offset",
        "complete", "state", "error", ...}``. ``wait`` (at most 30 s) long-polls for more."""
        import aiohttp  # on first use: commands that fail early never load it

        params = {"offset": str(offset), "wait": f"{wait:g}"}
        if attempt is not None:
            params["attempt"] = str(attempt)
        path = f"/jobs/{quote(job_id, safe='')}"
        if task is None:
            params["frame"] = str(frame)
            path += "/log"
        else:
            path += f"/tasks/{task}/log"
        timeout = aiohttp.ClientTimeout(total=self.timeout_s + wait)
        return await self._json("GET", path, params=params, timeout=timeout)

    async def control(
        self, job_id: str, action: str, *, frames: str | None = None
    ) -> dict[str, Any]:
        """Cancel, pause, resume or retry a job; returns the updated JOB record.

        ``frames`` (retry only) renders those frames again, done or failed.
        """
        if action not in CONTROL_ACTIONS:
            raise BadRequest(
                f"unknown job action {action!r}; use one of {', '.join(sorted(CONTROL_ACTIONS))}",
                code="bad_action",
            )
        body = None if frames is None else {"frames": frames}
        reply = await self._json("POST", f"/jobs/{quote(job_id, safe='')}/{action}", json=body)
        return dict(reply["job"])

    async def server_control(self, server: str, action: str) -> dict[str, Any]:
        """Enable or disable a render server (by name or id); returns ``{"id", "name", "status"}``."""
        if action not in ("enable", "disable"):
            raise BadRequest(
                f"unknown server action {action!r}; use enable or disable", code="bad_action"
            )
        reply = await self._json("POST", f"/servers/{quote(server, safe='')}/{action}")
        return dict(reply["server"])

    async def remove_server(self, server: str) -> dict[str, Any]:
        """Forget an offline render server (by name or id); returns ``{"id", "name", "removed"}``."""
        reply = await self._json("DELETE", f"/servers/{quote(server, safe='')}")
        return dict(reply["server"])

    async def frames(self, job_id: str) -> list[dict[str, Any]]:
        """Rendered frames of a job: ``[{"frame", "name", "sha256", "size", "url", "files",
        "preview_url"}]`` (``files``: every file of the frame, ``{"name", "kind", "sha256",
        "size", "url"}``)."""
        reply = await self._json("GET", f"/jobs/{quote(job_id, safe='')}/frames")
        return list(reply.get("frames", []))

    async def servers(self, job: str | None = None) -> list[dict[str, Any]]:
        """Render servers; with ``job`` each carries ``match: {"ok", "reasons"}``."""
        params = {"job": job} if job else None
        reply = await self._json("GET", "/servers", params=params)
        return list(reply.get("servers", []))

    async def peers(self) -> list[dict[str, Any]]:
        """Federation peers with their state and last capacity advertisement."""
        reply = await self._json("GET", "/peers")
        return list(reply.get("peers", []))

    async def download_frame(
        self,
        job_id: str,
        frame: int,
        dest: Path,
        *,
        sha256: str | None = None,
        replace: bool = True,
        name: str | None = None,
    ) -> int:
        """Download one rendered frame (its main file, or its file ``name`` as the frame
        list names it) to ``dest`` atomically; return its size in bytes.

        The bytes are hashed while streaming and compared with ``sha256`` (looked
        up with :meth:`frames` when not given); on a mismatch nothing is written
        (``code="hash_mismatch"``). The file gets the stored file's permission bits
        (the agent's ``X-File-Mode``), filtered by the umask as ``cp`` does. An agent
        that finds its stored copy gone or damaged answers ``frame_missing`` or
        ``frame_corrupt`` (raised as :class:`ClientError` with that ``code``). With
        ``replace=False`` an existing ``dest`` is never replaced, even one that
        appeared during the download (``code="exists"``).
        """
        import aiohttp  # on first use: commands that fail early never load it

        if sha256 is None:
            sha256 = await self._recorded_sha256(job_id, frame)
        path = f"/jobs/{quote(job_id, safe='')}/frames/{int(frame)}"
        if name is not None:
            path += f"/files/{quote(name)}"
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout_s, sock_read=self.timeout_s
        )
        async with self._request("GET", path, timeout=timeout) as resp:
            await self._raise_for_status(resp, "GET", path)
            fd, tmp = temp_beside(dest, file_mode(resp.headers.get("X-File-Mode")))
            try:
                with os.fdopen(fd, "wb") as out:
                    digest, size = await self._copy_body(resp, out)
                if digest != sha256:
                    raise HashMismatch(
                        f"frame {frame} of job {job_id} arrived corrupted (sha256 "
                        f"{digest[:12]}..., expected {sha256[:12]}...); nothing was written",
                        code="hash_mismatch",
                    )
                place(Path(tmp), dest, replace=replace)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return size

    async def _recorded_sha256(self, job_id: str, frame: int) -> str:
        listed = {int(f["frame"]): f for f in await self.frames(job_id)}
        if frame not in listed:
            raise NotFound(
                f"frame {frame} of job {job_id} is not rendered yet; see `spillway job {job_id}`",
                code="not_found",
                status=404,
            )
        return str(listed[frame]["sha256"])

    # --- plumbing ---------------------------------------------------------------------

    async def _copy_body(self, resp: aiohttp.ClientResponse, out: Any) -> tuple[str, int]:
        import aiohttp  # on first use: commands that fail early never load it

        hasher = hashlib.sha256()
        size = 0
        try:
            async for chunk in resp.content.iter_chunked(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
        except aiohttp.ClientPayloadError as err:
            raise self._lost(err) from err
        return hasher.hexdigest(), size

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with self._request(method, path, **kwargs) as resp:
            await self._raise_for_status(resp, method, path)
            try:
                body = await resp.json(content_type=None)
            except ValueError as err:
                raise ClientError(
                    f"the agent at {self.url} sent a reply that is not JSON for {method} "
                    f"{API}{path}; is {self.url} really a Spillway agent?",
                    code="bad_reply",
                    status=resp.status,
                ) from err
        if not isinstance(body, dict):
            raise ClientError(
                f"the agent at {self.url} sent an unexpected reply for {method} {API}{path}",
                code="bad_reply",
                status=resp.status,
            )
        return body

    @contextlib.asynccontextmanager
    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import aiohttp  # on first use: commands that fail early never load it

        if self._session is None:
            raise ClientError(
                "AgentClient is not open; use `async with AgentClient(url) as client:`",
                code="not_open",
            )
        try:
            async with self._session.request(method, f"{self.url}{API}{path}", **kwargs) as resp:
                yield resp
        except aiohttp.ClientConnectorError as err:
            raise self._unreachable(err) from err
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as err:
            raise self._lost(err) from err
        except aiohttp.InvalidURL as err:
            raise Unreachable(
                f"bad agent URL {self.url!r}; use a URL like http://127.0.0.1:8700",
                code="bad_url",
            ) from err
        except TimeoutError as err:
            raise Timeout(
                f"the agent at {self.url} did not answer {method} {API}{path} in time "
                f"({self.timeout_s:g} s); check that it is running and not overloaded",
                code="timeout",
            ) from err

    def _unreachable(self, err: aiohttp.ClientConnectorError) -> ClientError:
        if isinstance(err.os_error, ConnectionRefusedError):
            reason = "connection refused"
        else:
            reason = err.os_error.strerror or str(err.os_error) or type(err.os_error).__name__
        return Unreachable(
            f"cannot reach the agent at {self.url}: {reason}; is `spillway agent` running? "
            "(set --agent or SPILLWAY_AGENT)",
            code="unreachable",
        )

    def _lost(self, err: Exception) -> ClientError:
        return ConnectionLost(
            f"the connection to the agent at {self.url} was lost ({err}); try again",
            code="connection_lost",
        )

    async def _raise_for_status(self, resp: aiohttp.ClientResponse, method: str, path: str) -> None:
        import aiohttp  # on first use: commands that fail early never load it

        if resp.status < 400:
            return
        error: dict[str, Any] = {}
        with contextlib.suppress(ValueError, aiohttp.ClientError):
            body = await resp.json(content_type=None)
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                error = body["error"]
        code = str(error.get("code") or f"http_{resp.status}")
        message = str(error.get("message") or "")
        if not message:
            message = (
                f"the agent answered HTTP {resp.status} {resp.reason or ''} to {method} {API}{path}"
            )
            message = message.replace("  ", " ")
        if resp.status == 401 and "token" not in message.lower():
            message += "; pass --token or set SPILLWAY_TOKEN"
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        raise error_for_status(resp.status, code, message, details)
