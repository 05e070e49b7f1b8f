"""Real processes for end-to-end tests: site agents and render servers on loopback.

Federated sites (certificates, peers, several agents at once) are in
:mod:`federation_harness`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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

    def submit(self, *args: str) -> str:
        """``spillway submit ARGS --json`` at this site; the new job's id."""
        body = json.loads(self.cli("submit", *args, "--json").stdout)
        return str(body["job"]["id"] if "job" in body else body["id"])

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


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` every ``interval`` until it is true; fail after ``timeout``.

    A short interval: each poll is one loopback request, and a test waits on many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
