"""The requests of the client API, built once for the sync and the async client.

Each function returns a :class:`Call`: the method, the path under ``/api/v1``,
query parameters, the JSON body and how to turn the JSON answer into a typed
record. :class:`~spillway.client.Client` and :class:`~spillway.client.AsyncClient`
run a call with ``client.call(...)``; their named methods are one line each over
these functions. A new endpoint needs one function here and, if it is common,
one method on each client:

    def job_logs(job_id: str, task: int) -> Call[str]:
        return Call("GET", path("jobs", job_id, "tasks", str(task), "log"),
                    parse=lambda body: str(body["log"]))

    text = client.call(api.job_logs("3f2a9c", 4))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

from spillway.client.errors import BadRequest, ClientError, NotFound
from spillway.client.records import Job

# A job's detail and the farm's records load with the first call that answers with them.
if TYPE_CHECKING:
    from spillway.client.detail_records import Frame, JobDetail
    from spillway.client.farm_records import Health, Peer, Server

__all__ = [
    "API",
    "CONTROL_ACTIONS",
    "Call",
    "check_blobs",
    "control",
    "frames",
    "health",
    "job",
    "job_tasks",
    "jobs",
    "parse_reply",
    "path",
    "peers",
    "remove_server",
    "server_control",
    "servers",
    "submit",
    "task_log",
]

API = "/api/v1"
CONTROL_ACTIONS = frozenset({"cancel", "pause", "resume", "retry"})
SERVER_ACTIONS = frozenset({"enable", "disable"})
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the parser of its answer (a JSON object)."""

    method: str
    path: str
    """Under ``/api/v1``, each segment already quoted (see :func:`path`)."""
    parse: Callable[[dict[str, Any]], T]
    params: Mapping[str, str] | None = None
    body: Any = None
    """JSON body; None sends none."""
    wait_s: float = 0.0
    """How long the agent may hold the answer (a long-poll): added to the client's timeout."""


def path(*segments: str) -> str:
    """``/a/b`` with each segment quoted, so an id cannot reach another route."""
    return "".join("/" + quote(s, safe="") for s in segments)


def _raw(body: dict[str, Any]) -> dict[str, Any]:
    return body


def health() -> Call[Health]:
    from spillway.client.farm_records import Health

    return Call("GET", "/health", Health.from_json)


def check_blobs(hashes: list[str]) -> Call[list[str]]:
    """The subset of ``hashes`` the agent's asset store lacks."""
    return Call(
        "POST",
        "/blobs/check",
        lambda b: [str(h) for h in b.get("missing", [])],
        body={"sha256": list(hashes)},
    )


def submit(body: Mapping[str, Any]) -> Call[Job]:
    """Create a job from a body built by :func:`spillway.client.submission.build_job_body`."""
    return Call("POST", "/jobs", lambda b: Job.from_json(b["job"]), body=dict(body))


def jobs(
    state: str | None = None,
    limit: int = 100,
    *,
    offset: int = 0,
    owner: str | None = None,
    package: str | None = None,
    placement: str | None = None,
    search: str | None = None,
    sort: str | None = None,
) -> Call[list[Job]]:
    """One page of jobs, newest first unless ``sort`` says otherwise (the agent's ``sort``
    values, e.g. ``-priority``); each filter is the agent's query parameter of that name
    (``search`` is ``q``: part of a name or id), and the agent rejects bad values."""
    params = {"limit": str(limit)}
    if offset:
        params["offset"] = str(offset)
    named = {"state": state, "owner": owner, "package": package, "placement": placement}
    named |= {"q": search, "sort": sort}
    params |= {key: value for key, value in named.items() if value}
    return Call("GET", "/jobs", lambda b: [Job.from_json(j) for j in b.get("jobs", [])], params)


MAX_WAIT_S = 30.0
"""The longest an agent holds a long-polling answer (``wait``)."""


def job(job_id: str, *, tasks: int | None = None, wait: float = 0.0) -> Call[JobDetail]:
    """A job (its id or a unique prefix) with its first ``tasks`` tasks (agent default 100).
    ``wait`` (at most :data:`MAX_WAIT_S`) long-polls: the agent answers once the job has
    ended, or after that many seconds (an agent that predates it answers at once)."""
    from spillway.client.detail_records import JobDetail

    params = {} if tasks is None else {"tasks": str(tasks)}
    if wait:
        params["wait"] = f"{wait:g}"
    return Call("GET", path("jobs", job_id), JobDetail.from_json, params or None, wait_s=wait)


def job_tasks(
    job_id: str, *, offset: int = 0, limit: int = 100, state: str | None = None
) -> Call[dict[str, Any]]:
    """One page of a job's tasks: ``{"tasks", "frames", "tasks_page"}`` as JSON."""
    params = {"offset": str(offset), "limit": str(limit)}
    if state:
        params["state"] = state
    return Call("GET", path("jobs", job_id, "tasks"), _raw, params)


