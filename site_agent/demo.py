"""``spillway demo``: a whole site on this machine, one textured animation rendered on it.

Starts a site agent on SQLite and two render servers as separate processes,
submits ``examples/textured/scene.json`` for 24 frames, shows progress, prints
which server rendered which frames and where the PNGs are, then stops
everything it started.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .client import AgentClient, SpillwayClientError
from .formatting import human_size, progress_line
from .submission import SubmitOptions, submit_scene, wait_for_job

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "textured" / "scene.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Child processes the demo started; all are stopped on exit, whatever happens."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "site_agent", *args], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.children.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.children:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def write_site_config(root: Path, name: str, port: int, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nlisten = "127.0.0.1:{port}"\ndatabase = "sqlite:///{root / (name + ".db")}"\n'
        f'storage = "{root / "storage"}"\n' + extra
    )
    return path


async def _wait_health(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with AgentClient(url, timeout_s=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the agent exited early; see {log}")
            try:
                await client.health()
                return
            except SpillwayClientError:
                await asyncio.sleep(0.2)
    raise RuntimeError(f"the agent did not start within {timeout:.0f}s; see {log}")


async def _wait_servers(client: AgentClient, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = [s for s in await client.servers() if s["status"] in ("idle", "busy")]
        if len(servers) >= count:
            return servers
        await asyncio.sleep(0.3)
    raise RuntimeError("render servers did not connect in time; see the logs under var/demo/logs")


def _report(detail: dict[str, Any]) -> None:
    by_server: dict[str, list[int]] = {}
    for frame in detail["frames"]:
        by_server.setdefault(frame["server"] or "?", []).append(frame["frame"])
    print("\nwho rendered what:")
    for server, frames in sorted(by_server.items()):
        print(f"  {server:<10} {len(frames):>3} frames: {', '.join(map(str, sorted(frames)))}")


async def _run(root: Path, procs: Processes) -> int:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_site_config(root / "studio", "studio", port)
    print(f"starting site agent 'studio' at {url} (SQLite, storage {root / 'studio' / 'storage'})")
    agent = procs.spawn("studio-agent", "agent", "--config", str(config))
    await _wait_health(url, agent, procs.log_dir / "studio-agent.log")
    for name in ("rs-1", "rs-2"):
        procs.spawn(name, "render-server", "--agent", url, "--name", name, "--slots", "1",
                    "--cache", str(root / "cache" / name), "--workdir", str(root / "work" / name))
    async with AgentClient(url) as client:
        servers = await _wait_servers(client, 2)
        print("render servers: " + ", ".join(
            f"{s['name']} ({', '.join(f'{k} {v}' for k, v in s['packages'].items())})" for s in servers))
        result = await submit_scene(client, EXAMPLE, SubmitOptions(package="builtin", frames="1-24", name="textured"))
        job_id = result.job["job"]["id"] if "job" in result.job else result.job["id"]
        print(f"submitted job {job_id}: 24 frames, {result.uploaded_files} files "
              f"({human_size(result.uploaded_bytes)}) uploaded")
        started = time.monotonic()

        def show(detail: dict[str, Any]) -> None:
            line = progress_line(detail["job"], 2, None)
            print("\r" + line, end="", flush=True)
        job = await wait_for_job(client, job_id, poll_s=0.5, on_update=show)
        print()
        detail = await client.job(job_id)
    if job["state"] != "done":
        print(f"job {job_id} ended {job['state']}: {job.get('error')}", file=sys.stderr)
        return 1
    _report(detail)
    print(f"\n24 frames in {time.monotonic() - started:.1f}s; PNGs are in {job['storage_dir']}")
    print(f"logs are in {procs.log_dir}")
    return 0


def run_demo(root: Path | None = None) -> int:
    root = root or REPO / "var" / "demo"
    shutil.rmtree(root, ignore_errors=True)
    (root / "logs").mkdir(parents=True)
    procs = Processes(root / "logs")
    try:
        return asyncio.run(_run(root, procs))
    except (RuntimeError, SpillwayClientError) as exc:
        print(f"spillway demo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        procs.stop_all()
