"""Real processes for end-to-end tests: site agents and render servers on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spillway_cmd(*args: str) -> list[str]:
    return [PYTHON, "-m", "spillway", *args]


@dataclass
class Process:
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL, like a crash: no cleanup runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Agent(Process):
    def __init__(self, root: Path, *, name: str, database: str, extra_toml: str = "") -> None:
        self.root = root
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = root / "storage"
        self.config_path = root / f"{name}.toml"
        root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f'name = "{name}"\nlisten = "127.0.0.1:{self.port}"\ndatabase = "{database}"\n'
            f'storage = "{self.storage}"\n'
            "[scheduling]\nheartbeat_interval = 0.5\nheartbeat_timeout = 3.0\nlease_check_interval = 0.5\n"
            + extra_toml
        )
        super().__init__(
            spillway_cmd("agent", "--config", str(self.config_path)), root / f"{name}-agent.log"
        )

    def start(self) -> None:
        super().start()
        wait_for(lambda: self._healthy(), 30, f"agent {self.name} to start\n{self.log()}")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return bool(self.get("/api/v1/health"))
        except (OSError, urllib.error.URLError):
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body or {}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/api/v1/jobs/{job_id}")  # type: ignore[no-any-return]

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            spillway_cmd(*args, "--agent", self.url),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"spillway {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def render_server(
        self, name: str, *, slots: int = 1, tags: str = "", packages: str = ""
    ) -> Process:
        argv = spillway_cmd(
            "render-server",
            "--agent",
            self.url,
            "--name",
            name,
            "--slots",
            str(slots),
            "--cache",
            str(self.root / "cache" / name),
            "--workdir",
            str(self.root / "work" / name),
            "--state",
            str(self.root / "state" / name),
        )
        if tags:
            argv += ["--tags", tags]
        if packages:
            argv += ["--packages", packages]
        proc = Process(argv, self.root / f"{name}.log")
        proc.start()
        return proc

    def wait_servers(self, count: int, timeout: float = 30) -> None:
        def online() -> bool:
            servers = self.get("/api/v1/servers")["servers"]
            return sum(s["status"] in ("idle", "busy") for s in servers) >= count

        wait_for(online, timeout, f"{count} render servers to connect")

    def wait_job(
        self,
        job_id: str,
        *,
        states: tuple[str, ...] = ("done", "failed", "cancelled"),
        timeout: float = 120,
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}

        def finished() -> bool:
            try:
                result.update(self.job(job_id))
            except (OSError, urllib.error.URLError):
                return False
            return result["job"]["state"] in states

        wait_for(finished, timeout, f"job {job_id} to reach {states}")
        return result


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- N federated sites ---------------------------------------------------------------


@dataclass(frozen=True)
class PeerLink:
    """One ``[[peers]]`` entry of a site's TOML: the peer's name, extra keys of the entry
    (``preference = 10``), and the lines of its ``[peers.policy]`` table, if any."""

    name: str
    keys: str = ""
    policy: str = ""


def make_pki(root: Path, sites: list[str] | tuple[str, ...]) -> Path:
    """A federation CA and one certificate per site, made with the CLI; returns the folder
    (``ca/ca.pem``, ``certs/<site>.pem``, ``certs/<site>-key.pem``)."""
    pki = root / "pki"
    cli = [PYTHON, "-m", "spillway", "certs"]
    subprocess.run(
        [*cli, "init", "--dir", str(pki / "ca")], check=True, cwd=ROOT, capture_output=True
    )
    for site in sites:
        subprocess.run(
            [*cli, "issue", site, "--dir", str(pki / "ca"), "--out", str(pki / "certs")],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
    return pki


def federation_toml(
    pki: Path,
    name: str,
    port: int,
    links: list[PeerLink] | tuple[PeerLink, ...],
    ports: dict[str, int],
    *,
    lease: float = 60,
    overflow_after: float | None = None,
    advertise_interval: float = 1,
) -> str:
    """The ``[federation]`` table and the ``[[peers]]`` entries of one site."""
    overflow = "" if overflow_after is None else f"overflow_after = {overflow_after}\n"
    text = (
        f'\n[federation]\nlisten = "127.0.0.1:{port}"\nca = "{pki}/ca/ca.pem"\n'
        f'cert = "{pki}/certs/{name}.pem"\nkey = "{pki}/certs/{name}-key.pem"\n'
        f"lease = {lease}\nadvertise_interval = {advertise_interval}\n{overflow}"
    )
    for link in links:
        text += (
            f'\n[[peers]]\nname = "{link.name}"\nurl = "https://127.0.0.1:{ports[link.name]}"\n'
            f"{link.keys}\n"
        )
        if link.policy:
            text += f"[peers.policy]\n{link.policy}\n"
    return text


class Federation:
    """N site agents that peer with each other over mutual TLS (nothing started).

    ``links[site]`` lists the peers of ``site`` (default: every other site, no options);
    ``databases[site]`` its database URL (default: an SQLite file under ``root``).
    """

    def __init__(
        self,
        root: Path,
        sites: list[str] | tuple[str, ...],
        *,
        links: dict[str, list[PeerLink]] | None = None,
        databases: dict[str, str] | None = None,
        lease: float = 60,
    ) -> None:
        self.root = root
        self.pki = make_pki(root, sites)
        self.fed_ports = {site: free_port() for site in sites}
        self.agents: dict[str, Agent] = {}
        for site in sites:
            peers = (links or {}).get(site) or [PeerLink(other) for other in sites if other != site]
            database = (databases or {}).get(site) or f"sqlite:///{root / f'{site}.db'}"
            self.agents[site] = Agent(
                root / site,
                name=site,
                database=database,
                extra_toml=federation_toml(
                    self.pki, site, self.fed_ports[site], peers, self.fed_ports, lease=lease
                ),
            )

    def __getitem__(self, site: str) -> Agent:
        return self.agents[site]

    def fed_url(self, site: str) -> str:
        return f"https://127.0.0.1:{self.fed_ports[site]}"

    def cert_files(self, site: str) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) of ``site``."""
        return (
            self.pki / "ca" / "ca.pem",
            self.pki / "certs" / f"{site}.pem",
            self.pki / "certs" / f"{site}-key.pem",
        )


def peer_servers(agent: Agent, peer: str) -> list[dict[str, Any]] | None:
    """The online servers ``peer`` last advertised to ``agent``; None while it is not up."""
    for entry in agent.get("/api/v1/peers")["peers"]:
        if entry["name"] == peer and entry["state"] == "up":
            return [s for s in entry["servers"] if s["status"] in ("idle", "busy")]
    return None


def wait_advertised(agent: Agent, peer: str, servers: int, timeout: float = 30) -> None:
    """Wait until ``agent`` sees ``peer`` up with at least ``servers`` online servers."""

    def enough() -> bool:
        seen = peer_servers(agent, peer)
        return seen is not None and len(seen) >= servers

    wait_for(enough, timeout, f"{agent.name} to see {servers} servers advertised by {peer}")
