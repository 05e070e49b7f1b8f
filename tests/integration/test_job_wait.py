"""``GET /api/v1/jobs/{id}?wait=S`` on a real aiohttp server over SQLite: the answer is held
until the job ends (woken by the lifecycle's event, not by polling), bad waits are refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from site_agent.appkeys import SITE
from site_agent.lifecycle.events import JobFinished
from site_agent.site import SiteAgent
from site_agent.store.records import JobState
from site_agent.watch import JobWatch
from spillway.client import Client
from tests.integration.test_log_api import AUTH, _app, _job


async def _held(site: SiteAgent) -> None:
    """Until a request holds a watch on a job (it read the job and waits for its end)."""
    while not site.job_watch.watched:
        await asyncio.sleep(0.01)


async def test_a_waiting_request_is_answered_when_the_job_is_cancelled(tmp_path: Path) -> None:
    async with TestClient(TestServer(_app(tmp_path))) as client:
        site: SiteAgent = client.server.app[SITE]
        job_id = await _job(client)
        now = await client.get(f"/api/v1/jobs/{job_id}?wait=0", headers=AUTH)
        assert (await now.json())["job"]["state"] == "queued"  # wait=0: at once, as it is

        waiting = asyncio.create_task(client.get(f"/api/v1/jobs/{job_id}?wait=30", headers=AUTH))
        await asyncio.wait_for(_held(site), 10)
        assert not waiting.done()
        cancel = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=AUTH)
        assert cancel.status == 200, await cancel.text()
        # Well within the 30 s asked for: the cancel's event woke the request.
        answer = await asyncio.wait_for(waiting, 10)
        body = await answer.json()
        assert answer.status == 200 and body["job"]["state"] == "cancelled"
        assert body["tasks_page"]["total"] == 5  # the usual detail
        assert site.job_watch.watched == 0
        # An ended job is answered at once whatever the wait.
        again = await asyncio.wait_for(
            client.get(f"/api/v1/jobs/{job_id}?wait=30", headers=AUTH), 10
        )
        assert (await again.json())["job"]["state"] == "cancelled"


async def test_bad_waits_and_unknown_jobs_are_refused(tmp_path: Path) -> None:
    async with TestClient(TestServer(_app(tmp_path))) as client:
        job_id = await _job(client)
        for wait, message in (
            ("31", "wait must be between 0 and 30 seconds"),
            ("-1", "wait must be between 0 and 30 seconds"),
            ("nan", "wait must be between 0 and 30 seconds"),
            ("soon", "wait must be a number of seconds, not 'soon'"),
        ):
            resp = await client.get(f"/api/v1/jobs/{job_id}?wait={wait}", headers=AUTH)
            assert resp.status == 400
            assert (await resp.json())["error"]["message"] == message
        missing = await client.get("/api/v1/jobs/nope?wait=30", headers=AUTH)
        assert missing.status == 404  # at once: there is nothing to wait for
        anonymous = await client.get(f"/api/v1/jobs/{job_id}?wait=1")
        assert anonymous.status == 401


async def test_the_sync_client_waits_through_a_long_poll(tmp_path: Path) -> None:
    async with TestClient(TestServer(_app(tmp_path))) as client:
        site: SiteAgent = client.server.app[SITE]
        job_id = await _job(client)
        url = str(client.make_url("")).rstrip("/")
        seen: list[str] = []

        def wait() -> Any:
            with Client(url, token="sekrit") as farm:
                return farm.wait(job_id, poll_s=30, on_update=lambda d: seen.append(d.job.state))

        waiter = asyncio.create_task(asyncio.to_thread(wait))
        await asyncio.wait_for(_held(site), 10)
        await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=AUTH)
        job = await asyncio.wait_for(waiter, 10)
        assert job.state == "cancelled" and seen == ["cancelled"]  # one held request


async def test_a_finished_job_wakes_only_its_own_watch() -> None:
    watch = JobWatch()
    with watch.watch("a") as a, watch.watch("b") as b:
        await watch.on_event(JobFinished(job_id="a", state=JobState.DONE))
        assert a.is_set() and not b.is_set()
    assert watch.watched == 0
