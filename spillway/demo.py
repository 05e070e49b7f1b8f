"""``spillway demo``: two federated sites on this machine.

Creates a federation CA and site certificates under ``var/demo/certs``, then
starts two site agents on SQLite, talking mutual TLS: the *studio* with two
built-in-tracer render servers and the *facility* with two POV-Ray servers.
It submits two jobs to the studio: the textured built-in animation (rendered
locally) and the POV-Ray example, which no studio server can render, so it is
forwarded with its assets, rendered at the facility and fetched back. It prints
what went where, the bytes transferred and where the PNGs are at both sites,
then stops everything it started.
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

from federation.certs import init_ca, issue_site_cert
from spillway.client import (
    AgentClient,
    SpillwayClientError,
    SubmitOptions,
    submit_scene,
    wait_for_job,
)
from spillway.client.formatting import human_size, progress_line

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "textured" / "scene.json"
POVRAY_EXAMPLE = REPO / "examples" / "povray" / "scene.pov"


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
        proc = subprocess.Popen(
            [sys.executable, "-m", "spillway", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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


async def _wait_health(
    url: str, proc: subprocess.Popen[bytes], log: Path, limit_s: float = 30
) -> None:
    deadline = time.monotonic() + limit_s
    async with AgentClient(url, timeout_s=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the agent exited early; see {log}")
            try:
                await client.health()
                return
            except SpillwayClientError:
                await asyncio.sleep(0.2)
    raise RuntimeError(f"the agent did not start within {limit_s:.0f}s; see {log}")


async def _wait_servers(
    client: AgentClient, count: int, limit_s: float = 60
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        servers = [s for s in await client.servers() if s["status"] in ("idle", "busy")]
        if len(servers) >= count:
            return servers
        await asyncio.sleep(0.3)
    raise RuntimeError("render servers did not connect in time; see the logs under var/demo/logs")


def _who_rendered(detail: dict[str, Any]) -> str:
    by_server: dict[str, list[int]] = {}
    for frame in detail["frames"]:
        by_server.setdefault(frame["server"] or "?", []).append(frame["frame"])
    return "; ".join(
        f"{server}: {len(frames)} frames" for server, frames in sorted(by_server.items())
    )


def _fed_toml(root: Path, name: str, port: int, peer: str, peer_port: int) -> str:
    certs = root / "certs"
    return (
        f'\n[federation]\nlisten = "127.0.0.1:{port}"\nca = "{certs / "ca" / "ca.pem"}"\n'
        f'cert = "{certs / name}.pem"\nkey = "{certs / name}-key.pem"\n'
        "advertise_interval = 1\nlease = 60\n"
        f'\n[[peers]]\nname = "{peer}"\nurl = "https://127.0.0.1:{peer_port}"\n'
    )


async def _start_site(
    root: Path, procs: Processes, name: str, fed: str, packages: str, servers: tuple[str, ...]
) -> str:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_site_config(root / name, name, port, fed)
    agent = procs.spawn(f"{name}-agent", "agent", "--config", str(config))
    await _wait_health(url, agent, procs.log_dir / f"{name}-agent.log")
    for server in servers:
        procs.spawn(
            server,
            "render-server",
            "--agent",
            url,
            "--name",
            server,
            "--slots",
            "1",
            "--packages",
            packages,
            "--cache",
            str(root / "cache" / server),
            "--workdir",
            str(root / "work" / server),
            "--state",
            str(root / "state" / server),
        )
    async with AgentClient(url) as client:
        found = await _wait_servers(client, len(servers))
    print(
        f"site {name:<9} {url}  render servers: "
        + ", ".join(
            f"{s['name']} ({', '.join(f'{k} {v}' for k, v in s['packages'].items())})"
            for s in found
        )
    )
    return url


async def _wait_for_peer(
    client: AgentClient, peer: str, package: str, within_s: float = 30
) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for p in await client.peers():
            if p["name"] == peer and p["state"] == "up" and package in (p.get("capacity") or {}):
                return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"the studio never heard from {peer}; see the logs under var/demo/logs")


async def _submit(client: AgentClient, scene: Path, options: SubmitOptions) -> str:
    result = await submit_scene(client, scene, options)
    job = result.job.get("job", result.job)
    print(
        f"submitted {options.name!r} ({options.package}, frames {options.frames}): job {job['id']}, "
        f"{result.uploaded_files} files ({human_size(result.uploaded_bytes)}) uploaded to the studio"
    )
    return str(job["id"])


async def _run(root: Path, procs: Processes) -> int:
    certs = root / "certs"
    init_ca(certs / "ca")
    for site in ("studio", "facility"):
        issue_site_cert(certs / "ca", site, certs)
    studio_fed, facility_fed = _free_port(), _free_port()
    print(f"federation CA and site certificates in {certs}")
    # Without POV-Ray the facility renders with the built-in tracer and the second
    # job asks for the facility explicitly, so the demo still shows a forward.
    remote_package = "povray" if shutil.which("povray") else "builtin"
    if remote_package != "povray":
        print(
            "POV-Ray is not installed (apt-get install povray); the facility uses the built-in tracer "
            "and the second job is sent there with --site facility"
        )
    facility_url = await _start_site(
        root,
        procs,
        "facility",
        _fed_toml(root, "facility", facility_fed, "studio", studio_fed),
        remote_package,
        ("fac-1", "fac-2"),
    )
    studio_url = await _start_site(
        root,
        procs,
        "studio",
        _fed_toml(root, "studio", studio_fed, "facility", facility_fed),
        "builtin",
        ("rs-1", "rs-2"),
    )
    print(f"watch it live in the web monitor: {studio_url}/ (the facility's: {facility_url}/)")
    async with AgentClient(studio_url) as studio, AgentClient(facility_url) as facility:
        await _wait_for_peer(studio, "facility", remote_package)
        started = time.monotonic()
        second = (SubmitOptions(package="povray", frames="1-12", name="planet"), POVRAY_EXAMPLE)
        if remote_package != "povray":
            second = (
                SubmitOptions(package="builtin", frames="1-12", name="planet", site="facility"),
                EXAMPLE,
            )
        jobs = [
            await _submit(
                studio, EXAMPLE, SubmitOptions(package="builtin", frames="1-24", name="textured")
            ),
            await _submit(studio, second[1], second[0]),
        ]

        def show(detail: dict[str, Any]) -> None:
            print("\r" + progress_line(detail["job"], 2, None), end="", flush=True)

        finished = []
        for job_id in jobs:
            finished.append(await wait_for_job(studio, job_id, poll_s=0.5, on_update=show))
            print()
        elapsed = time.monotonic() - started
        details = [await studio.job(job_id) for job_id in jobs]
        return await _report_all(details, facility, elapsed, root / "studio" / "storage")


async def _report_all(
    details: list[dict[str, Any]], facility: AgentClient, elapsed: float, studio_storage: Path
) -> int:
    status = 0
    print("\nwhat went where:")
    for detail in details:
        job = detail["job"]
        print(
            f"  {job['name']:<9} job {job['id']}  {job['state']}  placement {job['placement']}"
            f" — {job['placement_reason']}"
        )
        print(f"            rendered by {_who_rendered(detail)}")
        if job["placement"] != "local":
            transfer = job.get("transfer") or {}
            remote = await facility.job(job["remote_job_id"])
            print(
                f"            assets sent: {human_size(transfer.get('bytes_sent', 0))} in "
                f"{transfer.get('blobs_sent', 0)} blobs ({transfer.get('blobs_skipped', 0)} "
                "already at the facility)"
            )
            print(
                f"            at the facility: job {remote['job']['id']}, rendered by "
                f"{_who_rendered(remote)}; PNGs in {remote['job']['storage_dir']}"
            )
        print(f"            PNGs at the studio: {job['storage_dir']}")
        if job["state"] != "done":
            print(f"job {job['id']} ended {job['state']}: {job.get('error')}", file=sys.stderr)
            status = 1
    print(f"\nboth jobs finished in {elapsed:.1f}s; studio storage root {studio_storage}")
    return status


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
