"""Acceptance of federation: two real site agents over mutual TLS on loopback.

The studio has only a built-in-tracer render server; the facility has two
POV-Ray servers. A POV-Ray job submitted to the studio is forwarded whole with
its assets, rendered at the facility, and its frames land at both sites.
Runs on SQLite (the single-site suite covers PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import ssl
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert, load_certificate
from federation.envelope import decode_reply, encode_envelope
from federation.protocol import (
    FrameOutput,
    JobSpec,
    Notify,
    NotifyState,
    Offer,
    OfferReply,
)
from spillway.core.records import FileEntry

from .harness import ROOT, Agent, Process, free_port, spillway_cmd, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCENE = ROOT / "examples" / "povray" / "scene.pov"
ENVELOPE = {"Content-Type": "application/vnd.spillway.fed+msgpack"}


@dataclass
class Sites:
    studio: Agent
    facility: Agent
    pki: Path
    studio_fed: str
    facility_fed: str

    def tls(self, site: str) -> TlsFiles:
        return TlsFiles(
            ca=self.pki / "ca" / "ca.pem",
            cert=self.pki / "certs" / f"{site}.pem",
            key=self.pki / "certs" / f"{site}-key.pem",
        )


def fed_toml(
    pki: Path,
    name: str,
    port: int,
    peer: str,
    peer_port: int,
    lease: float = 60,
    overflow_after: float | None = None,
) -> str:
    overflow = "" if overflow_after is None else f"overflow_after = {overflow_after}\n"
    return (
        f'\n[federation]\nlisten = "127.0.0.1:{port}"\nca = "{pki}/ca/ca.pem"\n'
        f'cert = "{pki}/certs/{name}.pem"\nkey = "{pki}/certs/{name}-key.pem"\n'
        f"lease = {lease}\nadvertise_interval = 1\n{overflow}"
        f'\n[[peers]]\nname = "{peer}"\nurl = "https://127.0.0.1:{peer_port}"\n'
    )


def run_cli(*args: str) -> None:
    subprocess.run(spillway_cmd(*args), check=True, cwd=ROOT, capture_output=True, timeout=60)


def two_sites(
    root: Path,
    lease: float = 60,
    overflow_after: float | None = None,
    databases: tuple[str, str] | None = None,
) -> tuple[Agent, Agent, Path, int, int]:
    """Certificates (made with the CLI) and the two agents' configurations; nothing started.

    ``databases``: the studio's and the facility's database URLs (default: an SQLite file each).
    """
    pki = root / "pki"
    run_cli("certs", "init", "--dir", str(pki / "ca"))
    for site in ("studio", "facility"):
        run_cli("certs", "issue", site, "--dir", str(pki / "ca"), "--out", str(pki / "certs"))
    studio_port, facility_port = free_port(), free_port()
    studio_db, facility_db = databases or (
        f"sqlite:///{root / 'studio.db'}",
        f"sqlite:///{root / 'facility.db'}",
    )
    studio = Agent(
        root / "studio",
        name="studio",
        database=studio_db,
        extra_toml=fed_toml(
            pki, "studio", studio_port, "facility", facility_port, lease, overflow_after
        ),
    )
    facility = Agent(
        root / "facility",
        name="facility",
        database=facility_db,
        extra_toml=fed_toml(pki, "facility", facility_port, "studio", studio_port, lease),
    )
    return studio, facility, pki, studio_port, facility_port


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sites]:
    """Both sites on SQLite, then both on PostgreSQL (each its own database)."""
    root = tmp_path_factory.mktemp("federation")
    with contextlib.ExitStack() as stack:
        databases = None
        if request.param == "postgres":
            new_db = request.getfixturevalue("empty_pg_database")
            databases = (
                stack.enter_context(new_db("studio")),
                stack.enter_context(new_db("facility")),
            )
        with running_sites(root, {"fac-1": "povray", "fac-2": "povray"}, databases=databases) as (
            studio,
            facility,
            pki,
            studio_port,
            facility_port,
        ):
            yield Sites(
                studio=studio,
                facility=facility,
                pki=pki,
                studio_fed=f"https://127.0.0.1:{studio_port}",
                facility_fed=f"https://127.0.0.1:{facility_port}",
            )


@contextlib.contextmanager
def running_sites(
    root: Path,
    facility_servers: Mapping[str, str],
    *,
    overflow_after: float | None = None,
    databases: tuple[str, str] | None = None,
) -> Iterator[tuple[Agent, Agent, Path, int, int]]:
    """``two_sites`` started: the studio with one built-in server, the facility with
    ``facility_servers`` (name -> package), until the studio sees them all in the
    facility's capacity advert; everything is stopped afterwards."""
    studio, facility, pki, studio_port, facility_port = two_sites(
        root, overflow_after=overflow_after, databases=databases
    )
    started: list[Process] = []
    try:
        for agent in (studio, facility):
            agent.start()
            started.append(agent)
        started.append(studio.render_server("studio-rs", packages="builtin"))
        for name, package in facility_servers.items():
            started.append(facility.render_server(name, packages=package))
        studio.wait_servers(1)
        facility.wait_servers(len(facility_servers))
        wanted = Counter(facility_servers.values())
        wait_for(lambda: _advertised(studio, wanted), 30, "the facility's capacity advert")
        yield studio, facility, pki, studio_port, facility_port
    finally:
        for proc in reversed(started):
            proc.stop()