def control(job_id: str, action: str, *, frames: str | None = None) -> Call[Job]:
    """Cancel, pause, resume or retry a job (``frames``: retry renders those again)."""
    if action not in CONTROL_ACTIONS:
        raise BadRequest(
            f"unknown job action {action!r}; use one of {', '.join(sorted(CONTROL_ACTIONS))}",
            code="bad_action",
        )
    body = None if frames is None else {"frames": frames}
    return Call("POST", path("jobs", job_id, action), lambda b: Job.from_json(b["job"]), body=body)


def set_priority(job_id: str, priority: int) -> Call[Job]:
    """Change an unfinished job's priority (0-100, higher runs first)."""
    body = {"priority": priority}
    return Call(
        "POST", path("jobs", job_id, "priority"), lambda b: Job.from_json(b["job"]), body=body
    )


def server_control(server: str, action: str) -> Call[dict[str, Any]]:
    """Enable or disable a render server; answers ``{"id", "name", "status"}``."""
    if action not in SERVER_ACTIONS:
        raise BadRequest(
            f"unknown server action {action!r}; use enable or disable", code="bad_action"
        )
    return Call("POST", path("servers", server, action), lambda b: dict(b["server"]))


def remove_server(server: str) -> Call[dict[str, Any]]:
    """Forget an offline render server; answers ``{"id", "name", "removed"}``."""
    return Call("DELETE", path("servers", server), lambda b: dict(b["server"]))


def task_log(
    job_id: str,
    *,
    frame: int | None = None,
    task: int | None = None,
    attempt: int | None = None,
    offset: int = 0,
    wait: float = 0.0,
) -> Call[dict[str, Any]]:
    """Part of a task attempt's log from byte ``offset`` (the task holding ``frame``, or task
    ``task``; the latest attempt unless ``attempt``): ``{"text", "next_offset", "complete",
    "state", "error", ...}``. ``wait`` (at most 30 s) long-polls for more."""
    params = {"offset": str(offset), "wait": f"{wait:g}"}
    if attempt is not None:
        params["attempt"] = str(attempt)
    if task is None:
        params["frame"] = str(frame)
        route = path("jobs", job_id, "log")
    else:
        route = path("jobs", job_id, "tasks", str(task), "log")
    return Call("GET", route, _raw, params, wait_s=wait)


def frames(job_id: str) -> Call[list[Frame]]:
    """The rendered frames of a job, each with its sha256, size and url."""
    from spillway.client.detail_records import Frame

    return Call(
        "GET", path("jobs", job_id, "frames"), lambda b: [Frame.from_json(f) for f in b["frames"]]
    )


def servers(job: str | None = None) -> Call[list[Server]]:
    """Render servers; with ``job`` each carries whether it can render that job."""
    from spillway.client.farm_records import Server

    params = {"job": job} if job else None
    return Call(
        "GET", "/servers", lambda b: [Server.from_json(s) for s in b.get("servers", [])], params
    )


def peers() -> Call[list[Peer]]:
    from spillway.client.farm_records import Peer

    return Call("GET", "/peers", lambda b: [Peer.from_json(p) for p in b.get("peers", [])])


def webhooks() -> Call[dict[str, Any]]:
    """The site's webhook endpoints and recent deliveries: ``{"webhooks", "deliveries"}``."""
    return Call("GET", "/webhooks", _raw)


def parse_reply(call: Call[T], body: Any, where: str) -> T:
    """Run the call's parser; an answer not shaped like the API's is a ``bad_reply`` error."""
    if isinstance(body, dict):
        try:
            return call.parse(body)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    raise ClientError(
        f"the agent at {where} sent an unexpected reply for {call.method} {API}{call.path}; "
        f"is {where} really a Spillway agent of this version?",
        code="bad_reply",
    )


JOB_ID_LENGTH = 12
"""Job ids are 12 hex digits; a shorter hex string is taken as a prefix."""
PREFIX_SCAN = 1000
"""Newest jobs searched for an id prefix."""
_HEX = frozenset("0123456789abcdef")


def prefix_candidates(text: str) -> Call[list[str]] | None:
    """The listing that resolves a job id prefix, or None when ``text`` is no prefix."""
    if not text or len(text) >= JOB_ID_LENGTH or not set(text) <= _HEX:
        return None
    return Call(
        "GET",
        "/jobs",
        lambda b: [str(j["id"]) for j in b.get("jobs", [])],
        {"limit": str(PREFIX_SCAN)},
    )


def pick_prefix_match(prefix: str, ids: list[str]) -> str:
    """The one id starting with ``prefix``; a clear error when none or several do."""
    found = sorted({i for i in ids if i.startswith(prefix)})
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(
            f"no job '{prefix}' (no job id starts with it among the newest {PREFIX_SCAN}); "
            "`spillway jobs` lists the jobs of this site",
            code="not_found",
            status=404,
        )
    shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
    raise BadRequest(
        f"'{prefix}' is the start of {len(found)} job ids ({shown}); give more of the id",
        code="ambiguous_id",
        status=400,
    )
