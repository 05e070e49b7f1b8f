"""A facility's dispatcher keeps a peer's jobs to its policy: ``max_slots`` holds while a
forwarded job runs, and the facility's own jobs go first unless ``own_first = false``
(real processes, mutual TLS on loopback, SQLite and PostgreSQL).

- facility: one built-in-tracer server ``fac-rs`` with two slots; it accepts the studio's
  jobs with ``max_slots = 1`` and the partner's with ``own_first = false``;
- studio and partner: no render server; they send their jobs to the facility (``--site``).

What ran when is read from the facility's own records: the order in which ``fac-rs``
logged the attempts it was given, and each task's start and end there; never from how
long anything took.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from .federation_harness import (
    BACKENDS,
    Federation,
    PeerLink,
    RenderServer,
    running,
    site_databases,
)
from .harness import ROOT, Agent, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
SITES = ("studio", "partner", "facility")
LINKS = {
    "studio": [PeerLink("facility")],
    "partner": [PeerLink("facility")],
    "facility": [
        PeerLink("studio", policy="max_slots = 1"),
        PeerLink("partner", policy="own_first = false"),
    ],
}
SERVERS = (RenderServer("facility", "fac-rs", "builtin", slots=2),)
ADVERTS = (("studio", "facility"), ("partner", "facility"))
ATTEMPT = re.compile(r"task \S+ attempt \d+: builtin frames \d+-\d+ of job (\S+)")
"""What ``fac-rs`` logs when it is given an attempt (render_server/daemon.py)."""


@pytest.fixture(scope="module", params=BACKENDS)
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("guests")
    with site_databases(request, SITES, "guests_") as databases:
        fed = Federation(root, SITES, links=LINKS, databases=databases)
        with running(fed, SERVERS, ADVERTS):
            yield fed


def submit(agent: Agent, frames: int, *args: str) -> str:
    """A job of ``frames`` one-frame chunks of a small image at ``agent``."""
    return agent.submit(
        str(SCENE),
        *("--package", "builtin", "--resolution", "32x24", "--frames", f"1-{frames}"),
        *("--chunk", "1", *args),
    )


def accepted(facility: Agent, origin_job_id: str) -> str:
    """The facility's id of the job it accepted as ``origin_job_id``, once it has."""
    found: list[str] = []

    def there() -> bool:
        jobs = facility.get("/api/v1/jobs")["jobs"]
        found[:] = [j["id"] for j in jobs if j.get("origin_job_id") == origin_job_id]
        return bool(found)

    wait_for(there, 60, f"the facility to accept job {origin_job_id}")
    return found[0]


def attempts(fed: Federation) -> list[str]:
    """The facility job of each attempt ``fac-rs`` was given, in the order it was given."""
    return ATTEMPT.findall((fed["facility"].root / "fac-rs.log").read_text(errors="replace"))


def done(agent: Agent, job_id: str) -> dict[str, Any]:
    detail = agent.wait_job(job_id, timeout=90)
    assert detail["job"]["state"] == "done", (detail["job"], agent.log()[-3000:])
    return detail


def most_at_once(tasks: list[dict[str, Any]]) -> int:
    """The most of ``tasks`` running at one moment, from their start and end times."""
    edges = sorted(
        [(t["started_at"], 1) for t in tasks] + [(t["finished_at"], -1) for t in tasks],
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def own_job_while_a_guest_waits(fed: Federation, origin: str, guest_frames: int) -> list[str]:
    """With ``fac-rs`` disabled: a job of ``origin`` sent to the facility and accepted
    there, then a job of the facility's own (3 frames); ``fac-rs`` enabled, both done.
    Returns the order of the attempts ``fac-rs`` was given: ``guest`` or ``own``."""
    facility = fed["facility"]
    before = len(attempts(fed))
    facility.cli("disable", "fac-rs")
    try:
        guest_origin = submit(fed[origin], guest_frames, "--site", "facility")
        guest = accepted(facility, guest_origin)
        own = submit(facility, 3)
    finally:
        facility.cli("enable", "fac-rs")
    done(facility, own)
    done(fed[origin], guest_origin)
    names = {guest: "guest", own: "own"}
    order = [names[job] for job in attempts(fed)[before:]]
    assert sorted(order) == ["guest"] * guest_frames + ["own"] * 3, order
    return order


def test_a_peer_s_jobs_never_hold_more_than_its_max_slots(sites: Federation) -> None:
    studio, facility = sites["studio"], sites["facility"]
    origin_id = submit(studio, 3, "--site", "facility")
    done(studio, origin_id)
    here = facility.job(accepted(facility, origin_id))
    tasks = here["tasks"]
    assert [t["state"] for t in tasks] == ["done"] * 3, tasks
    assert {t["server"] for t in tasks} == {"fac-rs"}
    # fac-rs has two slots and nothing else to do, yet the studio's job held one at a time.
    assert most_at_once(tasks) == 1, [(t["started_at"], t["finished_at"]) for t in tasks]


def test_the_facility_s_own_job_goes_before_a_waiting_forwarded_one(sites: Federation) -> None:
    order = own_job_while_a_guest_waits(sites, "studio", guest_frames=2)
    # The studio's job was there first, but every attempt of the facility's own job went
    # to fac-rs before any of the studio's.
    assert order == ["own", "own", "own", "guest", "guest"], order


def test_with_own_first_false_a_peer_s_older_job_is_not_held_back(sites: Federation) -> None:
    order = own_job_while_a_guest_waits(sites, "partner", guest_frames=2)
    # The partner's job, older, got a slot before the facility's own job had all of its.
    assert order.index("guest") < len(order) - 1 - order[::-1].index("own"), order