def _advertised(studio: Agent, wanted: Counter[str]) -> bool:
    """Whether the facility is up at the studio with at least ``wanted[p]`` online servers per package."""
    for peer in studio.get("/api/v1/peers")["peers"]:
        if peer["name"] == "facility" and peer["state"] == "up":
            online = [s for s in peer["servers"] if s["status"] in ("idle", "busy")]
            return all(
                sum(package in s["packages"] for s in online) >= n for package, n in wanted.items()
            )
    return False


def submit(agent: Agent, *args: str) -> str:
    result = agent.cli("submit", str(SCENE), "--package", "povray", "--json", *args)
    body = json.loads(result.stdout)
    return str(body["job"]["id"] if "job" in body else body["id"])


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_frames_at_both_sites(sites: Sites, studio_detail: dict[str, Any], count: int) -> None:
    job = studio_detail["job"]
    assert job["state"] == "done", job
    remote = sites.facility.job(job["remote_job_id"])
    assert remote["job"]["state"] == "done"
    assert remote["job"]["origin_site"] == "studio"
    assert remote["job"]["origin_job_id"] == job["id"]
    studio_dir, facility_dir = Path(job["storage_dir"]), Path(remote["job"]["storage_dir"])
    studio_files = sorted(p.name for p in studio_dir.glob("*.png"))
    assert studio_files == sorted(p.name for p in facility_dir.glob("*.png"))
    assert len(studio_files) == count
    listed = {
        f["name"]: f["sha256"]
        for f in sites.studio.get(f"/api/v1/jobs/{job['id']}/frames")["frames"]
    }
    assert sorted(listed) == studio_files
    for name in studio_files:
        assert sha256_file(studio_dir / name) == sha256_file(facility_dir / name) == listed[name]
    # Every file of a frame comes back, the previews the remote's render servers made too.
    previews = sorted(p.name for p in (studio_dir / ".previews").iterdir())
    assert previews == sorted(p.name for p in (facility_dir / ".previews").iterdir())
    assert previews == [f"{name}.png" for name in studio_files]


