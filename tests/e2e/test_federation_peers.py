"""Many peers: three real site agents in a triangle, over mutual TLS on loopback.

- studio: a built-in-tracer server only; prefers facility-a (``preference = 10``).
- facility-a: one POV-Ray server without tags; accepts the studio's jobs up to
  priority 50 and lets them go one hop further (``max_hops = 2``).
- facility-b: one POV-Ray server tagged ``big``; accepts jobs relayed by facility-a.

Every site peers with both others. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation.certs import TlsContexts
from federation.envelope import decode_reply
from federation.protocol import OfferReply

from .federation_harness import (
    BACKENDS,
    Federation,
    PeerLink,
    RenderServer,
    fed_request,
    running,
    sample_offer,
    site_databases,
    wait_advertised,
)
from .harness import ROOT, Agent

pytestmark = [pytest.mark.e2e, pytest.mark.povray, pytest.mark.timeout(300)]
SCENE = ROOT / "examples" / "povray" / "scene.pov"
SITES = ("studio", "facility-a", "facility-b")
LINKS = {
    "studio": [PeerLink("facility-a", keys="preference = 10"), PeerLink("facility-b")],
    "facility-a": [
        PeerLink("studio", policy="max_priority = 50\nmax_hops = 2"),
        PeerLink("facility-b"),
    ],
    "facility-b": [PeerLink("studio"), PeerLink("facility-a", policy="max_hops = 2")],
}


SERVERS = (
    RenderServer("studio", "studio-rs", "builtin"),
    RenderServer("facility-a", "fa-1", "povray"),
    RenderServer("facility-b", "fb-1", "povray", tags="big"),
)
ADVERTS = (("studio", "facility-a"), ("studio", "facility-b"), ("facility-a", "facility-b"))


@pytest.fixture(scope="module", params=BACKENDS)
def triangle(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("peers")
    with site_databases(request, SITES) as databases:
        fed = Federation(root, SITES, links=LINKS, databases=databases)
        with running(fed, SERVERS, ADVERTS):
            yield fed


def submit(agent: Agent, *args: str) -> str:
    return agent.submit(str(SCENE), "--package", "povray", "--resolution", "64x48", *args)


def frame_hashes(agent: Agent, job: dict[str, Any]) -> dict[str, str]:
    folder = Path(job["storage_dir"])
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.png")}


def test_the_first_choice_refuses_by_policy_and_the_job_lands_at_the_second(
    triangle: Federation,
) -> None:
    studio, a, b = triangle["studio"], triangle["facility-a"], triangle["facility-b"]
    job_id = submit(studio, "--frames", "1-2", "--priority", "80", "--name", "refused")
    detail = studio.wait_job(job_id, timeout=180)
    job = detail["job"]
    assert job["state"] == "done", job
    assert job["placement"] == "facility-b", job
    reason = job["placement_reason"]
    assert reason.startswith(
        "re-placed: facility-a refused (priority 80 is above the cap 50) → forwarded to facility-b"
    ), reason
    assert job["peers_tried"] == ["facility-a", "facility-b"]
    shown = studio.cli("job", job_id).stdout
    assert "facility-a refused (priority 80 is above the cap 50)" in shown, shown

    remote = b.job(job["remote_job_id"])["job"]
    assert (remote["origin_site"], remote["origin_job_id"]) == ("studio", job_id)
    assert frame_hashes(studio, job) == frame_hashes(b, remote)
    assert len(frame_hashes(studio, job)) == 2
    # facility-a recorded nothing for the refused offer.
    assert not [j for j in a.get("/api/v1/jobs")["jobs"] if j.get("origin_job_id") == job_id]
    assert "refused" in a.log() and "priority 80 is above the cap 50" in a.log()


def test_a_job_relayed_around_the_triangle_never_comes_back(triangle: Federation) -> None:
    studio, a, b = triangle["studio"], triangle["facility-a"], triangle["facility-b"]
    # Only facility-b has a server tagged "big"; the studio asks for facility-a, whose
    # policy lets the studio's jobs go one hop further.
    job_id = submit(studio, "--frames", "1-2", "--tags", "big", "--site", "facility-a")
    detail = studio.wait_job(job_id, timeout=180)
    job = detail["job"]
    assert job["state"] == "done", job
    assert job["placement"] == "facility-a"

    at_a = a.job(job["remote_job_id"])["job"]
    assert (at_a["origin_site"], at_a["origin_job_id"], at_a["state"]) == (
        "studio",
        job_id,
        "done",
    )
    assert at_a["placement"] == "facility-b", at_a
    assert "forwarded to facility-b" in at_a["placement_reason"]
    assert "studio" not in at_a["placement_reason"].split("forwarded to")[1]

    at_b = b.job(at_a["remote_job_id"])["job"]
    assert (at_b["origin_site"], at_b["origin_job_id"]) == ("facility-a", at_a["id"])
    assert at_b["placement"] == "local", at_b  # one hop too many to go on: rendered here
    hashes = frame_hashes(b, at_b)
    assert len(hashes) == 2
    assert frame_hashes(a, at_a) == hashes == frame_hashes(studio, job)
    # Nothing went back to the studio as a job of its own.
    assert [j["id"] for j in studio.get("/api/v1/jobs")["jobs"] if j.get("origin_job_id")] == []


def test_an_offer_that_already_went_through_the_receiver_is_refused_by_name(
    triangle: Federation,
) -> None:
    offer = sample_offer(
        "facility-a:loop:1", sha256="0" * 64, size=10, path=("studio", "facility-a"), name="loop"
    )
    data = triangle.signed("facility-a", offer)
    opts = TlsContexts(triangle.tls("facility-a")).request_options("studio")
    status, body = asyncio.run(
        fed_request(
            f"{triangle.fed_url('studio')}/fed/v1/offer",
            opts["ssl"],
            data=data,
            server_hostname="studio",
        )
    )
    assert status == 200, body
    reply = decode_reply(body, OfferReply)
    assert not reply.accepted
    assert "loop" in reply.codes, reply
    assert any("already went through studio" in r for r in reply.reasons), reply.reasons


def test_an_unreachable_first_choice_moves_the_job_to_the_next(triangle: Federation) -> None:
    studio, a, b = triangle["studio"], triangle["facility-a"], triangle["facility-b"]
    a.stop()  # the studio's preferred peer goes away; its last advert still looks fresh
    try:
        job_id = submit(studio, "--frames", "1", "--name", "away")
        detail = studio.wait_job(job_id, timeout=180)
        job = detail["job"]
        assert job["state"] == "done", job
        assert job["placement"] == "facility-b", job
        reason = job["placement_reason"]
        # Either the offer failed (re-placed) or the studio had already noticed (skipped).
        assert (
            reason.startswith("re-placed: facility-a unreachable → forwarded to facility-b")
            or "facility-a skipped (unreachable)" in reason
        ), reason
        remote = b.job(job["remote_job_id"])["job"]
        assert remote["origin_job_id"] == job_id
        # The first test uploaded this scene to facility-b: the studio remembers it holds it.
        assert "holds 3.4 KiB of 3.4 KiB" in reason, reason
        print(f"placement with facility-a away: {reason}")
    finally:
        a.start()
        wait_advertised(studio, "facility-a", 1, timeout=60)
