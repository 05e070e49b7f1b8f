"""The soak's farm: real agent and render-server processes on loopback, restartable at will.

Every child runs in its own session (process group), so a signal reaches a render
server and the renderer it started alike, and :meth:`Farm.close` can end all of
them whatever state they are in (stopped ones are continued first).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from federation.certs import init_ca, issue_site_cert

from .common import PG_ADMIN_DSN, PYTHON, ROOT, _pg_admin, free_port

BACKENDS = ("sqlite", "postgres")


@dataclass
class Child:
    """One restartable process; ``start`` reuses the same command line and log."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    starts: int = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- soak: start #{self.starts + 1} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.stopped = False
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (its renderers too)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            if sig == signal.SIGSTOP:
                self.stopped = True
            elif sig == signal.SIGCONT:
                self.stopped = False

    def kill(self) -> None:
        """SIGKILL, like a crash: no cleanup runs; waits until it is gone."""
        if self.alive:
            self.signal_group(signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(10)
        self.stopped = False

    def terminate(self, grace_s: float = 15.0) -> bool:
        """SIGTERM and wait; True if it ended by itself within ``grace_s`` (else it is killed)."""
        if not self.alive:
            return True
        self.signal_group(signal.SIGCONT)
        self.signal_group(signal.SIGTERM)
        assert self.proc is not None
        try:
            self.proc.wait(grace_s)
            return True
        except subprocess.TimeoutExpired:
            self.kill()
            return False

    def rss_mib(self) -> float | None:
        """Resident memory of the process itself, or None when it is not running."""
        if not self.alive:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None


@dataclass
class Site:
    """One site: its agent, its render servers, its database and storage."""

    name: str
    root: Path
    database: str
    agent: Child
    url: str
    servers: list[Child] = field(default_factory=list)

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/api/v1/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def start_agent(self, within_s: float = 60.0) -> None:
        """Start the agent and wait until it answers; raise if it exits or stays silent."""
        self.agent.start()
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if not self.agent.alive:
                raise RuntimeError(f"agent {self.name} exited at start; see {self.agent.log_path}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"agent {self.name} not up within {within_s:.0f}s; see {self.agent.log_path}"
        )


def _agent_toml(site: str, port: int, database: str, root: Path, federation: str) -> str:
    return (
        f'name = "{site}"\nlisten = "127.0.0.1:{port}"\ndatabase = "{database}"\n'
        f'storage = "{root / "storage"}"\n'
        "[scheduling]\nheartbeat_interval = 0.5\nheartbeat_timeout = 3.0\n"
        "lease_check_interval = 0.5\n" + federation
    )


def _federation_toml(pki: Path, site: str, port: int, peer: str, peer_port: int) -> str:
    # The lease outlasts every outage the soak injects (at most ~10 s), so a cut
    # link delays a forwarded job and never legitimately re-places it.
    return (
        f'\n[federation]\nlisten = "127.0.0.1:{port}"\nca = "{pki / "ca" / "ca.pem"}"\n'
        f'cert = "{pki / site}.pem"\nkey = "{pki / site}-key.pem"\n'
        "advertise_interval = 1\nlease = 60\n"
        f'\n[[peers]]\nname = "{peer}"\nurl = "https://127.0.0.1:{peer_port}"\n'
    )


class Farm:
    """The sites of one soak run; :meth:`close` ends every process it started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sites: dict[str, Site] = {}

    def add_site(self, name: str, database: str, federation: str = "") -> Site:
        root = self.root / name
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = root / f"{name}.toml"
        config.write_text(_agent_toml(name, port, database, root, federation))
        agent = Child(
            f"{name}-agent",
            [PYTHON, "-m", "spillway", "agent", "--config", str(config)],
            root / "logs" / "agent.log",
        )
        site = Site(name, root, database, agent, f"http://127.0.0.1:{port}")
        self.sites[name] = site
        return site

    def add_servers(self, site: Site, count: int) -> None:
        for i in range(1, count + 1):
            name = f"{site.name}-rs{i}"
            argv = [
                PYTHON,
                "-m",
                "spillway",
                "render-server",
                "--agent",
                site.url,
                "--name",
                name,
                "--slots",
                "1",
                "--packages",
                "builtin",
                "--cache",
                str(site.root / "cache" / name),
                "--workdir",
                str(site.root / "work" / name),
                "--state",
                str(site.root / "state" / name),
            ]
            site.servers.append(Child(name, argv, site.root / "logs" / f"{name}.log"))

    def federate(self, databases: dict[str, str]) -> tuple[Site, Site]:
        """A studio and a facility that know each other over mutual TLS (a fresh demo CA)."""
        pki = self.root / "pki"
        init_ca(pki / "ca")
        for name in databases:
            issue_site_cert(pki / "ca", name, pki)
        studio_fed, facility_fed = free_port(), free_port()
        studio = self.add_site(
            "studio",
            databases["studio"],
            _federation_toml(pki, "studio", studio_fed, "facility", facility_fed),
        )
        facility = self.add_site(
            "facility",
            databases["facility"],
            _federation_toml(pki, "facility", facility_fed, "studio", studio_fed),
        )
        return studio, facility

    def children(self) -> list[Child]:
        out: list[Child] = []
        for site in self.sites.values():
            out += [*site.servers, site.agent]
        return out

    def close(self) -> None:
        """Continue what is stopped, then end servers before agents; kill what lingers."""
        for child in self.children():
            child.signal_group(signal.SIGCONT)
        for child in self.children():
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children():
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
            # The group may still hold a renderer the server started.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def soak_databases(
    backend: str, root: Path, sites: tuple[str, ...]
) -> AsyncIterator[dict[str, str]]:
    """A fresh database URL per site; PostgreSQL ones are created here and dropped afterwards."""
    if backend == "sqlite":
        yield {site: f"sqlite:///{root / f'{site}.db'}" for site in sites}
        return
    names = {site: f"soak_{site}_{uuid.uuid4().hex[:8]}" for site in sites}
    created: list[str] = []
    try:
        for name in names.values():
            await _pg_admin(f'CREATE DATABASE "{name}"')
            created.append(name)
        base = PG_ADMIN_DSN.rsplit("/", 1)[0]
        yield {site: f"{base}/{name}" for site, name in names.items()}
    finally:
        for name in created:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