def test_job_only_the_remote_can_render_is_forwarded_rendered_and_fetched(sites: Sites) -> None:
    started = time.monotonic()
    job_id = submit(sites.studio, "--frames", "1-6")
    detail = sites.studio.wait_job(job_id, timeout=120)
    job = detail["job"]
    assert job["placement"] == "facility", job
    assert "povray" in job["placement_reason"]
    transfer = job["transfer"]
    assert transfer["bytes_sent"] > 0 and transfer["blobs_sent"] == 3, transfer
    assert_frames_at_both_sites(sites, detail, 6)

    remote = sites.facility.job(job["remote_job_id"])
    servers = {f["server"] for f in remote["frames"]}
    assert len(servers) >= 2 and servers <= {"fac-1", "fac-2"}, remote["frames"]
    assert {f["server"] for f in detail["frames"]} == {"facility"}
    assert {t["server"] for t in detail["tasks"]} == {f"facility/{s}" for s in servers}, (
        "the origin's tasks name the site and the server rendering them"
    )
    assert all(t["attempt"] == 1 and t["started_at"] for t in detail["tasks"]), detail["tasks"]

    # The origin's /metrics counts what federation moved (cumulative over this module's jobs).
    with urllib.request.urlopen(sites.studio.url + "/metrics", timeout=10) as resp:
        metrics = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.read().decode())
            for s in family.samples
        }
    sent = metrics[("spillway_federation_bytes_total", (("direction", "sent"),))]
    received = metrics[("spillway_federation_bytes_total", (("direction", "received"),))]
    assert sent >= transfer["bytes_sent"]
    assert received >= sum(f["size"] for f in detail["frames"])
    assert metrics[("spillway_federation_outbox_depth", ())] >= 0

    shown = sites.studio.cli("job", job_id).stdout
    assert "facility" in shown and "povray" in shown
    out = sites.studio.root / "download"
    sites.studio.cli("download", job_id, str(out))
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f["name"] for f in detail["frames"])
    print(
        f"forwarded job: {transfer['bytes_sent']} bytes in {transfer['blobs_sent']} blobs, "
        f"done in {time.monotonic() - started:.1f}s"
    )


def test_resubmitting_with_unchanged_assets_transfers_no_bytes(sites: Sites) -> None:
    first = submit(sites.studio, "--frames", "1")  # makes sure the facility has the assets
    sites.studio.wait_job(first, timeout=120)
    job_id = submit(sites.studio, "--frames", "1-2")
    detail = sites.studio.wait_job(job_id, timeout=120)
    transfer = detail["job"]["transfer"]
    assert transfer["bytes_sent"] == 0 and transfer["blobs_sent"] == 0, transfer
    assert transfer["blobs_skipped"] == 3
    assert_frames_at_both_sites(sites, detail, 2)


def test_no_forward_and_unknown_site(sites: Sites) -> None:
    refused = sites.studio.cli(
        "submit", str(SCENE), "--package", "povray", "--frames", "1", "--no-forward", check=False
    )
    assert refused.returncode != 0 and "forwarding is off" in refused.stderr, refused.stderr
    assert "no server has povray" in refused.stderr
    job_id = submit(sites.studio, "--frames", "1", "--no-forward", "--queue-anyway")
    job = sites.studio.job(job_id)["job"]
    assert job["placement"] == "local" and "disabled" in job["placement_reason"]
    sites.studio.cli("cancel", job_id)
    result = sites.studio.cli(
        "submit", str(SCENE), "--package", "povray", "--frames", "1", "--site", "mars", check=False
    )
    assert result.returncode != 0 and "facility" in result.stderr + result.stdout


# --- security -----------------------------------------------------------------------


async def _request(
    url: str,
    ssl_ctx: ssl.SSLContext,
    *,
    method: str = "GET",
    data: bytes = b"",
    headers: dict[str, str] | None = None,
    server_hostname: str | None = None,
) -> tuple[int, bytes]:
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(
            method,
            url,
            data=data,
            headers=headers,
            ssl=ssl_ctx,
            server_hostname=server_hostname,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as resp,
    ):
        result = resp.status, await resp.read()
    await asyncio.sleep(0.1)  # let the TLS transport finish closing before the loop ends
    return result


def _client(files: TlsFiles | None, ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=ca)
    if files is not None:
        ctx.load_cert_chain(files.cert, files.key)
    return ctx


def _refused_at_handshake(url: str, ctx: ssl.SSLContext) -> bool:
    """True if the TLS handshake (or, with TLS 1.3, the first read after it) is refused."""
    host, port = url.removeprefix("https://").split("/")[0].rsplit(":", 1)
    try:
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="facility") as tls,
        ):
            tls.sendall(b"GET /fed/v1/jobs/x HTTP/1.1\r\nHost: facility\r\n\r\n")
            return tls.recv(1024) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def _job_count(agent: Agent) -> int:
    return len(agent.get("/api/v1/jobs")["jobs"])


