"""Many peers: three real site agents in a triangle, over mutual TLS on loopback.

- studio: a built-in-tracer server only; prefers facility-a (``preference = 10``).
- facility-a: one POV-Ray server without tags; accepts the studio's jobs up to
  priority 50 and lets them go one hop further (``max_hops = 2``).
- facility-b: one POV-Ray server tagged ``big``; accepts jobs relayed by facility-a.

Every site peers with both others. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from federation.certs import TlsContexts, TlsFiles
from federation.envelope import decode_reply, encode_envelope
from federation.protocol import JobSpec, Offer, OfferReply
from spillway.core.records import FileEntry

from .harness import ROOT, Agent, Federation, PeerLink, Process, wait_advertised

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


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def triangle(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("peers")
    with contextlib.ExitStack() as stack:
        databases = None
        if request.param == "postgres":
            new_db = request.getfixturevalue("empty_pg_database")
            databases = {
                site: stack.enter_context(new_db(site.replace("-", "_"))) for site in SITES
            }
        fed = Federation(root, SITES, links=LINKS, databases=databases)
        started: list[Process] = []
        try:
            for site in SITES:
                fed[site].start()
                started.append(fed[site])
            started.append(fed["studio"].render_server("studio-rs", packages="builtin"))
            started.append(fed["facility-a"].render_server("fa-1", packages="povray"))
            started.append(fed["facility-b"].render_server("fb-1", packages="povray", tags="big"))
            for site in SITES:
                fed[site].wait_servers(1)
            wait_advertised(fed["studio"], "facility-a", 1)
            wait_advertised(fed["studio"], "facility-b", 1)
            wait_advertised(fed["facility-a"], "facility-b", 1)
            yield fed
        finally:
            for proc in reversed(started):
                proc.stop()


def submit(agent: Agent, *args: str) -> str:
    result = agent.cli(
        "submit", str(SCENE), "--package", "povray", "--resolution", "64x48", "--json", *args
    )
    body = json.loads(result.stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


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
    ca, cert, key = triangle.cert_files("facility-a")
    spec = JobSpec(
        name="loop",
        owner="ana",
        priority=50,
        profile={"package": "povray"},
        frames="1",
        chunk_size=1,
        scene="scene.pov",
        output_name="loop",
    )
    offer = Offer(
        key="facility-a:loop:1",
        origin_job_id="loop",
        epoch=1,
        job=spec,
        manifest=(FileEntry(path="scene.pov", sha256="0" * 64, size=10),),
        path=("studio", "facility-a"),
    )
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    data = encode_envelope(offer, site="facility-a", key=private, now=time.time())  # type: ignore[arg-type]
    opts = TlsContexts(TlsFiles(ca=ca, cert=cert, key=key)).request_options("studio")
    status, body = asyncio.run(
        _post(f"{triangle.fed_url('studio')}/fed/v1/offer", data, opts["ssl"], "studio")
    )
    assert status == 200, body
    reply = decode_reply(body, OfferReply)
    assert not reply.accepted
    assert "loop" in reply.codes, reply
    assert any("already went through studio" in r for r in reply.reasons), reply.reasons


async def _post(url: str, data: bytes, ssl_ctx: Any, server_hostname: str) -> tuple[int, bytes]:
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            url,
            data=data,
            headers={"Content-Type": "application/vnd.spillway.fed+msgpack"},
            ssl=ssl_ctx,
            server_hostname=server_hostname,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as resp,
    ):
        result = resp.status, await resp.read()
    await asyncio.sleep(0.1)  # let the TLS transport close before the loop ends
    return result


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
