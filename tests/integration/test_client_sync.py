"""The synchronous client (``spillway.client.Client``) and the typed AsyncClient against the
real agent web app over SQLite, and its /metrics parsed as Prometheus reads it.

The sync client blocks, so each call runs in a worker thread while the agent
serves on this test's event loop.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from site_agent.app import build_app
from site_agent.config import parse_config
from spillway.client import AsyncClient, Client, Job, JobDetail, JobState, NotFound, SubmitOptions
from spillway.client.errors import BadRequest, Conflict
from spillway.main import main
from webhooks.service import attach_webhooks

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


async def off_loop(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    folder = tmp_path / "shot"
    shutil.copytree(ROOT / "examples" / "textured", folder)
    return folder / "scene.json"


def url_of(agent_client: TestClient[Any, Any]) -> str:
    return str(agent_client.make_url("")).rstrip("/")


QUEUED = SubmitOptions(package="builtin", frames="1-3", queue_anyway=True, owner="ana")


async def test_submit_follow_and_control_a_job_with_typed_records(
    agent_client: TestClient[Any, Any], scene: Path
) -> None:
    with Client(url_of(agent_client)) as farm:
        assert (await off_loop(farm.health)).site == "studio"
        submitted = await off_loop(lambda: farm.submit_scene(scene, QUEUED))
        assert submitted.uploaded_files == len(submitted.manifest.entries) > 1  # scene + textures
        again = await off_loop(lambda: farm.submit_scene(scene, QUEUED))
        assert again.uploaded_files == 0  # every blob is at the agent already
        job = submitted.job
        assert isinstance(job, Job) and job.state is JobState.QUEUED and job.frame_count == 3
        detail = await off_loop(lambda: farm.job(job.id))
        assert isinstance(detail, JobDetail) and len(detail.tasks) == 3
        assert [f.frame for f in detail.frames] == [1, 2, 3]
        assert {j.id for j in await off_loop(farm.jobs)} == {job.id, again.job.id}
        paused = await off_loop(lambda: farm.pause(job.id))
        assert paused.state is JobState.PAUSED
        with pytest.raises(Conflict) as conflict:
            await off_loop(lambda: farm.resume(again.job.id))  # queued, not paused
        assert conflict.value.status == 409
        assert (await off_loop(lambda: farm.cancel(job.id))).state is JobState.CANCELLED
        with pytest.raises(NotFound, match="no job 'nope'"):
            await off_loop(lambda: farm.job("nope"))


async def test_job_id_prefixes_resolve_when_unique(
    agent_client: TestClient[Any, Any], scene: Path
) -> None:
    with Client(url_of(agent_client)) as farm:
        # 17 jobs: two of them must share their first hex digit.
        ids = [(await off_loop(lambda: farm.submit_scene(scene, QUEUED))).job.id for _ in range(17)]
        for job_id in ids:
            unique = next(
                job_id[:n] for n in range(1, 13) if sum(i.startswith(job_id[:n]) for i in ids) == 1
            )
            assert await off_loop(lambda p=unique: farm.resolve_job_id(p)) == job_id
        shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
        with pytest.raises(BadRequest, match=f"'{shared}' is the start of"):
            await off_loop(lambda: farm.resolve_job_id(shared))


def unique_prefix(job_id: str, ids: list[str]) -> str:
    return next(job_id[:n] for n in range(1, 13) if sum(i.startswith(job_id[:n]) for i in ids) == 1)


async def test_submit_after_takes_job_id_prefixes_like_every_command(
    agent_client: TestClient[Any, Any], scene: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = url_of(agent_client)
    with Client(url) as farm:
        # 17 jobs: two of them must share their first hex digit.
        ids = [(await off_loop(lambda: farm.submit_scene(scene, QUEUED))).job.id for _ in range(17)]
        render, plates = ids[0], ids[1]
        submit = ["submit", str(scene), "--package", "builtin", "--frames", "1-3", "--agent", url]
        argv = [*submit, "--queue-anyway", "--after", unique_prefix(render, ids)]
        argv += ["--after-frames", unique_prefix(plates, ids)]
        assert await off_loop(lambda: main(argv)) == 0
        comp = capsys.readouterr().out.strip()
        detail = await off_loop(lambda: farm.job(comp))
        edges = sorted((a["job_id"], a["kind"]) for a in detail.raw["job"]["after"])
        assert edges == sorted([(render, "done"), (plates, "frames")])

        shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
        for option in ("--after", "--after-frames"):
            argv = [*submit, "--queue-anyway", option, shared]
            assert await off_loop(lambda a=argv: main(a)) == 2
            err = capsys.readouterr().err
            assert f"'{shared}' is the start of" in err and "give more of the id" in err
        assert len(await off_loop(lambda: farm.jobs(limit=100))) == 18  # nothing submitted


async def test_parallel_uploads_arrive_whole_and_unrendered_frames_are_not_found(
    agent_client: TestClient[Any, Any], scene: Path, tmp_path: Path
) -> None:
    big = scene.parent / "big.bin"
    big.write_bytes(bytes(range(256)) * 20_000)  # 5 MB, several chunks
    options = SubmitOptions(package="builtin", frames="1", queue_anyway=True)
    with Client(url_of(agent_client)) as farm:
        submitted = await off_loop(lambda: farm.submit_scene(scene, options, assets=[big]))
        assert submitted.uploaded_bytes == sum(e.size for e in submitted.manifest.entries)
        missing = await off_loop(
            lambda: farm.check_blobs([e.sha256 for e in submitted.manifest.entries])
        )
        assert missing == []
        with pytest.raises(NotFound, match="not rendered yet"):
            await off_loop(lambda: farm.download_frame(submitted.job.id, 1, tmp_path / "f.png"))
    assert not (tmp_path / "f.png").exists()


async def test_the_async_client_returns_the_same_records(
    agent_client: TestClient[Any, Any], scene: Path
) -> None:
    async with AsyncClient(url_of(agent_client)) as farm:
        submitted = await farm.submit_scene(scene, QUEUED)
        assert (await farm.job(submitted.job.id)).job.id == submitted.job.id
        assert await farm.resolve_job_id(submitted.job.id[:11]) == submitted.job.id
        assert [j.id for j in await farm.jobs(state="queued")] == [submitted.job.id]
        with pytest.raises(NotFound):
            await farm.job("nope")


async def test_webhook_status_through_the_clients_and_the_cli(
    tmp_path: Path, scene: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_config(
        {
            "name": "studio",
            "storage": str(tmp_path / "storage"),
            "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
            # Nothing listens on port 9: the delivery stays pending.
            "webhooks": [{"name": "ci", "url": "http://127.0.0.1:9/hook", "secret": "s" * 16}],
        },
        source="test",
        base_dir=tmp_path,
    )
    async with TestClient(TestServer(build_app(config, [attach_webhooks]))) as agent:
        url = url_of(agent)
        with Client(url) as farm:
            job = (await off_loop(lambda: farm.submit_scene(scene, QUEUED))).job
            status = await off_loop(farm.webhooks)
        [endpoint] = status["webhooks"]
        assert endpoint["name"] == "ci" and endpoint["deliveries"]["pending"] == 1
        assert [(d["event"], d["job_id"]) for d in status["deliveries"]] == [
            ("job.submitted", job.id)
        ]
        async with AsyncClient(url) as aio:
            assert (await aio.webhooks())["webhooks"] == status["webhooks"]
        assert await off_loop(lambda: main(["webhooks", "--agent", url])) == 0
        shown = capsys.readouterr().out
        assert "http://127.0.0.1:9/hook" in shown and job.id in shown


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_parse_and_count_jobs(
    agent_client: TestClient[Any, Any], scene: Path
) -> None:
    resp = await agent_client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    before = samples(await resp.text())
    assert before[("spillway_jobs_created_total", ())] == 0
    assert before[("spillway_jobs", (("state", "queued"),))] == 0
    assert before[("spillway_free_slots", ())] == 0
    assert ("spillway_federation_outbox_depth", ()) not in before  # no federation here
    with Client(url_of(agent_client)) as farm:
        await off_loop(lambda: farm.submit_scene(scene, QUEUED))
    after = samples(await (await agent_client.get("/metrics")).text())
    assert after[("spillway_jobs_created_total", ())] == 1
    assert after[("spillway_jobs", (("state", "queued"),))] == 1