def test_unauthenticated_and_foreign_ca_clients_are_refused(sites: Sites, tmp_path: Path) -> None:
    before = _job_count(sites.facility)
    ca = sites.pki / "ca" / "ca.pem"
    url = f"{sites.facility_fed}/fed/v1/jobs/x"
    assert _refused_at_handshake(url, _client(None, ca))
    init_ca(tmp_path / "other-ca")
    issue_site_cert(tmp_path / "other-ca", "studio", tmp_path / "other")
    foreign = TlsFiles(
        ca=ca, cert=tmp_path / "other" / "studio.pem", key=tmp_path / "other" / "studio-key.pem"
    )
    assert _refused_at_handshake(url, _client(foreign, ca))
    # A certificate from the right CA but for a site that is not a configured peer.
    issue_site_cert(sites.pki / "ca", "intruder", tmp_path / "intruder")
    intruder = TlsFiles(
        ca=ca,
        cert=tmp_path / "intruder" / "intruder.pem",
        key=tmp_path / "intruder" / "intruder-key.pem",
    )
    status, _ = asyncio.run(_request(url, _client(intruder, ca)))
    assert status == 403
    assert _job_count(sites.facility) == before


def _signed(sites: Sites, site: str, msg: Any, msg_id: str | None = None) -> bytes:
    key = serialization.load_pem_private_key(sites.tls(site).key.read_bytes(), password=None)
    return encode_envelope(msg, site=site, key=key, now=time.time(), msg_id=msg_id)  # type: ignore[arg-type]


def test_tampered_blob_is_refused_and_nothing_stored(sites: Sites) -> None:
    content = b"a texture that will be tampered with\n" * 100
    sha = hashlib.sha256(content).hexdigest()
    spec = JobSpec(
        name="tamper",
        owner="t",
        priority=50,
        profile={"package": "povray"},
        frames="1",
        chunk_size=1,
        scene="scene.pov",
        output_name="tamper",
    )
    offer = Offer(
        key=f"studio:tamper-{sha[:8]}:1",
        origin_job_id=f"tamper-{sha[:8]}",
        epoch=1,
        job=spec,
        manifest=(FileEntry(path="scene.pov", sha256=sha, size=len(content)),),
    )
    studio_tls = TlsContexts(sites.tls("studio"))
    opts = studio_tls.request_options("facility")
    status, body = asyncio.run(
        _request(
            f"{sites.facility_fed}/fed/v1/offer",
            opts["ssl"],
            method="POST",
            data=_signed(sites, "studio", offer),
            headers=ENVELOPE,
            server_hostname="facility",
        )
    )
    assert status == 200
    reply = decode_reply(body, OfferReply)
    assert reply.accepted and reply.missing == (sha,)
    tampered = content.replace(b"texture", b"TEXTURE")
    status, body = asyncio.run(
        _request(
            f"{sites.facility_fed}/fed/v1/blobs/{sha}",
            opts["ssl"],
            method="PATCH",
            data=tampered,
            headers={
                "Upload-Offset": "0",
                "Upload-Length": str(len(tampered)),
                "Content-Type": "application/offset+octet-stream",
            },
            server_hostname="facility",
        )
    )
    assert status == 422, body
    assets = sites.facility.storage / ".assets"
    assert not (assets / "blobs" / sha[:2] / sha[2:]).exists()
    assert not list((assets / "partial").glob(f"{sha}*"))


