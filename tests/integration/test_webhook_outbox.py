"""Webhook deliveries are written in the transaction of the transition they announce, on
SQLite and PostgreSQL: a committed transition always has its rows, a rolled-back one none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from test_store_contract import claim_of, make_job

from scheduler.dependencies import DependencyKind
from site_agent.config import parse_config
from site_agent.lifecycle import (
    Event,
    JobCancelled,
    JobCreated,
    JobFinished,
    JobsReleased,
)
from site_agent.site import SiteAgent
from site_agent.store import CompletionReport, JobState, Store
from site_agent.store.base import JobTransaction
from webhooks.service import attach_webhooks

PEER = "paris"


class Crash(Exception):
    """Stands for the agent dying between a transition's commit and its subscribers."""


@pytest.fixture
async def site(store: Store, tmp_path: Path) -> AsyncIterator[SiteAgent]:
    """A site over ``store`` with one webhook endpoint that accepts nothing (port 9): every
    delivery stays pending, so the table shows exactly what the transitions wrote."""
    config = parse_config(
        {
            "name": "studio",
            "storage": str(tmp_path / "storage"),
            "webhooks": [{"url": "http://127.0.0.1:9/hook", "secret": "s" * 16}],
        },
        source="test",
        base_dir=tmp_path,
    )
    agent = SiteAgent(config, store)
    try:
        yield agent
    finally:
        await agent.lifecycle.close()
        if agent.webhooks is not None:
            await agent.webhooks.close()


async def deliveries(site: SiteAgent) -> list[tuple[str, str]]:
    assert site.webhooks is not None
    status = await site.webhooks.status_json()
    return sorted((d["event"], d["job_id"]) for d in status["deliveries"])


async def crash(event: Event) -> None:
    raise Crash(type(event).__name__)


async def test_a_committed_transition_has_its_deliveries_though_nothing_ran_after_it(
    site: SiteAgent,
) -> None:
    # Subscribed first: the agent "dies" after each commit, before any other subscriber.
    site.lifecycle.subscribe(crash, (JobCreated, JobFinished, JobsReleased, JobCancelled))
    await attach_webhooks(web.Application(), site)
    lifecycle = site.lifecycle

    with pytest.raises(Crash):
        await lifecycle.create(make_job("render"), [(1,)])
    with pytest.raises(Crash):  # placed at a peer, forwarded once render is done
        await lifecycle.create(
            make_job("comp", placement=PEER), [(1,)], after=[("render", DependencyKind.DONE)]
        )
    [task] = await site.store.list_tasks("render")
    await lifecycle.assign([claim_of(task)], at=10.0)
    report = CompletionReport(task_id=task.id, attempt=1, server_id="s1", job_id="render", at=20.0)
    with pytest.raises(Crash):
        await lifecycle.complete(report)
    with pytest.raises(Crash):
        await lifecycle.create(make_job("extra"), [(1,)])
    with pytest.raises(Crash):
        await lifecycle.cancel("extra", at=30.0)

    render = await site.store.get_job("render")
    assert render is not None and render.state is JobState.DONE
    assert await deliveries(site) == [
        ("job.cancelled", "extra"),
        ("job.done", "render"),
        ("job.forwarded", "comp"),
        ("job.started", "render"),
        ("job.submitted", "comp"),
        ("job.submitted", "extra"),
        ("job.submitted", "render"),
    ]


async def test_a_rolled_back_transition_enqueues_nothing(site: SiteAgent) -> None:
    await attach_webhooks(web.Application(), site)

    async def refuse(tx: JobTransaction, event: Event) -> None:
        raise Crash(f"{type(event).__name__} refused in the transaction")

    async def failing_hook(conn: object) -> None:
        raise Crash("the forward record could not be written")

    await site.lifecycle.create(make_job("remote", placement=PEER), [(1,)])
    job = await site.store.get_job("remote")
    assert job is not None
    with pytest.raises(Crash):
        await site.lifecycle.finish_forwarded_job(
            "remote",
            epoch=job.placement_epoch,
            state=JobState.DONE,
            frames=(),
            error="",
            at=40.0,
            hook=failing_hook,
        )
    site.lifecycle.record(refuse, (JobCreated,))  # recorded after the webhooks' recorder
    with pytest.raises(Crash):
        await site.lifecycle.create(make_job("never"), [(1,)])

    assert await site.store.get_job("never") is None
    still = await site.store.get_job("remote")
    assert still is not None and still.state is JobState.QUEUED
    assert await deliveries(site) == [("job.forwarded", "remote"), ("job.submitted", "remote")]
