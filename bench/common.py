"""Shared pieces of the benchmarks: a real agent process, fresh databases, the machine."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PG_ADMIN_DSN = os.environ.get("SPILLWAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SCENE = ROOT / "examples" / "textured" / "scene.json"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port for a process started later, below the kernel's ephemeral range.

    A port the kernel picked for a bind to port 0 is free only until someone else asks for
    port 0: a site agent binding its federation blob listener to ``blob_port = 0`` could be
    given it before the agent itself binds its HTTP port to it. Ports below the ephemeral
    range are never handed out for port 0, and this process hands each out once.
    """
    low = _ephemeral_low()
    for _ in range(500):
        port = random.randrange(max(1024, low - 16384), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:  # that range is full: the kernel's pick after all
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass
class AgentProcess:
    """A real ``spillway agent`` on loopback, logging to a file."""

    workdir: Path
    database: str
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = self.workdir / "storage"
        self.log_path = self.workdir / "agent.log"

    async def start(self, extra_toml: str = "") -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "site.toml"
        config.write_text(
            f'name = "bench"\nlisten = "127.0.0.1:{self.port}"\ndatabase = "{self.database}"\n'
            f'storage = "{self.storage}"\n' + extra_toml
        )
        with self.log_path.open("ab") as log:
            # A long-lived child, not awaited here: Popen returns at once.
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                _profiled([PYTHON, "-m", "spillway", "agent", "--config", str(config)]),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"agent exited with {self.proc.returncode}: {self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(self.url + "/api/v1/health") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"agent did not start within 30 s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if os.environ.get("SPILLWAY_BENCH_PROFILE"):
                os.killpg(self.proc.pid, signal.SIGINT)  # py-spy writes its profile on Ctrl-C
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cpu_seconds(self) -> float:
        """User + system CPU time the agent process has used so far."""
        return cpu_seconds(self._agent_pid())

    def _agent_pid(self) -> int:
        assert self.proc is not None
        pid = self.proc.pid
        if os.environ.get("SPILLWAY_BENCH_PROFILE"):
            # The process started is py-spy; the agent is its child.
            children = _read(f"/proc/{pid}/task/{pid}/children").split()
            pid = int(children[0]) if children else pid
        return pid

    def workers_cpu_seconds(self) -> float:
        """User + system CPU time of the agent's connection workers (its child processes)."""
        pid = self._agent_pid()
        children: list[str] = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += _read(str(task / "children")).split()
        total = 0.0
        for child in children:
            with contextlib.suppress(OSError):
                total += cpu_seconds(int(child))
        return total

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time a live process has used, children not included; with
    ``children``, that of its children it has waited for instead."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def say(message: dict[str, Any]) -> None:
    """One JSON line to the parent process (a benchmark's helper process on its stdout)."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def own_cpu_s(*, children: bool = False) -> float:
    """This process's user + system CPU seconds so far (every thread); with ``children``,
    those of its children it has waited for instead."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_scratch_root: Path | None = None


@contextlib.contextmanager
def scratch_root() -> Iterator[Path]:
    """One folder for every benchmark's files, removed when the whole run ends.

    Deleting a run's 20,000 frames just before the next run starts slowed that run
    by half: ext4 without a journal (as on this VM) skips inodes freed in the last
    30 s when it creates files, so every new frame scanned past the old ones.
    """
    global _scratch_root
    root = Path(tempfile.mkdtemp(prefix="spillway-bench-"))
    _scratch_root = root
    try:
        yield root
    finally:
        _scratch_root = None
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A fresh folder for one benchmark run: kept until the run's end inside ``scratch_root``."""
    if _scratch_root is not None:
        yield Path(tempfile.mkdtemp(prefix=prefix, dir=_scratch_root))
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def _profiled(command: list[str]) -> list[str]:
    """Run the agent under py-spy when SPILLWAY_BENCH_PROFILE names an output file (collapsed stacks).

    With SPILLWAY_BENCH_PROFILE_GIL=1 only the thread holding the GIL is sampled: what
    keeps the event loop (and every Python thread) busy, without threads waiting in C.
    """
    out = os.environ.get("SPILLWAY_BENCH_PROFILE")
    if not out:
        return command
    py_spy = Path(PYTHON).with_name("py-spy")
    gil = ["--gil"] if os.environ.get("SPILLWAY_BENCH_PROFILE_GIL") == "1" else []
    return [
        str(py_spy),
        "record",
        "--format",
        "raw",
        "--rate",
        "250",
        "--nonblocking",
        "--threads",
        *gil,
        "--output",
        out,
        "--",
        *command,
    ]


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql, timeout=60)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(backend: str, workdir: Path) -> AsyncIterator[str]:
    """A new, empty database URL on the backend; PostgreSQL ones are dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def upload_scene(session: aiohttp.ClientSession, agent_url: str) -> dict[str, Any]:
    """PUT the scene file as a blob; returns its manifest entry."""
    data = SCENE.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    async with session.put(f"{agent_url}/api/v1/blobs/{sha}", data=data) as resp:
        resp.raise_for_status()
    return {"path": SCENE.name, "sha256": sha, "size": len(data)}


async def submit_job(
    session: aiohttp.ClientSession,
    agent_url: str,
    manifest: list[dict[str, Any]],
    frames: str,
    *,
    chunk: int = 1,
    name: str = "bench",
) -> dict[str, Any]:
    body = {
        "name": name,
        "scene": manifest[0]["path"],
        "manifest": manifest,
        "frames": frames,
        "chunk_size": chunk,
        "profile": {"package": "builtin"},
    }
    async with session.post(
        f"{agent_url}/api/v1/jobs", json=body, timeout=aiohttp.ClientTimeout(total=120)
    ) as resp:
        if resp.status != 201:
            raise RuntimeError(f"submit failed: {resp.status} {await resp.text()}")
        job: dict[str, Any] = (await resp.json())["job"]
        return job


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in _read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    try:
        pg = (
            subprocess.run(
                ["psql", PG_ADMIN_DSN, "-Atc", "SHOW server_version"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or "unavailable"
        )
    except (OSError, subprocess.TimeoutExpired):
        pg = "unavailable"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "OS": f"{os_name} (kernel {platform.release()})",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": pg,
    }


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
