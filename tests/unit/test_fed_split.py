"""Split jobs at the origin: placement keeps them here (``--split``, ``[federation] split``).

Runs :class:`federation.placing.Placer` against the in-memory fakes of ``test_fed_roles.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_fed_roles import FakeJobs, FakePeers, FakeRows, FakeSite, fed_config, make_job, server

from federation.errors import FederationConfigError
from federation.peers import PeerConfig, parse_federation
from federation.placing import SPLIT_REASON, Placer
from scheduler.ranking import PeerCapacity
from site_agent.store.records import LOCAL, JobRecord

A = PeerConfig(name="facility-a", url="https://a:8743")
FREE_A = PeerCapacity(name="facility-a", servers=(server("fa-1", free=2),), queue_depth=0)


def placer(tmp_path: Path, job: JobRecord, *, local: bool, split: bool, waiting: int) -> Placer:
    jobs = FakeJobs(job)
    jobs.waiting = waiting
    config = dataclasses.replace(fed_config(A), overflow_after_s=10.0, split=split)
    site = FakeSite(tmp_path, *([server("s1", free=0)] if local else []))
    return Placer(
        name="studio",
        config=config,
        jobs=jobs,
        forwards=FakeRows(),
        peers=FakePeers(FREE_A),
        views=site,
        offers=None,
    )


async def test_split_on_submit_keeps_the_job_here(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True)
    placed = await placer(tmp_path, job, local=True, split=False, waiting=0).place(job, None)
    assert (placed.placement, placed.split) == (LOCAL, True)
    assert placed.placement_reason.startswith(SPLIT_REASON)


async def test_a_split_job_nothing_here_can_run_is_forwarded_whole(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True)
    placed = await placer(tmp_path, job, local=False, split=False, waiting=0).place(job, None)
    assert placed.placement == "facility-a"


async def test_a_split_job_asked_for_a_site_goes_there(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(), split=True)
    p = placer(tmp_path, job, local=True, split=False, waiting=0)
    assert (await p.place(job, "facility-a")).placement == "facility-a"


async def test_the_site_policy_splits_what_would_overflow(tmp_path: Path) -> None:
    job = make_job()
    overflowing = await placer(tmp_path, job, local=True, split=True, waiting=1000).place(job, None)
    assert (overflowing.placement, overflowing.split) == (LOCAL, True)
    assert "overflow" in overflowing.placement_reason or "wait" in overflowing.placement_reason
    # Without the policy the same job is forwarded whole; with no wait it stays, unsplit.
    whole = await placer(tmp_path, job, local=True, split=False, waiting=1000).place(job, None)
    assert whole.placement == "facility-a" and not whole.split
    calm = await placer(tmp_path, job, local=True, split=True, waiting=0).place(job, None)
    assert (calm.placement, calm.split) == (LOCAL, False)


def test_the_split_key(tmp_path: Path) -> None:
    base = {"listen": "127.0.0.1:1", "ca": "ca.pem", "cert": "c.pem", "key": "k.pem"}
    on = parse_federation(
        {"federation": {**base, "split": True}}, source="s.toml", base_dir=tmp_path
    )
    assert on.split
    off = parse_federation({"federation": base}, source="s.toml", base_dir=tmp_path)
    assert not off.split
    with pytest.raises(FederationConfigError, match=r"federation\.split.*true or false"):
        parse_federation(
            {"federation": {**base, "split": "yes"}}, source="s.toml", base_dir=tmp_path
        )
