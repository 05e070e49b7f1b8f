"""A part of a split job refused on a stale advert goes to the next peer, once (real
processes, mutual TLS on loopback, SQLite and PostgreSQL).

- studio: one built-in-tracer server with one slot; prefers facility-a (``preference = 10``);
- facility-a: one built-in-tracer server with two slots, advertised to the studio, but it
  accepts the studio's jobs only up to priority 50;
- facility-b: one built-in-tracer server with two slots, no policy.

A split job of priority 80 at the studio: its first part goes to facility-a (preferred,
free slots advertised), which refuses it. The part comes home at once and its chunks go
to facility-b; facility-a, whose next adverts still show free slots, is never offered a
part of that job again (no ping-pong), and every frame is rendered once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .federation_harness import (
    BACKENDS,
    Federation,
    PeerLink,
    RenderServer,
    running,
    site_databases,
)
from .harness import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
SITES = ("studio", "facility-a", "facility-b")
FRAMES = 16
LINKS = {
    "studio": [PeerLink("facility-a", keys="preference = 10"), PeerLink("facility-b")],
    "facility-a": [PeerLink("studio", policy="max_priority = 50")],
    "facility-b": [PeerLink("studio")],
}
SERVERS = (
    RenderServer("studio", "studio-rs", "builtin"),
    RenderServer("facility-a", "fa-1", "builtin", slots=2),
    RenderServer("facility-b", "fb-1", "builtin", slots=2),
)
ADVERTS = (("studio", "facility-a"), ("studio", "facility-b"))
OFFERS = re.compile(r"offer (studio:\w+:\d+) from studio (refused|accepted)")


@pytest.fixture(params=BACKENDS)
def sites(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    with site_databases(request, SITES, "refused_") as databases:
        fed = Federation(tmp_path, SITES, links=LINKS, databases=databases)
        with running(fed, SERVERS, ADVERTS):
            yield fed


def test_a_refused_part_goes_to_the_next_peer_and_never_back(sites: Federation) -> None:
    studio, a, b = sites["studio"], sites["facility-a"], sites["facility-b"]
    result = studio.cli(
        "submit",
        str(SCENE),
        "--package",
        "builtin",
        "--frames",
        f"1-{FRAMES}",
        "--chunk",
        "2",
        "--priority",
        "80",
        "--split",
        "--json",
    )
    job_id = json.loads(result.stdout)["job"]["id"]
    detail = studio.wait_job(job_id, timeout=240)
    job = detail["job"]
    assert job["state"] == "done", (job, studio.log()[-4000:])

    # Every frame once, in the job's folder, from the studio and facility-b only.
    frames = detail["frames"]
    assert [f["frame"] for f in frames] == list(range(1, FRAMES + 1))
    servers = {f["server"].split("/")[0] for f in frames}
    assert "facility-b" in servers and "facility-a" not in servers, servers
    for task in detail["tasks"]:
        assert task["state"] == "done" and task["attempt"] <= 1, task

    # facility-a was offered one part of the job and refused it; nothing more came its way.
    parts = [j for j in studio.get("/api/v1/jobs")["jobs"] if j.get("part_of") == job_id]
    refused = [p for p in parts if "facility-a refused (priority 80" in p["placement_reason"]]
    assert len(refused) == 1, [(p["id"], p["placement_reason"]) for p in parts]
    assert refused[0]["state"] == "cancelled" and refused[0]["placement"] == "local"
    assert refused[0]["placement_reason"].endswith(f"→ its chunks return to job {job_id}")
    offers_to_a = OFFERS.findall(a.log())
    assert [verdict for _, verdict in offers_to_a] == ["refused"], offers_to_a
    assert not [j for j in a.get("/api/v1/jobs")["jobs"] if j.get("origin_site") == "studio"]
    # The other parts went to facility-b and were accepted there.
    at_b = [p for p in parts if p["placement"] == "facility-b"]
    assert at_b and all(p["state"] == "done" for p in at_b), at_b
    assert {verdict for _, verdict in OFFERS.findall(b.log())} == {"accepted"}
