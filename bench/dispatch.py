"""Dispatch throughput at scale, and time-to-first-assign of a very large job."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from .common import AgentProcess, fresh_database, percentile, submit_job, upload_scene
from .common import workdir as bench_workdir
from .loadgen import default_processes, spread_farm
from .simfarm import FarmStats, sim_farm

# Heartbeats as in production; the monitor ticks at its default rate.
AGENT_TOML = ""


async def dispatch_run(
    backend: str,
    servers: int,
    tasks: int,
    limit_s: float,
    *,
    render_s: float = 0.0,
    loadgen_processes: int | None = None,
    workers: int = 0,
) -> dict[str, Any]:
    """One job of ``tasks`` one-frame tasks through ``servers`` simulated servers, each task
    taking ``render_s`` on its server (0: reported done at once), the servers spread over
    ``loadgen_processes`` processes (default: by the host's cores, ``default_processes``),
    on an agent with ``workers`` connection workers (0: none, all in its own process)."""
    processes = default_processes(servers) if loadgen_processes is None else loadgen_processes
    row = await _on_fresh_agent(
        backend,
        limit_s,
        f"dispatch {backend}/{servers}",
        lambda agent: _drive(agent, servers, tasks, render_s, processes),
        toml=f"[agent]\nworkers = {workers}\n" if workers else AGENT_TOML,
    )
    return {"workers": workers, **row}


def _served_in_agent(agent: AgentProcess) -> int:
    """Connections the agent served itself because no worker took them in time (its log)."""
    return agent.log_tail(lines=1_000_000).count("serving it in the agent")


async def _on_fresh_agent(
    backend: str,
    limit_s: float,
    what: str,
    body: Callable[[AgentProcess], Awaitable[dict[str, Any]]],
    *,
    toml: str = AGENT_TOML,
) -> dict[str, Any]:
    """Run ``body`` against a new agent on a fresh database, within ``limit_s``."""
    with bench_workdir("dispatch-") as workdir:
        async with fresh_database(backend, workdir) as database:
            agent = AgentProcess(workdir, database)
            await agent.start(toml)
            try:
                return await asyncio.wait_for(body(agent), limit_s)
            except TimeoutError:
                raise RuntimeError(f"{what} exceeded its {limit_s:.0f} s limit") from None
            finally:
                agent.stop()


async def _drive(
    agent: AgentProcess, servers: int, tasks: int, render_s: float, processes: int
) -> dict[str, Any]:
    stats = FarmStats(total_tasks=tasks)
    async with aiohttp.ClientSession() as client:
        manifest = [await upload_scene(client, agent.url)]
        async with spread_farm(
            agent.url, servers, stats, processes=processes, render_s=render_s
        ) as children:
            t0 = time.perf_counter()
            if children is not None:
                children.mark()
            cpu0, own0 = agent.cpu_seconds(), time.process_time()
            workers0 = agent.workers_cpu_seconds()
            stats.dispatchable_at = t0  # refined below to when the POST returned
            job = await submit_job(client, agent.url, manifest, f"1-{tasks}")
            stats.dispatchable_at = time.perf_counter()
            await stats.all_done.wait()
            elapsed = stats.last_done_at - t0
            agent_cpu, own_cpu = agent.cpu_seconds() - cpu0, time.process_time() - own0
            workers_cpu = agent.workers_cpu_seconds() - workers0
            state = await _wait_job_done(client, agent.url, job["id"])
    served_in_agent = _served_in_agent(agent)
    if children is not None:  # the children's figures arrive as they stop
        own_cpu += children.cpu_s
    # Steady state: the middle 80 % of completions, away from ramp-up and tail.
    times = sorted(stats.done_times)
    lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
    steady = (len(times) * 8 // 10) / (hi - lo) if hi > lo else float("nan")
    return {
        "servers": servers,
        "tasks": tasks,
        "render_s": render_s,
        "loadgen_processes": processes,
        "seconds": elapsed,
        "tasks_per_s": tasks / elapsed,
        "dispatched_per_s": tasks / (stats.last_assign_at - t0),
        "steady_tasks_per_s": steady,
        "assign_p50_ms": percentile(stats.latencies, 50) * 1000,
        "assign_p99_ms": percentile(stats.latencies, 99) * 1000,
        "reassign_p50_ms": percentile(stats.reassign_latencies, 50) * 1000,
        "reassign_p99_ms": percentile(stats.reassign_latencies, 99) * 1000,
        "job_state": state,
        "assigns_seen": len(stats.assigns),
        "agent_cpu_ms_per_task": agent_cpu / tasks * 1000,
        "agent_cpu_share": agent_cpu / elapsed,
        "workers_cpu_ms_per_task": workers_cpu / tasks * 1000,
        "workers_cpu_share": workers_cpu / elapsed,
        "load_avg_1m": os.getloadavg()[0],
        "served_in_agent": served_in_agent,
        "loadgen_cpu_share": own_cpu / elapsed,
        "errors": stats.errors[:5],
    }


async def _wait_job_done(
    client: aiohttp.ClientSession, url: str, job_id: str, limit_s: float = 60
) -> str:
    deadline = time.monotonic() + limit_s
    state = "?"
    while time.monotonic() < deadline:
        async with client.get(f"{url}/api/v1/jobs?limit=1") as resp:
            jobs = (await resp.json())["jobs"]
        state = next((j["state"] for j in jobs if j["id"] == job_id), "?")
        if state in ("done", "failed"):
            return state
        await asyncio.sleep(0.2)
    return state


async def large_job_run(backend: str, frames: int, servers: int, limit_s: float) -> dict[str, Any]:
    """POST a ``frames``-frame job (chunk 1) to a farm of idle servers; time to the first Assign."""
    return await _on_fresh_agent(
        backend, limit_s, f"large job on {backend}", lambda agent: _large(agent, frames, servers)
    )


async def _large(agent: AgentProcess, frames: int, servers: int) -> dict[str, Any]:
    stats = FarmStats(total_tasks=frames)
    async with aiohttp.ClientSession() as client:
        manifest = [await upload_scene(client, agent.url)]
        async with sim_farm(agent.url, servers, stats, complete=False):
            t0 = time.perf_counter()
            stats.dispatchable_at = t0
            await submit_job(client, agent.url, manifest, f"1-{frames}")
            posted = time.perf_counter()
            await stats.first_assign.wait()
            assert stats.first_assign_at is not None
            return {
                "frames": frames,
                "servers": servers,
                "post_s": posted - t0,
                "first_assign_s": stats.first_assign_at - t0,
            }
