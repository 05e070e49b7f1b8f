"""The monitor at both ends of a forwarded job, in a real headless Chromium.

The studio has only a built-in-tracer server, so a POV-Ray job is forwarded to the
facility; the studio's page shows where it went, the remote job id, the transfer and
the frames arriving, and the facility's page shows where the job came from.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.e2e.federation_harness import running_pair
from tests.e2e.harness import ROOT, Agent

from .monitor_page import attribute, find, screenshot, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.povray,
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed"),
]
SCENE = ROOT / "examples" / "povray" / "scene.pov"


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, Agent]]:
    root = tmp_path_factory.mktemp("monitor-fed")
    with running_pair(root, {"fac-1": "povray"}) as fed:
        studio, facility = fed["studio"], fed["facility"]
        yield studio, facility


def test_a_forwarded_jobs_progress_shows_at_the_origin_and_its_origin_at_the_peer(
    page: Any, two_sites: tuple[Agent, Agent]
) -> None:
    studio, facility = two_sites
    result = studio.cli("submit", str(SCENE), "--package", "povray", "--frames", "1-6", "--json")
    job_id = json.loads(result.stdout)["job"]["id"]
    page.get(f"{studio.url}/#/job/{job_id}")
    forwarded = find(page, "#fed-forwarded", 60)
    assert "facility" in forwarded.text
    seen: set[str] = set()

    def filled() -> bool:
        seen.add(attribute(page, "#frame-grid", "data-states"))
        return "d" * 6 in seen

    wait_until(filled, 180, "the frames rendered at the facility")
    # The peer's progress is relayed live: the origin's grid shows frames rendering
    # or done there before the whole job is.
    assert any(("r" in s or "d" in s) and s != "d" * 6 for s in seen), seen
    wait_until(lambda: attribute(page, "#job-view", "data-state") == "done", 60, "done")
    remote_id = studio.job(job_id)["job"]["remote_job_id"]
    wait_until(lambda: find(page, "#remote-job-id").text == remote_id, 20, "remote job id")
    wait_until(lambda: find(page, "#remote-frames").text == "6/6", 20, "remote progress")
    assert "sent" in find(page, "#fed-forwarded").text
    find(page, ".media .latest img")
    screenshot(page, "job-forwarded")

    page.get(f"{studio.url}/#/jobs")
    row = find(page, f'.job-row[data-job="{job_id}"]')
    assert "→ facility" in row.text and "6/6" in row.text
    page.get(f"{studio.url}/#/peers")
    peer = find(page, '.peer-row[data-peer="facility"]')
    wait_until(lambda: "fac-1" in find(page, '.peer-row[data-peer="facility"]').text, 30, "advert")
    assert "up" in peer.text and "1 jobs" in peer.text
    usage = '.peer-row[data-peer="facility"] .peer-usage'

    def moved() -> bool:
        # Assets went out, frames came back, and the facility's figures arrived with the end.
        keys = ("bytes-out", "bytes-in", "frames-by")
        return all(int(attribute(page, usage, f"data-{k}") or 0) > 0 for k in keys)

    wait_until(moved, 30, "the bytes moved with the facility")
    assert attribute(page, usage, "data-frames-by") == "6"  # its notify's frames_done
    assert attribute(page, usage, "data-frames-for") == "0"
    assert "rendered by it: 6 frames" in find(page, usage).text
    screenshot(page, "peers")

    page.get(f"{facility.url}/#/job/{remote_id}")
    accepted = find(page, "#fed-accepted")
    assert "studio" in accepted.text and job_id in accepted.text
    page.get(f"{facility.url}/#/jobs?placement=accepted")
    wait_until(
        lambda: (
            [r.get_attribute("data-job") for r in page.find_elements(By.CSS_SELECTOR, ".job-row")]
            == [remote_id]
        ),
        20,
        "the accepted job alone",
    )
    assert "← from studio" in find(page, ".job-row").text
    page.get(f"{facility.url}/#/peers")
    at_facility = '.peer-row[data-peer="studio"] .peer-usage'
    wait_until(
        lambda: attribute(page, at_facility, "data-frames-for") == "6", 30, "work for studio"
    )
    assert int(attribute(page, at_facility, "data-bytes-in")) > 0
    assert attribute(page, at_facility, "data-frames-by") == "0"
