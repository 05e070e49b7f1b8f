"""The web monitor in a real headless Chromium against a real agent and render servers.

One site that requires client tokens: the page asks for the token once, a job's frame
grid fills live as a render server renders it, a failed task's log is readable, and
pause, resume, priority, cancel and requeue work from the page. The screenshots in
docs/screenshots/ are taken here.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from tests.e2e.harness import ROOT, Agent, Process

from .monitor_page import Client, attribute, click, find, screenshot, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
TOKEN = "monitor-test-token"
SCENE = ROOT / "examples" / "textured" / "scene.json"
BROKEN_POV = "camera { location <0, 0, -5> look_at <0, 0, 0> }\nsphere { <0,0,0>, 1 \n"


class Site:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.api = Client(agent.url, TOKEN)
        self.servers: list[Process] = []

    def submit(self, scene: Path, *args: str) -> str:
        result = self.agent.cli("submit", str(scene), "--token", TOKEN, *args)
        return result.stdout.strip().splitlines()[-1]

    def render_server(self, name: str, packages: str, slots: int = 1) -> None:
        self.servers.append(self.agent.render_server(name, packages=packages, slots=slots))

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 120) -> None:
        wait_until(lambda: self.api.job(job_id)["state"] in states, timeout, f"{job_id} {states}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("monitor")
    agent = Agent(
        root / "studio",
        name="studio",
        database=f"sqlite:///{root / 'studio.db'}",
        extra_toml=f'\n[auth]\nclient_tokens = ["{TOKEN}"]\n',
    )
    agent.start()
    site = Site(agent)
    try:
        yield site
    finally:
        for server in site.servers:
            server.stop()
        agent.stop()


def open_page(page: Any, site: Site, route: str = "") -> None:
    """Open a view, giving the token when the page asks (a test run alone has no session yet)."""
    page.get(f"{site.agent.url}/{route}")
    wait_until(
        lambda: page.find_elements(By.CSS_SELECTOR, "nav #site-name, #login"), 20, "page or login"
    )
    if page.find_elements(By.CSS_SELECTOR, "#login"):
        find(page, "#token-input").send_keys(TOKEN)
        click(page, "#token-submit")
    find(page, "nav #site-name")


def test_the_page_asks_for_the_token_once_and_shows_nothing_without_it(
    page: Any, site: Site
) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(site.agent.url + "/api/v1/events", timeout=5)
    assert refused.value.code == 401
    refused.value.close()
    page.get(site.agent.url + "/")
    find(page, "#login")
    assert not page.find_elements(By.CSS_SELECTOR, "#jobs-view, nav")
    find(page, "#token-input").send_keys(TOKEN)
    click(page, "#token-submit")
    find(page, "#jobs-view")
    wait_until(lambda: find(page, "#live-status").text.split()[-1] == "live", 20, "live stream")
    page.refresh()  # kept for the session: no second prompt
    find(page, "#jobs-view")
    assert not page.find_elements(By.CSS_SELECTOR, "#login")


def grid_states(page: Any) -> str:
    return attribute(page, "#frame-grid", "data-states")


def test_a_running_jobs_grid_fills_live_then_frames_show_and_requeue(page: Any, site: Site) -> None:
    job_id = site.submit(SCENE, "--package", "builtin", "--frames", "1-24", "--resolution", "64x48")
    open_page(page, site, f"#/job/{job_id}")
    wait_until(lambda: grid_states(page) == "w" * 24, 20, "an all-waiting grid")
    find(page, "#why-waiting")
    page.execute_script("window.__stillTheSamePage = true")
    site.render_server("rs-1", "builtin,povray", slots=2)
    seen: set[str] = set()

    def filled() -> bool:
        states = grid_states(page)
        seen.add(states)
        return states == "d" * 24

    wait_until(filled, 120, "the grid to fill")
    assert len(seen) > 2, f"the grid went straight to done: {seen}"  # it moved in steps
    assert page.execute_script("return window.__stillTheSamePage") is True
    wait_until(lambda: attribute(page, "#job-view", "data-state") == "done", 20, "job done")

    # Thumbnails of the latest frames; the latest one large; click for the full frame.
    find(page, ".media .latest img")
    wait_until(lambda: len(page.find_elements(By.CSS_SELECTOR, ".thumbs img")) >= 6, 20, "thumbs")
    previews = page.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('/preview')).length"
    )
    assert previews >= 6, "thumbnails come from the agent's previews"
    canvas = find(page, "#frame-grid")
    ActionChains(page).move_to_element_with_offset(
        canvas, -canvas.size["width"] // 2 + 5, -canvas.size["height"] // 2 + 5
    ).perform()
    tip = find(page, "#grid-tooltip").text
    assert "frame 1" in tip and "rs-1" in tip and "attempt 1" in tip, tip
    screenshot(page, "job-detail")
    assert_frames_revalidate(site, job_id)
    click(page, ".media .latest")
    find(page, "#full-frame img")
    click(page, "#full-frame")

    # Select frame 1 on the grid and render it again, after confirming.
    ActionChains(page).move_to_element_with_offset(
        canvas, -canvas.size["width"] // 2 + 5, -canvas.size["height"] // 2 + 5
    ).click().perform()
    click(page, "#btn-requeue")
    assert "1" in find(page, ".dialog").text
    click(page, "#confirm-ok")
    wait_until(
        lambda: site.api.job(job_id)["state"] in ("queued", "running", "done"), 20, "rerender"
    )
    wait_until(lambda: grid_states(page) == "d" * 24, 60, "frame 1 rendered again")
    tasks = site.api.get(f"/api/v1/jobs/{job_id}/tasks?limit=1")["tasks"]
    assert tasks[0]["attempt"] == 2


def assert_frames_revalidate(site: Site, job_id: str) -> None:
    """A frame carries its hash as ETag; asking again with it gets 304 without the bytes."""
    url = f"{site.agent.url}/api/v1/jobs/{job_id}/frames/1"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=10) as resp:
        etag = resp.headers["ETag"]
        assert etag == f'"{resp.headers["X-Sha256"]}"'
        assert "no-cache" in resp.headers["Cache-Control"]
    again = urllib.request.Request(url, headers={**auth, "If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(again, timeout=10)
    assert not_modified.value.code == 304 and not_modified.value.read() == b""
    not_modified.value.close()


@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_a_failed_tasks_log_is_readable(page: Any, site: Site, tmp_path: Path) -> None:
    scene = tmp_path / "broken.pov"
    scene.write_text(BROKEN_POV)
    job_id = site.submit(scene, "--package", "povray", "--frames", "1", "--max-attempts", "1")
    open_page(page, site, f"#/job/{job_id}")
    wait_until(lambda: attribute(page, "#job-view", "data-state") == "failed", 120, "job failed")
    find(page, "#job-error")
    click(page, '.task-row[data-state="failed"] .log-btn')
    wait_until(lambda: "Parse Error" in find(page, "#log-text").text, 30, "POV-Ray's error")
    assert find(page, "#task-error").text
    assert "on rs-1" in find(page, "#log-panel header").text  # read from the task log route
    page.execute_script("document.getElementById('log-panel').scrollIntoView()")
    screenshot(page, "job-failed-log")
    open_page(page, site, "#/jobs")
    row = find(page, f'.job-row[data-job="{job_id}"]')
    assert "failed" in row.text and "0/1" in row.text


def test_a_running_tasks_log_tails_live(page: Any, site: Site) -> None:
    # One renderer for all 30 frames, long enough (several seconds even on a fast host)
    # for the render server to send its output a few times while it runs: at 160x120
    # the whole chunk took 0.8 s here, inside one log flush, and was only seen at its end.
    job_id = site.submit(
        SCENE,
        "--package",
        "builtin",
        "--frames",
        "1-30",
        "--chunk",
        "30",
        "--resolution",
        "480x360",
    )
    open_page(page, site, f"#/job/{job_id}")
    find(page, '.task-row[data-state="running"]', 60)
    click(page, ".task-row .log-btn")
    counts: list[int] = []

    def finished() -> bool:
        counts.append(find(page, "#log-text").text.count(" done in "))
        return counts[-1] == 30

    wait_until(finished, 120, "every frame's line in the open log")
    assert any(0 < n < 30 for n in counts), f"the log did not grow while open: {set(counts)}"


def test_pause_resume_priority_and_cancel_from_the_page(page: Any, site: Site) -> None:
    job_id = site.submit(
        SCENE, "--package", "builtin", "--frames", "1-400", "--resolution", "160x120"
    )
    open_page(page, site, f"#/job/{job_id}")
    wait_until(lambda: attribute(page, "#job-view", "data-state") == "running", 60, "running")
    click(page, "#btn-pause")
    wait_until(lambda: attribute(page, "#job-view", "data-state") == "paused", 20, "paused")
    assert site.api.job(job_id)["state"] == "paused"
    find(page, "#why-waiting")
    click(page, "#btn-resume")
    wait_until(
        lambda: attribute(page, "#job-view", "data-state") in ("queued", "running"), 20, "resumed"
    )
    assert site.api.job(job_id)["state"] in ("queued", "running")

    field = find(page, "#priority-input")
    field.send_keys(Keys.CONTROL, "a")  # clear() would not tell the page the value changed
    field.send_keys("80")
    click(page, "#btn-priority")
    wait_until(lambda: site.api.job(job_id)["priority"] == 80, 20, "priority 80")
    wait_until(lambda: "priority 80" in find(page, ".summary .placement").text, 20, "shown")
    shown = site.agent.cli("priority", job_id, "60", "--token", TOKEN).stdout
    assert "priority 60" in shown
    wait_until(lambda: "priority 60" in find(page, ".summary .placement").text, 20, "live")

    click(page, "#btn-cancel")
    click(page, "#confirm-cancel")  # asked first; "Keep" leaves the job alone
    assert site.api.job(job_id)["state"] in ("queued", "running")
    click(page, "#btn-cancel")
    click(page, "#confirm-ok")
    wait_until(lambda: attribute(page, "#job-view", "data-state") == "cancelled", 20, "cancelled")
    assert site.api.job(job_id)["state"] == "cancelled"


def test_jobs_view_filters_and_the_servers_view(page: Any, site: Site) -> None:
    open_page(page, site, "#/jobs")
    wait_until(lambda: len(page.find_elements(By.CSS_SELECTOR, ".job-row")) >= 2, 20, "jobs")
    screenshot(page, "job-list")
    total = len(page.find_elements(By.CSS_SELECTOR, ".job-row"))
    Select(find(page, "#filter-state")).select_by_value("cancelled")
    wait_until(lambda: len(page.find_elements(By.CSS_SELECTOR, ".job-row")) == 1, 20, "filtered")
    assert "of 1" in find(page, "#page-info").text
    assert page.execute_script("return location.hash") == "#/jobs?state=cancelled"
    click(page, ".job-row a")
    find(page, "#job-view")
    page.back()  # back to the list as it was filtered
    wait_until(lambda: len(page.find_elements(By.CSS_SELECTOR, ".job-row")) == 1, 20, "refiltered")
    assert Select(find(page, "#filter-state")).first_selected_option.text == "cancelled"
    Select(find(page, "#filter-state")).select_by_value("")
    wait_until(lambda: len(page.find_elements(By.CSS_SELECTOR, ".job-row")) == total, 20, "all")
    find(page, "#job-search").send_keys("broken")
    wait_until(
        lambda: (
            [r.text.split()[0] for r in page.find_elements(By.CSS_SELECTOR, ".job-row")]
            == ["broken"]
        ),
        20,
        "search by name",
    )

    click(page, "#nav-servers")
    row = find(page, '.server-row[data-server="rs-1"]')
    assert "builtin" in row.text
    screenshot(page, "servers")
    click(page, '.server-row[data-server="rs-1"] .btn-disable')
    wait_until(lambda: "disabled" in find(page, '.server-row[data-server="rs-1"]').text, 20, "off")
    click(page, '.server-row[data-server="rs-1"] .btn-enable')
    wait_until(lambda: "idle" in find(page, '.server-row[data-server="rs-1"]').text, 20, "on")


def test_an_open_page_reconnects_after_an_agent_restart(page: Any, site: Site) -> None:
    """What a page open for a day meets: the agent goes away and comes back. The page
    says it is reconnecting, then shows what changed meanwhile without a reload."""
    open_page(page, site, "#/jobs")
    wait_until(lambda: find(page, "#live-status").text == "● live", 20, "live")
    page.execute_script("window.__stillTheSamePage = true")
    before = site.api.get("/api/v1/jobs")["page"]["total"]
    wait_until(lambda: len(page.find_elements(By.CSS_SELECTOR, ".job-row")) == before, 20, "rows")
    site.agent.stop()
    wait_until(lambda: "reconnecting" in find(page, "#live-status").text, 20, "the outage shown")
    site.agent.start()
    job_id = site.submit(SCENE, "--package", "builtin", "--frames", "1-2", "--name", "after")
    wait_until(lambda: find(page, "#live-status").text == "● live", 30, "live again")
    find(page, f'.job-row[data-job="{job_id}"]', 30)
    assert len(page.find_elements(By.CSS_SELECTOR, ".job-row")) == before + 1
    assert page.execute_script("return window.__stillTheSamePage") is True
    # While the agent was down the browser logged its refused connections; only those.
    logged = [e["message"] for e in page.get_log("browser") if e["level"] == "SEVERE"]
    assert all("ERR_CONNECTION_REFUSED" in m or "Failed to fetch" in m for m in logged), logged


def test_an_offline_server_can_be_forgotten_after_confirming(page: Any, site: Site) -> None:
    # Stopped between tasks: a server still holding one cannot be forgotten yet.
    wait_until(
        lambda: not any(s["current"] for s in site.api.get("/api/v1/servers")["servers"]),
        60,
        "rs-1 idle",
    )
    site.servers.pop().stop()
    open_page(page, site, "#/servers")
    row = '.server-row[data-server="rs-1"]'
    wait_until(lambda: "offline" in find(page, row).text, 30, "rs-1 offline")
    click(page, f"{row} .danger")
    assert "rs-1" in find(page, ".dialog").text
    click(page, "#confirm-ok")
    wait_until(lambda: not page.find_elements(By.CSS_SELECTOR, row), 20, "rs-1 forgotten")
    assert site.api.get("/api/v1/servers")["servers"] == []
