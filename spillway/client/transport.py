"""The standard library HTTP transport of :class:`spillway.client.Client`.

One keep-alive HTTP/1.1 connection per thread (:mod:`spillway.client.http1`,
over ``socket``: ``http.client`` would load the ``email`` package), a bearer
token, JSON in and out, streaming bodies; every failure becomes a
:mod:`spillway.client.errors` class whose message says what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from spillway.client.api import API
from spillway.client.errors import (
    ApiError,
    ClientError,
    ConnectionLost,
    HashMismatch,
    Timeout,
    Unreachable,
    error_for_status,
)
from spillway.client.localfiles import file_mode, place, temp_beside

if TYPE_CHECKING:
    from spillway.client.http1 import Connection, Response

__all__ = ["FrameSink", "Transport"]

CHUNK = 1024 * 1024
# A connection idle longer than this is replaced before use: the agent may have
# closed it meanwhile (aiohttp's keep-alive timeout is 75 s), and a request that
# is not safe to repeat (a submit) must not be sent on a dead one.
_IDLE_S = 30.0
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})


class _Connection:
    """One keep-alive HTTP connection and when it was last used."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.used_at = time.monotonic()
        self.requests = 0

    def set_timeout(self, timeout_s: float) -> None:
        """Use this socket timeout from the next request on."""
        self.conn.set_timeout(timeout_s)


