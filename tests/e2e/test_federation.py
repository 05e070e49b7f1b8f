"""Acceptance of federation: two real site agents over mutual TLS on loopback.

The studio has only a built-in-tracer render server; the facility has two
POV-Ray servers. A POV-Ray job submitted to the studio is forwarded whole with
its assets, rendered at the facility, and its frames land at both sites.
Runs on SQLite, then on PostgreSQL (each site its own database).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert, load_certificate
from federation.envelope import decode_reply
from federation.protocol import FrameOutput, Notify, NotifyState, OfferReply

from .federation_harness import (
    BACKENDS,
    PAIR,
    Federation,
    fed_request,
    running_pair,
    sample_offer,
    site_databases,
)
from .harness import ROOT, Agent, sha256_file, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCENE = ROOT / "examples" / "povray" / "scene.pov"


@pytest.fixture(scope="module", params=BACKENDS)
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    """Both sites on SQLite, then both on PostgreSQL (each its own database)."""
    root = tmp_path_factory.mktemp("federation")
    with (
        site_databases(request, PAIR) as databases,
        running_pair(root, {"fac-1": "povray", "fac-2": "povray"}, databases=databases) as fed,
    ):
        yield fed


def submit(agent: Agent, *args: str) -> str:
    return agent.submit(str(SCENE), "--package", "povray", *args)


def assert_frames_at_both_sites(
    sites: Federation, studio_detail: dict[str, Any], count: int
) -> None:
    job = studio_detail["job"]
    assert job["state"] == "done", job
    remote = sites["facility"].job(job["remote_job_id"])
    assert remote["job"]["state"] == "done"
    assert remote["job"]["origin_site"] == "studio"
    assert remote["job"]["origin_job_id"] == job["id"]
    studio_dir, facility_dir = Path(job["storage_dir"]), Path(remote["job"]["storage_dir"])
    studio_files = sorted(p.name for p in studio_dir.glob("*.png"))
    assert studio_files == sorted(p.name for p in facility_dir.glob("*.png"))
    assert len(studio_files) == count
    listed = {
        f["name"]: f["sha256"]
        for f in sites["studio"].get(f"/api/v1/jobs/{job['id']}/frames")["frames"]
    }
    assert sorted(listed) == studio_files
    for name in studio_files:
        assert sha256_file(studio_dir / name) == sha256_file(facility_dir / name) == listed[name]
    # Every file of a frame comes back, the previews the remote's render servers made too.
    previews = sorted(p.name for p in (studio_dir / ".previews").iterdir())
    assert previews == sorted(p.name for p in (facility_dir / ".previews").iterdir())
    assert previews == [f"{name}.png" for name in studio_files]


def test_job_only_the_remote_can_render_is_forwarded_rendered_and_fetched(
    sites: Federation,
) -> None:
    started = time.monotonic()
    job_id = submit(sites["studio"], "--frames", "1-6")
    detail = sites["studio"].wait_job(job_id, timeout=120)
    job = detail["job"]
    assert job["placement"] == "facility", job
    assert "povray" in job["placement_reason"]
    transfer = job["transfer"]
    assert transfer["bytes_sent"] > 0 and transfer["blobs_sent"] == 3, transfer
    assert_frames_at_both_sites(sites, detail, 6)

    remote = sites["facility"].job(job["remote_job_id"])
    servers = {f["server"] for f in remote["frames"]}
    assert len(servers) >= 2 and servers <= {"fac-1", "fac-2"}, remote["frames"]
    assert {f["server"] for f in detail["frames"]} == {"facility"}
    assert {t["server"] for t in detail["tasks"]} == {f"facility/{s}" for s in servers}, (
        "the origin's tasks name the site and the server rendering them"
    )
    assert all(t["attempt"] == 1 and t["started_at"] for t in detail["tasks"]), detail["tasks"]

    # The origin's /metrics counts what federation moved (cumulative over this module's jobs).
    with urllib.request.urlopen(sites["studio"].url + "/metrics", timeout=10) as resp:
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

    shown = sites["studio"].cli("job", job_id).stdout
    assert "facility" in shown and "povray" in shown
    out = sites["studio"].root / "download"
    sites["studio"].cli("download", job_id, str(out))
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f["name"] for f in detail["frames"])
    print(
        f"forwarded job: {transfer['bytes_sent']} bytes in {transfer['blobs_sent']} blobs, "
        f"done in {time.monotonic() - started:.1f}s"
    )


def test_resubmitting_with_unchanged_assets_transfers_no_bytes(sites: Federation) -> None:
    first = submit(sites["studio"], "--frames", "1")  # makes sure the facility has the assets
    sites["studio"].wait_job(first, timeout=120)
    job_id = submit(sites["studio"], "--frames", "1-2")
    detail = sites["studio"].wait_job(job_id, timeout=120)
    transfer = detail["job"]["transfer"]
    assert transfer["bytes_sent"] == 0 and transfer["blobs_sent"] == 0, transfer
    assert transfer["blobs_skipped"] == 3
    assert_frames_at_both_sites(sites, detail, 2)


def test_no_forward_and_unknown_site(sites: Federation) -> None:
    refused = sites["studio"].cli(
        "submit", str(SCENE), "--package", "povray", "--frames", "1", "--no-forward", check=False
    )
    assert refused.returncode != 0 and "forwarding is off" in refused.stderr, refused.stderr
    assert "no server has povray" in refused.stderr
    job_id = submit(sites["studio"], "--frames", "1", "--no-forward", "--queue-anyway")
    job = sites["studio"].job(job_id)["job"]
    assert job["placement"] == "local" and "disabled" in job["placement_reason"]
    sites["studio"].cli("cancel", job_id)
    result = sites["studio"].cli(
        "submit", str(SCENE), "--package", "povray", "--frames", "1", "--site", "mars", check=False
    )
    assert result.returncode != 0 and "facility" in result.stderr + result.stdout


# --- security -----------------------------------------------------------------------


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


def test_unauthenticated_and_foreign_ca_clients_are_refused(
    sites: Federation, tmp_path: Path
) -> None:
    before = _job_count(sites["facility"])
    ca = sites.pki / "ca" / "ca.pem"
    url = f"{sites.fed_url('facility')}/fed/v1/jobs/x"
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
    status, _ = asyncio.run(
        fed_request(url, _client(intruder, ca), server_hostname=None, method="GET", headers={})
    )
    assert status == 403
    assert _job_count(sites["facility"]) == before


def test_tampered_blob_is_refused_and_nothing_stored(sites: Federation) -> None:
    content = b"a texture that will be tampered with\n" * 100
    sha = hashlib.sha256(content).hexdigest()
    offer = sample_offer(f"studio:tamper-{sha[:8]}:1", sha256=sha, size=len(content), name="tamper")
    studio_tls = TlsContexts(sites.tls("studio"))
    opts = studio_tls.request_options("facility")
    status, body = asyncio.run(
        fed_request(
            f"{sites.fed_url('facility')}/fed/v1/offer",
            opts["ssl"],
            data=sites.signed("studio", offer),
            server_hostname="facility",
        )
    )
    assert status == 200
    reply = decode_reply(body, OfferReply)
    assert reply.accepted and reply.missing == (sha,)
    tampered = content.replace(b"texture", b"TEXTURE")
    status, body = asyncio.run(
        fed_request(
            f"{sites.fed_url('facility')}/fed/v1/blobs/{sha}",
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
    assets = sites["facility"].storage / ".assets"
    assert not (assets / "blobs" / sha[:2] / sha[2:]).exists()
    assert not list((assets / "partial").glob(f"{sha}*"))


def test_replayed_notification_is_refused_and_changes_nothing(sites: Federation) -> None:
    job_id = next(
        j["id"]
        for j in sites["studio"].get("/api/v1/jobs")["jobs"]
        if j["placement"] == "facility" and j["state"] == "done"
    )
    before = sites["studio"].job(job_id)
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
    data = sites.signed("facility", notify)
    opts = TlsContexts(sites.tls("facility")).request_options("studio")
    url = f"{sites.fed_url('studio')}/fed/v1/notify"
    first, _ = asyncio.run(fed_request(url, opts["ssl"], data=data, server_hostname="studio"))
    again, body = asyncio.run(fed_request(url, opts["ssl"], data=data, server_hostname="studio"))
    assert first == 200  # a finished job ignores it
    assert again == 409 and b"duplicate" in body
    after = sites["studio"].job(job_id)
    assert after["job"]["state"] == "done" and after["job"]["updated_at"] == job["updated_at"]
    assert after["frames"] == before["frames"]
    assert load_certificate(sites.tls("facility").cert)  # the forged message was really signed


def test_remote_agent_killed_after_commit_still_delivers_every_frame_once(
    sites: Federation,
) -> None:
    job_id = submit(sites["studio"], "--frames", "1-6", "--name", "crash")

    def committed() -> bool:
        return bool(sites["studio"].job(job_id)["job"]["remote_job_id"])

    wait_for(committed, 60, "the forward to be committed")
    sites["facility"].kill()
    time.sleep(1)
    sites["facility"].start()
    detail = sites["studio"].wait_job(job_id, timeout=150)
    assert_frames_at_both_sites(sites, detail, 6)
    assert detail["job"]["placement"] == "facility" and detail["job"]["placement_epoch"] == 1


def test_unreachable_remote_beyond_lease_is_replaced_and_its_late_result_ignored(
    tmp_path: Path,
) -> None:
    with running_pair(tmp_path, {"fac-rs": "builtin"}, lease=4) as fed:
        studio, facility = fed["studio"], fed["facility"]
        scene = ROOT / "examples" / "textured" / "scene.json"
        job_id = studio.submit(
            str(scene), "--package", "builtin", "--frames", "1-24", "--site", "facility"
        )
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
