"""Farm overhead vs the physical limit: the same frames by ``xargs -P`` and through Spillway."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .common import PYTHON, ROOT, SCENE, AgentProcess, cpu_seconds, own_cpu_s
from .common import workdir as bench_workdir

# A near-empty frame: one sphere, no texture, 16x16. Rendering it costs little more
# than starting the renderer, so what a task costs beyond that is the farm's own.
SHORT_SCENE = {
    "format": "spillway-scene/1",
    "camera": {"position": [0, 0, 4], "look_at": [0, 0, 0]},
    "objects": [{"type": "sphere", "center": [0, 0, 0], "radius": 1.0}],
}


@dataclass(frozen=True, slots=True)
class Workload:
    """What each task renders: a scene file and the frame size."""

    scene: Path
    width: int
    height: int

    def render_argv(self) -> list[str]:
        return [
            PYTHON,
            "-m",
            "render_server.packages.builtin",
            str(self.scene),
            "--width",
            str(self.width),
            "--height",
            str(self.height),
        ]


TEXTURED = Workload(scene=SCENE, width=320, height=240)


def gnu_parallel() -> str | None:
    """The GNU parallel command, or None (missing, or moreutils' ``parallel`` of the same name)."""
    path = shutil.which("parallel")
    if path is None:
        return None
    try:
        version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if version.startswith("GNU parallel") else None


def xargs_run(
    work: Workload,
    frames: int,
    slots: int,
    out: Path,
    timeout: float,
    *,
    runner: str = "xargs",
) -> tuple[float, float]:
    """Wall time and CPU time (the runner's and its renderers') of ``seq 1 N | xargs -P K``
    (or ``| parallel -j K``) running the renderer once per frame."""
    render = work.render_argv()
    tail = [*render, "--frames", "{}", "--out", str(out)]
    if runner == "xargs":
        argv = ["xargs", "-P", str(slots), "-I{}", *tail]
    else:
        # --will-cite: no citation notice; -I{} as for xargs, one frame number per line.
        argv = [runner, "--will-cite", "-j", str(slots), "-I{}", *tail]
    # The same environment the render server gives the renderer: one BLAS thread per
    # process, or the baseline loses to oversubscription and flatters the farm.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    before = own_cpu_s(children=True)
    t0 = time.perf_counter()
    subprocess.run(
        argv,
        input="\n".join(str(i) for i in range(1, frames + 1)) + "\n",
        text=True,
        check=True,
        timeout=timeout,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    elapsed = time.perf_counter() - t0
    cpu = own_cpu_s(children=True) - before
    rendered = len(list(out.glob("*.png")))
    if rendered != frames:
        raise RuntimeError(f"{Path(runner).name} rendered {rendered} of {frames} frames")
    return elapsed, cpu


async def spillway_run(
    work: Workload,
    frames: int,
    slots: int,
    workdir: Path,
    limit_s: float,
    *,
    lookahead: int | None = None,
) -> dict[str, float]:
    """An SQLite agent and one render server with ``slots`` slots; same frames, chunk 1.

    ``lookahead``: the agent's ``[scheduling] lookahead`` (None: its default)."""
    agent = AgentProcess(workdir / "site", f"sqlite:///{workdir / 'site.db'}")
    await agent.start("" if lookahead is None else f"[scheduling]\nlookahead = {lookahead}\n")
    server = None
    try:
        with (workdir / "rs.log").open("ab") as log:
            server = subprocess.Popen(  # noqa: ASYNC220 (long-lived child; Popen returns at once)
                [
                    PYTHON,
                    "-m",
                    "spillway",
                    "render-server",
                    "--agent",
                    agent.url,
                    "--name",
                    "bench-rs",
                    "--slots",
                    str(slots),
                    "--packages",
                    "builtin",
                    "--cache",
                    str(workdir / "cache"),
                    "--workdir",
                    str(workdir / "work"),
                    "--state",
                    str(workdir / "state"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        await asyncio.wait_for(_server_idle(agent), limit_s)
        # The render server's own CPU (not its renderers') and the agent's, from the
        # submission on: their cost per task, without their start-up (~0.4 and ~0.55 s
        # here: 4 and 5.5 ms "per task" of a 100-task run, 1 ms at 500 tasks).
        server_cpu, agent_cpu = cpu_seconds(server.pid), agent.cpu_seconds()
        renderers_cpu = cpu_seconds(server.pid, children=True)
        result = await asyncio.wait_for(_submit_and_wait(agent, work, frames), limit_s)
        server_cpu = cpu_seconds(server.pid) - server_cpu
        renderers_cpu = cpu_seconds(server.pid, children=True) - renderers_cpu
        result["server_cpu_ms_per_task"] = server_cpu / frames * 1000
        result["renderer_cpu_ms_per_task"] = renderers_cpu / frames * 1000
        result["agent_cpu_ms_per_task"] = (agent.cpu_seconds() - agent_cpu) / frames * 1000
        return result
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(10)
        agent.stop()


async def _server_idle(agent: AgentProcess) -> None:
    async with aiohttp.ClientSession() as client:
        while True:
            async with client.get(agent.url + "/api/v1/servers") as resp:
                if any(s["status"] == "idle" for s in (await resp.json())["servers"]):
                    return
            await asyncio.sleep(0.1)


async def _submit_and_wait(agent: AgentProcess, work: Workload, frames: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as client:
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            PYTHON,
            "-m",
            "spillway",
            "submit",
            str(work.scene),
            "--package",
            "builtin",
            "--resolution",
            f"{work.width}x{work.height}",
            "--frames",
            f"1-{frames}",
            "--chunk",
            "1",
            "--json",
            "--agent",
            agent.url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        body = json.loads(out)
        job_id = body["job"]["id"] if "job" in body else body["id"]
        # A long poll, as `spillway submit --wait` waits: polling the job list ten times a
        # second cost the agent ~2 ms of CPU per task here, which xargs does not pay.
        while True:
            async with client.get(f"{agent.url}/api/v1/jobs/{job_id}?wait=30") as resp:
                body = await resp.json()
            job = body["job"]
            if job["state"] in ("done", "failed", "cancelled"):
                break
        wall = time.perf_counter() - t0
    if job["state"] != "done" or job["progress"]["frames_done"] != frames:
        raise RuntimeError(
            f"job ended {job['state']} with {job['progress']['frames_done']} of {frames} frames"
        )
    return {"makespan": job["finished_at"] - job["created_at"], "wall_with_cli": wall}


async def overhead_run(
    frames: int, slots: int, limit_s: float, *, short: bool = False, lookahead: int | None = None
) -> dict[str, Any]:
    """Each side twice, nested ABBA: xargs, GNU parallel, Spillway, Spillway, parallel, xargs.

    On a shared VM the same xargs run varies by several percent from minute to
    minute; running the pair as ABBA cancels a steady drift, which one run of
    each after the other did not (ratios from 0.97 to 1.14 for one commit).
    Without GNU parallel installed its two runs are left out.
    """
    parallel = gnu_parallel()
    order = ["xargs", "parallel", "spillway", "spillway", "parallel", "xargs"]
    if parallel is None:
        order = [side for side in order if side != "parallel"]
    times: dict[str, list[float]] = {"xargs": [], "parallel": []}
    cpu: dict[str, list[float]] = {"xargs": [], "parallel": []}
    farms: list[dict[str, float]] = []
    with bench_workdir("overhead-") as workdir:
        work = TEXTURED
        if short:
            work = Workload(scene=workdir / "short" / "scene.json", width=16, height=16)
            work.scene.parent.mkdir()
            work.scene.write_text(json.dumps(SHORT_SCENE))
        for i, side in enumerate(order):
            run_dir = workdir / f"{i}-{side}"
            run_dir.mkdir()
            if side == "spillway":
                farms.append(
                    await spillway_run(
                        work, frames, slots, run_dir, limit_s / 6, lookahead=lookahead
                    )
                )
                continue
            runner = "xargs" if side == "xargs" else str(parallel)
            wall, used = await asyncio.to_thread(
                xargs_run, work, frames, slots, run_dir, limit_s / 6, runner=runner
            )
            times[side].append(wall)
            cpu[side].append(used)
    xargs = times["xargs"]
    physical = sum(xargs)
    makespan = sum(f["makespan"] for f in farms)
    with_cli = sum(f["wall_with_cli"] for f in farms)
    result: dict[str, Any] = {
        "frames": frames,
        "slots": slots,
        "xargs_s": physical / 2,
        "spillway_s": makespan / 2,
        "spillway_cli_s": with_cli / 2,
        "runs": {"xargs_s": xargs, "spillway_s": [f["makespan"] for f in farms]},
        "ratio": makespan / physical,
        "ratio_cli": with_cli / physical,
        "per_frame_s": physical / 2 * slots / frames,
        # What a task costs beyond the renderer itself, per slot: the farm's fixed cost.
        "overhead_ms_per_task": (makespan - physical) / 2 * slots / frames * 1000,
        "server_cpu_ms_per_task": sum(f["server_cpu_ms_per_task"] for f in farms) / 2,
        "agent_cpu_ms_per_task": sum(f["agent_cpu_ms_per_task"] for f in farms) / 2,
        # The renderers' own CPU per task (with the runner's, for xargs): what starting a
        # renderer costs each way, beside what the farm's processes cost.
        "renderer_cpu_ms_per_task": sum(f["renderer_cpu_ms_per_task"] for f in farms) / 2,
        "xargs_cpu_ms_per_task": sum(cpu["xargs"]) / 2 / frames * 1000,
    }
    if times["parallel"]:
        gnu = sum(times["parallel"])
        result["runs"]["parallel_s"] = times["parallel"]
        result["parallel_s"] = gnu / 2
        result["ratio_parallel"] = makespan / gnu
        result["overhead_vs_parallel_ms_per_task"] = (makespan - gnu) / 2 * slots / frames * 1000
        # GNU parallel's own cost per task over xargs, from the same interleaved runs.
        result["parallel_overhead_ms_per_task"] = (gnu - physical) / 2 * slots / frames * 1000
    return result