class Transport:
    """Requests to one agent's ``/api/v1``; safe to share between threads."""

    def __init__(self, url: str, token: str | None, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout_s = timeout_s
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unreachable(
                f"bad agent URL {url!r}; use a URL like http://127.0.0.1:8700", code="bad_url"
            )
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port
        except ValueError:
            raise Unreachable(
                f"bad agent URL {url!r}; use a URL like http://127.0.0.1:8700", code="bad_url"
            ) from None
        self._prefix = parts.path.rstrip("/") + API
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[_Connection] = []

    def close(self) -> None:
        """Close every connection (idempotent); the client reconnects if used again."""
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            c.conn.close()
        self._local = threading.local()

    def _connection(self) -> _Connection:
        from spillway.client.http1 import Connection, ascii_connect

        current: _Connection | None = getattr(self._local, "conn", None)
        if current is not None and time.monotonic() - current.used_at > _IDLE_S:
            current.conn.close()
            current = None
        if current is None:
            conn = Connection(
                self._host,
                self._port,
                https=self._https,
                timeout=self.timeout_s,
                connect=ascii_connect,
            )
            current = _Connection(conn)
            self._local.conn = current
            with self._lock:
                self._all.append(current)
        return current

    def _drop(self, current: _Connection) -> None:
        current.conn.close()
        self._local.conn = None
        with self._lock:
            if current in self._all:
                self._all.remove(current)

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "spillway-client"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def exchange(
        self,
        method: str,
        route: str,
        params: Mapping[str, str] | None,
        body: Any,
        *,
        stream: IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        sink: FrameSink | None = None,
        wait_s: float = 0.0,
    ) -> tuple[int, Any]:
        """Send one request and read its answer; one retry when a reused connection was dead.

        ``wait_s``: the agent may hold the answer that long (a long-poll), on top of the
        timeout."""
        from spillway.client.http1 import RemoteDisconnected

        target = self._prefix + route + (f"?{urlencode(params)}" if params else "")
        data: bytes | IO[bytes] | None = stream
        hdrs = self._headers(headers)
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in (1, 2):
            current = self._connection()
            current.set_timeout(self.timeout_s + wait_s)
            reused = current.requests > 0
            try:
                return self._once(current, method, target, data, hdrs, sink)
            except (RemoteDisconnected, ConnectionResetError, BrokenPipeError) as err:
                self._drop(current)
                can_retry = reused and method in _IDEMPOTENT and stream is None and sink is None
                if attempt == 2 or not can_retry:
                    raise self._lost(err) from err
            except ApiError:
                raise  # the answer was read whole: the connection stays usable
            except BaseException:
                self._drop(current)
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def _once(
        self,
        current: _Connection,
        method: str,
        target: str,
        data: bytes | IO[bytes] | None,
        headers: dict[str, str],
        sink: FrameSink | None,
    ) -> tuple[int, Any]:
        import socket

        from spillway.client.http1 import BadResponse

        current.requests += 1
        try:
            current.conn.request(method, target, body=data, headers=headers)
            resp = current.conn.getresponse(method)
            if resp.status < 400 and sink is not None:
                sink.fill(resp)
                payload = b""
            else:
                payload = resp.read()
        except (ConnectionRefusedError, socket.gaierror) as err:
            raise self._unreachable(err) from err
        except TimeoutError as err:
            raise Timeout(
                f"the agent at {self.url} did not answer {method} {target.split('?')[0]} in time "
                f"({self.timeout_s:g} s); check that it is running and not overloaded",
                code="timeout",
            ) from err
        except (ConnectionResetError, BrokenPipeError):
            raise  # exchange() decides whether to send again
        except (OSError, BadResponse) as err:
            if isinstance(err, OSError) and current.requests == 1 and not _sent(err):
                raise self._unreachable(err) from err
            raise self._lost(err) from err
        current.used_at = time.monotonic()
        if resp.will_close:
            self._drop(current)
        if resp.status >= 400:
            raise self._api_error(resp, payload, method, target.split("?")[0])
        if sink is not None:
            return resp.status, None
        return resp.status, self._decode(payload, method, target.split("?")[0])

    def _decode(self, payload: bytes, method: str, route: str) -> Any:
        try:
            return json.loads(payload) if payload else {}
        except ValueError as err:
            raise ClientError(
                f"the agent at {self.url} sent a reply that is not JSON for {method} {route}; "
                f"is {self.url} really a Spillway agent?",
                code="bad_reply",
            ) from err

    def _api_error(self, resp: Response, payload: bytes, method: str, route: str) -> ClientError:
        error: dict[str, Any] = {}
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
        code = str(error.get("code") or f"http_{resp.status}")
        message = str(error.get("message") or "")
        if not message:
            message = (
                f"the agent answered HTTP {resp.status} {resp.reason or ''} to {method} {route}"
            )
            message = message.replace("  ", " ").rstrip()
        if resp.status == 401 and "token" not in message.lower():
            message += "; pass --token or set SPILLWAY_TOKEN"
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        return error_for_status(resp.status, code, message, details)

    def _unreachable(self, err: OSError) -> ClientError:
        if isinstance(err, ConnectionRefusedError):
            reason = "connection refused"
        else:
            reason = err.strerror or str(err) or type(err).__name__
        return Unreachable(
            f"cannot reach the agent at {self.url}: {reason}; is `spillway agent` running? "
            "(set --agent or SPILLWAY_AGENT)",
            code="unreachable",
        )

    def _lost(self, err: BaseException) -> ClientError:
        return ConnectionLost(
            f"the connection to the agent at {self.url} was lost ({err or type(err).__name__}); "
            "try again",
            code="connection_lost",
        )


def _sent(err: OSError) -> bool:
    """Whether an OSError is one of a connection that was made (vs. never established)."""
    return isinstance(err, ConnectionError)


class FrameSink:
    """Streams a response into a temp file beside ``dest``, hashing on the way."""

    def __init__(self, dest: Path, *, replace: bool) -> None:
        self.dest = dest
        self.replace = replace
        self.tmp: str | None = None
        self.digest = ""
        self.size = 0

    def fill(self, resp: Response) -> None:
        import hashlib  # only a download needs it

        fd, self.tmp = temp_beside(self.dest, file_mode(resp.getheader("X-File-Mode")))
        hasher = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := resp.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    self.size += len(chunk)
        except BaseException:
            self._discard()
            raise
        self.digest = hasher.hexdigest()

    def finish(self, sha256: str, what: str) -> int:
        """Give the file its name if the bytes hash as recorded; else remove it and raise."""
        try:
            if self.tmp is None:
                raise ClientError(f"{what}: the agent sent no body", code="bad_reply")
            if self.digest != sha256:
                raise HashMismatch(
                    f"{what} arrived corrupted (sha256 {self.digest[:12]}..., expected "
                    f"{sha256[:12]}...); nothing was written",
                    code="hash_mismatch",
                )
            place(Path(self.tmp), self.dest, replace=self.replace)
        finally:
            self._discard()
        return self.size

    def _discard(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
