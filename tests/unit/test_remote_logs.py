"""Reading a forwarded job's task log at its remote (:mod:`federation.remote_logs`), with a
fake peer client: what the origin asks, and what each answer becomes. The real route, its
authorization and an unreachable peer are covered end to end by
tests/e2e/test_federation_logs.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from federation.client import PeerRefusedError, PeerUnavailableError
from federation.peers import PeerConfig
from federation.remote_logs import REQUEST_TIMEOUT_S, LogServing, RemoteLogReader
from federation.store import OfferRow
from scheduler.profile import JobProfile
from site_agent.errors import (
    AttemptNotFoundError,
    BadRequestError,
    LogNotFoundError,
    NotFoundError,
    PeerLogUnavailableError,
    TaskNotFoundError,
)
from site_agent.store.records import FileEntry, JobRecord

FACILITY = PeerConfig(name="facility", url="https://127.0.0.1:8843")


def make_job(*, placement: str = "facility", remote_job_id: str | None = "r/1") -> JobRecord:
    return JobRecord(
        id="j1",
        name="shot",
        owner="ana",
        origin_site="studio",
        priority=50,
        profile=JobProfile(package="povray"),
        frames="1-2",
        frame_count=2,
        chunk_size=1,
        scene="scene.pov",
        manifest=(FileEntry(path="scene.pov", sha256="0" * 64, size=12),),
        output_name="shot",
        placement=placement,
        remote_job_id=remote_job_id,
        created_at=1.0,
        updated_at=1.0,
    )


class Peers:
    def peer(self, name: str) -> PeerConfig | None:
        return FACILITY if name == FACILITY.name else None


class FakeClient:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, float]] = []

    async def get_json(self, peer: PeerConfig, path: str, *, timeout_s: float = 15) -> Any:
        self.calls.append((path, timeout_s))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_the_origin_asks_the_remote_job_s_task_with_a_capped_wait() -> None:
    client = FakeClient({"job": "r/1", "task": 1, "text": "$ povray\n"})
    page = await RemoteLogReader(Peers(), client).read_remote(
        make_job(), 1, attempt=2, offset=7, wait=300
    )
    assert page == {"job": "j1", "task": 1, "text": "$ povray\n", "site": "facility"}
    [(path, timeout)] = client.calls
    url = urlsplit(path)
    assert url.path == "/fed/v1/jobs/r%2F1/tasks/1/log"
    assert parse_qs(url.query) == {"attempt": ["2"], "offset": ["7"], "wait": ["30.0"]}
    assert timeout == 30 + REQUEST_TIMEOUT_S


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("task_not_found", TaskNotFoundError),
        ("attempt_not_found", AttemptNotFoundError),
        ("log_not_found", LogNotFoundError),
        ("not_found", LogNotFoundError),
        ("bad_request", BadRequestError),
        ("forbidden", PeerLogUnavailableError),
    ],
)
async def test_a_refusal_of_the_remote_keeps_its_meaning(code: str, error: type[Exception]) -> None:
    refused = PeerRefusedError("facility", 404, code, "task 0 of job r/1 has not run yet")
    reader = RemoteLogReader(Peers(), FakeClient(refused))
    with pytest.raises(error, match="site facility answered .*has not run yet") as caught:
        await reader.read_remote(make_job(), 0, attempt=None, offset=0, wait=0)
    assert type(caught.value) is error


async def test_an_unreachable_remote_is_unavailable_with_a_message() -> None:
    down = PeerUnavailableError("facility", "ClientConnectorError: connection refused")
    reader = RemoteLogReader(Peers(), FakeClient(down))
    with pytest.raises(PeerLogUnavailableError) as caught:
        await reader.read_remote(make_job(), 0, attempt=None, offset=0, wait=5)
    message = str(caught.value)
    assert "kept at site facility, which could not be asked" in message
    assert "connection refused" in message and "will retry" not in message


async def test_a_job_not_yet_at_its_remote_or_at_an_unknown_peer_has_no_log() -> None:
    reader = RemoteLogReader(Peers(), FakeClient({}))
    with pytest.raises(LogNotFoundError, match="has not run yet: the job is on its way"):
        await reader.read_remote(make_job(remote_job_id=None), 0, attempt=None, offset=0, wait=0)
    with pytest.raises(LogNotFoundError, match="no longer a configured peer"):
        await reader.read_remote(make_job(placement="gone"), 0, attempt=None, offset=0, wait=0)


class Owned:
    async def owned_job(self, peer: PeerConfig, job_id: str) -> tuple[OfferRow, JobRecord]:
        if peer.name != "studio":
            raise NotFoundError(f"no job {job_id!r} forwarded by {peer.name}")
        return None, make_job(placement="local")  # type: ignore[return-value]


class Logs:
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    async def answer(self, job_id: str, **kwargs: Any) -> dict[str, Any]:
        self.asked.append({"job_id": job_id, **kwargs})
        return {"job": job_id}


async def test_the_remote_serves_the_origin_only_and_caps_its_wait() -> None:
    logs = Logs()
    serving = LogServing(Owned(), logs)
    studio, outsider = PeerConfig(name="studio", url="x"), PeerConfig(name="outsider", url="y")
    with pytest.raises(NotFoundError, match="forwarded by outsider"):
        await serving.serve(outsider, "j1", "0", {})
    assert logs.asked == []
    await serving.serve(studio, "j1", "3", {"wait": "600", "offset": "9"})
    assert logs.asked == [{"job_id": "j1", "index": 3, "attempt": None, "offset": 9, "wait": 30.0}]
    for index, query in [("x", {}), ("0", {"wait": "nan"}), ("0", {"attempt": "0"})]:
        with pytest.raises(BadRequestError):
            await serving.serve(studio, "j1", index, query)
