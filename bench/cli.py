"""How fast the ``spillway`` command starts, and submit → first frame on an idle farm.

Each command runs as a fresh process, as a user runs it, several times; the
median wall time is reported next to a bare ``python -c pass`` (the interpreter's
own start, which no change to Spillway can remove).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from spillway.client import Client

from .common import PYTHON, ROOT, AgentProcess
from .common import workdir as bench_workdir
from .overhead import SHORT_SCENE


def spillway_argv(*args: str) -> list[str]:
    script = Path(PYTHON).with_name("spillway")
    return [str(script), *args] if script.exists() else [PYTHON, "-m", "spillway", *args]


# As an installed package runs: with its modules compiled once (pip writes .pyc files;
# PYTHONDONTWRITEBYTECODE, set in some dev shells, would make every start compile them).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _timed(argv: list[str], runs: int) -> dict[str, float]:
    """Median and fastest wall time of ``runs`` runs of ``argv``, and the median CPU time
    (user + system; less disturbed than wall time on a busy machine), in milliseconds."""
    subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, timeout=60)  # compile once
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "cpu_ms": statistics.median(cpu),
    }


def _render_child_argv(scene: Path, out: Path) -> list[str]:
    """The built-in renderer's child process as the render server starts it for one
    16x16 frame: its start (Python, numpy, Pillow) is most of a short task's time."""
    return [
        PYTHON, "-m", "render_server.packages.builtin", str(scene), "--frames", "1",
        "--width", "16", "--height", "16", "--out", str(out),
    ]  # fmt: skip


def _start_server(workdir: Path, agent: AgentProcess) -> subprocess.Popen[bytes]:
    with (workdir / "rs.log").open("ab") as log:
        return subprocess.Popen(
            spillway_argv(
                "render-server",
                "--agent",
                agent.url,
                "--name",
                "bench-rs",
                "--packages",
                "builtin",
                "--cache",
                str(workdir / "cache"),
                "--workdir",
                str(workdir / "work"),
                "--state",
                str(workdir / "state"),
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )


def _wait_online(client: Client, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not any(s.status == "idle" for s in client.servers()):
        if time.monotonic() > deadline:
            raise RuntimeError("the render server did not connect")
        time.sleep(0.05)


def _first_frame(scene: Path, agent: AgentProcess, client: Client, runs: int) -> dict[str, float]:
    """``submit --wait`` of a 1-frame job: whole command, and the agent's own create → done.

    With the default progress interval (1 s), as a user runs it: the wait's long poll is
    answered when the job ends, so the interval does not delay the end."""
    wall, agent_side = [], []
    for _ in range(runs):
        argv = spillway_argv(
            "submit", str(scene), "--package", "builtin", "--frames", "1",
            "--resolution", "16x16", "--wait", "--json", "--agent", agent.url,
        )  # fmt: skip
        t0 = time.perf_counter()
        out = subprocess.run(argv, cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=60)
        wall.append(time.perf_counter() - t0)
        job = json.loads(out.stdout)["job"]
        agent_side.append(float(job["finished_at"]) - float(job["created_at"]))
    return {
        "submit_to_frame_s": statistics.median(wall),
        "agent_create_to_done_s": statistics.median(agent_side),
    }


async def cli_run(runs: int, limit_s: float) -> dict[str, Any]:
    with bench_workdir("spillway-bench-cli-") as workdir:
        scene = workdir / "short" / "scene.json"
        scene.parent.mkdir(parents=True)
        scene.write_text(json.dumps(SHORT_SCENE))
        agent = AgentProcess(workdir / "site", f"sqlite:///{workdir / 'site.db'}")
        await agent.start()
        server = _start_server(workdir, agent)
        try:
            with Client(agent.url) as client:
                _wait_online(client, limit_s)
                frame = _first_frame(scene, agent, client, 1)  # warms the server's asset cache
                frame = _first_frame(scene, agent, client, runs)
                job_id = client.jobs(limit=1)[0].id
                # The timed submits' jobs stay queued: rendering one (the renderer child's
                # start is ~170 ms of CPU) would overlap the next runs of every command.
                client.server_control("bench-rs", "disable")
            result: dict[str, Any] = {"runs": runs, "load": os.getloadavg()[0], **frame}
            submit = ("submit", str(scene), "--package", "builtin", "--frames", "1")
            for name, argv in (
                ("python", [PYTHON, "-c", "pass"]),
                ("help", spillway_argv("--help")),
                ("jobs", spillway_argv("jobs", "--agent", agent.url)),
                ("job", spillway_argv("job", job_id, "--agent", agent.url)),
                ("submit", spillway_argv(*submit, "--agent", agent.url)),
                ("render_child", _render_child_argv(scene, workdir / "child")),
            ):
                result[name] = _timed(argv, runs)
            return result
        finally:
            server.terminate()
            server.wait(10)
            agent.stop()
            shutil.rmtree(workdir / "work", ignore_errors=True)