def test_replayed_notification_is_refused_and_changes_nothing(sites: Sites) -> None:
    job_id = next(
        j["id"]
        for j in sites.studio.get("/api/v1/jobs")["jobs"]
        if j["placement"] == "facility" and j["state"] == "done"
    )
    before = sites.studio.job(job_id)
    job = before["job"]
    notify = Notify(
        origin_job_id=job_id,
        remote_job_id=job["remote_job_id"],
        epoch=job["placement_epoch"],
        state=NotifyState.FAILED,
        frames_done=0,
        frames_total=job["frame_count"],
        frames=(FrameOutput(frame=1, sha256="0" * 64, size=1, name="x.png"),),
        error="forged",
    )
    data = _signed(sites, "facility", notify)
    opts = TlsContexts(sites.tls("facility")).request_options("studio")
    url = f"{sites.studio_fed}/fed/v1/notify"
    first, _ = asyncio.run(
        _request(
            url, opts["ssl"], method="POST", data=data, headers=ENVELOPE, server_hostname="studio"
        )
    )
    again, body = asyncio.run(
        _request(
            url, opts["ssl"], method="POST", data=data, headers=ENVELOPE, server_hostname="studio"
        )
    )
    assert first == 200  # a finished job ignores it
    assert again == 409 and b"duplicate" in body
    after = sites.studio.job(job_id)
    assert after["job"]["state"] == "done" and after["job"]["updated_at"] == job["updated_at"]
    assert after["frames"] == before["frames"]
    assert load_certificate(sites.tls("facility").cert)  # the forged message was really signed


def test_remote_agent_killed_after_commit_still_delivers_every_frame_once(sites: Sites) -> None:
    job_id = submit(sites.studio, "--frames", "1-6", "--name", "crash")

    def committed() -> bool:
        return bool(sites.studio.job(job_id)["job"]["remote_job_id"])

    wait_for(committed, 60, "the forward to be committed")
    sites.facility.kill()
    time.sleep(1)
    sites.facility.start()
    detail = sites.studio.wait_job(job_id, timeout=150)
    assert_frames_at_both_sites(sites, detail, 6)
    assert detail["job"]["placement"] == "facility" and detail["job"]["placement_epoch"] == 1


def test_unreachable_remote_beyond_lease_is_replaced_and_its_late_result_ignored(
    tmp_path: Path, processes: list[Process]
) -> None:
    studio, facility, _, _, _ = two_sites(tmp_path, lease=4)
    for agent in (studio, facility):
        agent.start()
        processes.append(agent)
    processes.append(studio.render_server("studio-rs", packages="builtin"))
    processes.append(facility.render_server("fac-rs", packages="builtin"))
    studio.wait_servers(1)
    facility.wait_servers(1)
    wait_for(lambda: studio.get("/api/v1/peers")["peers"][0]["state"] == "up", 30, "facility up")
    scene = ROOT / "examples" / "textured" / "scene.json"
    result = studio.cli(
        "submit",
        str(scene),
        "--package",
        "builtin",
        "--frames",
        "1-24",
        "--site",
        "facility",
        "--json",
    )
    job_id = json.loads(result.stdout)["job"]["id"]
    wait_for(lambda: bool(studio.job(job_id)["job"]["remote_job_id"]), 60, "the commit")
    remote_id = studio.job(job_id)["job"]["remote_job_id"]
    facility.kill()

    detail = studio.wait_job(job_id, timeout=90)
    job = detail["job"]
    assert job["state"] == "done", job
    assert job["placement"] == "local" and job["placement_epoch"] == 2, job
    assert "re-placed: facility unreachable" in job["placement_reason"]
    assert {f["server"] for f in detail["frames"]} == {"studio-rs"}

    facility.start()  # its old placement finishes and notifies; the studio must ignore it
    facility.wait_job(remote_id, timeout=90)
    wait_for(
        lambda: "epoch 1 is not the current placement" in studio.log(),
        60,
        "the late notification to reach the studio",
    )
    after = studio.job(job_id)
    assert after["job"]["placement_epoch"] == 2 and after["frames"] == detail["frames"]
    assert after["job"]["updated_at"] == job["updated_at"], "the late result changed the job"
    # The files are still the studio's own renders, not the facility's late ones.
    job_dir = Path(job["storage_dir"])
    frames = sorted(p.name for p in job_dir.iterdir() if p.is_file())  # not .previews/
    assert frames == sorted(f["name"] for f in detail["frames"])
    for frame in detail["frames"]:
        assert sha256_file(job_dir / frame["name"]) == frame["sha256"], frame
    late = studio.log().split("epoch 1 is not the current placement", 1)[1]
    assert f"of job {job_id} from facility" not in late, "late frames were fetched"
