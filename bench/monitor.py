"""The web monitor on a big site: 2,000 jobs and one 10,000-frame job, opened in headless
Chromium (the jobs page, then the big job's page with its full frame grid)."""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

import aiohttp

from .common import AgentProcess, submit_job, upload_scene, workdir


async def monitor_run(jobs: int, frames: int, limit_s: float) -> dict[str, Any]:
    with workdir("monitor") as root:
        agent = AgentProcess(root, f"sqlite:///{root / 'site.db'}")
        await agent.start()
        try:
            async with asyncio.timeout(limit_s):
                return await _measure(agent, jobs, frames)
        finally:
            agent.stop()


async def _fill(agent: AgentProcess, jobs: int, frames: int) -> str:
    async with aiohttp.ClientSession() as client:
        manifest = [await upload_scene(client, agent.url)]
        gate = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with gate:
                await submit_job(client, agent.url, manifest, "1-10", chunk=2, name=f"shot-{i:04d}")

        await asyncio.gather(*(one(i) for i in range(jobs)))
        big = await submit_job(client, agent.url, manifest, f"1-{frames}", name="big")
        return str(big["id"])


async def _api_seconds(url: str, repeat: int = 5) -> tuple[float, int]:
    """Best of ``repeat`` GETs (seconds) and the body's size."""
    best, size = float("inf"), 0
    async with aiohttp.ClientSession() as client:
        for _ in range(repeat):
            t0 = time.perf_counter()
            async with client.get(url) as resp:
                body = await resp.read()
            best, size = min(best, time.perf_counter() - t0), len(body)
    return best, size


async def _measure(agent: AgentProcess, jobs: int, frames: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    big = await _fill(agent, jobs, frames)
    row: dict[str, Any] = {"jobs": jobs + 1, "frames": frames, "fill_s": time.perf_counter() - t0}
    row["api_jobs_page_s"], _ = await _api_seconds(f"{agent.url}/api/v1/jobs?limit=50")
    row["api_grid_s"], row["grid_bytes"] = await _api_seconds(
        f"{agent.url}/api/v1/jobs/{big}/grid", 3
    )
    if shutil.which("chromium") and shutil.which("chromedriver"):
        row.update(await asyncio.to_thread(_browser_times, agent.url, big, frames))
    return row


def _browser_times(url: str, big: str, frames: int) -> dict[str, float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get("about:blank")
        jobs_s = _time_until(
            driver,
            f"{url}/#/jobs",
            "return document.querySelectorAll('.job-row').length >= 50",
        )
        job_s = _time_until(
            driver,
            f"{url}/#/job/{big}",
            "const c = document.getElementById('frame-grid');"
            f"return !!c && c.dataset.states.length === {frames}"
            " && document.querySelectorAll('.task-row').length >= 100",
        )
        return {"page_jobs_s": jobs_s, "page_big_job_s": job_s}
    finally:
        driver.quit()


def _time_until(driver: Any, url: str, script: str, limit_s: float = 60) -> float:
    """Seconds from navigating to ``url`` until ``script`` returns true (polled every 10 ms)."""
    t0 = time.perf_counter()
    driver.get(url)
    while time.perf_counter() - t0 < limit_s:
        if driver.execute_script(script):
            return time.perf_counter() - t0
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not show what was waited for within {limit_s} s")
