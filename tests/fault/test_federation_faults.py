"""Federation under faults: agents killed with SIGKILL at each step, cancels, overflow, bad input.

One pair of real sites over mutual TLS on loopback (SQLite) is shared by the
module; every test leaves both agents running. The studio has one built-in
server and ``overflow_after = 10``; the facility has a POV-Ray server and a
built-in server. POV-Ray jobs are forwarded because the studio cannot render
them. Frames are tiny (64x48) so the render time stays small.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from e2e.federation_harness import Federation, fed_request, running_pair, sample_offer
from e2e.harness import ROOT, Agent, sha256_file, wait_for

from federation.certs import TlsContexts
from federation.envelope import canonical_bytes, encode_envelope
from federation.protocol import (
    Commit,
    Notify,
    NotifyState,
)
from federation.transfer import CHUNK_SIZE

from .conftest import assert_only_previews_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]
POVRAY = ROOT / "examples" / "povray"
BUILTIN_SCENE = ROOT / "examples" / "textured" / "scene.json"
TINY = ("--resolution", "64x48")
BIG_ASSET_BYTES = 60 * 1024 * 1024
OVERFLOW_AFTER_S = 10


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("fedfaults")
    facility_servers = {"fac-pov": "povray", "fac-bi": "builtin"}
    with running_pair(root, facility_servers, overflow_after=OVERFLOW_AFTER_S) as fed:
        yield fed


def site_db(pair: Federation, agent: Agent) -> Path:
    """The SQLite file of ``agent``'s site."""
    return pair.root / f"{agent.name}.db"


# --- helpers -------------------------------------------------------------------------


def submit(agent: Agent, scene: Path, package: str, frames: str, *args: str) -> str:
    return agent.submit(str(scene), "--package", package, "--frames", frames, *TINY, *args)


def scene_with_big_asset(root: Path) -> tuple[Path, Path]:
    """A copy of the POV-Ray example plus a 60 MB random extra asset; (scene, asset)."""
    folder = root / f"big-{os.urandom(4).hex()}"
    shutil.copytree(POVRAY, folder)
    asset = folder / "big.bin"
    asset.write_bytes(os.urandom(BIG_ASSET_BYTES))
    return folder / "scene.pov", asset


def partial_file(agent: Agent, sha: str) -> Path:
    return agent.storage / ".assets" / "partial" / f"{sha}.part"


def wait_upload_in_progress(
    agent: Agent, sha: str, total: int, *, at_least: int = 1, timeout: float = 60
) -> int:
    """Poll the receiver's partial file until it holds ``at_least`` bytes but not all; its size."""
    path = partial_file(agent, sha)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size >= at_least:
            assert size < total, f"the upload of {sha} finished before it could be interrupted"
            return size
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for the upload of {sha} to start")


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute(sql, args).fetchall()


def assert_frames_once_at_both_sites(pair: Federation, job_id: str, count: int) -> dict[str, Any]:
    """Done with ``count`` frames; one row and one file per frame, hash-identical at both sites."""
    detail = pair["studio"].job(job_id)
    job = detail["job"]
    assert job["state"] == "done", job
    remote = pair["facility"].job(job["remote_job_id"])["job"]
    assert remote["state"] == "done" and remote["origin_job_id"] == job_id, remote
    listed = pair["studio"].get(f"/api/v1/jobs/{job_id}/frames")["frames"]
    assert sorted(f["frame"] for f in listed) == sorted({f["frame"] for f in listed})
    assert len(listed) == count, listed
    rows = query(
        site_db(pair, pair["studio"]),
        "SELECT frame, name, sha256 FROM frames WHERE job_id = ?",
        job_id,
    )
    assert sorted((f["frame"], f["name"], f["sha256"]) for f in listed) == sorted(rows)
    studio_dir, facility_dir = Path(job["storage_dir"]), Path(remote["storage_dir"])
    # Only the frames: no temp file left from an interrupted fetch, no second copy.
    on_disk = sorted(p.name for p in studio_dir.iterdir() if p.name != ".previews")
    assert on_disk == sorted(f["name"] for f in listed)
    assert_only_previews_of(studio_dir, [f["name"] for f in listed])
    for frame in listed:
        digest = sha256_file(studio_dir / frame["name"])
        assert digest == frame["sha256"] == sha256_file(facility_dir / frame["name"]), frame
    return detail


def finished_logs(agent: Agent, job_id: str) -> int:
    """How many times the origin logged finishing a forwarded job."""
    return agent.log().count(f"forwarded job {job_id} done at")


# --- 6. bad input on the federation API ------------------------------------------------


def _signed_raw(
    pair: Federation,
    *,
    site: str,
    signer: str,
    type_name: str,
    body: Any,
    sent_at: float | None = None,
) -> bytes:
    """An envelope with any body, correctly signed by ``signer``'s key (encode_envelope checks types)."""
    fields: dict[str, Any] = {
        "v": 1,
        "type": type_name,
        "site": site,
        "id": os.urandom(8).hex(),
        "sent_at": time.time() if sent_at is None else sent_at,
        "body": body,
    }
    fields["sig"] = pair.key(signer).sign(canonical_bytes(fields), ec.ECDSA(hashes.SHA256()))
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


async def _post(
    url: str, tls: TlsContexts, peer: str, data: bytes, method: str = "POST"
) -> tuple[int, bytes] | None:
    """(status, body), or None when the server closed the connection instead of answering."""
    opts = tls.request_options(peer)
    try:
        return await fed_request(
            url,
            opts["ssl"],
            server_hostname=opts["server_hostname"],
            method=method,
            data=io.BytesIO(data) if len(data) > 1 << 20 else data,
            timeout=20,
        )
    except aiohttp.ClientError:
        return None


def _state(pair: Federation, agent: Agent) -> dict[str, Any]:
    db = site_db(pair, agent)
    assets = agent.storage / ".assets"
    return {
        table: query(db, f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608 - fixed table names
        for table in ("fed_offers", "fed_outbox", "fed_seen", "fed_forwards", "jobs")
    } | {
        "blobs": sorted(str(p) for p in (assets / "blobs").rglob("*")),
        "partial": sorted(str(p) for p in (assets / "partial").rglob("*")),
    }


def test_bad_federation_input_is_refused_with_4xx_and_changes_nothing(pair: Federation) -> None:
    studio_tls = TlsContexts(pair.tls("studio"))
    facility_tls = TlsContexts(pair.tls("facility"))
    before = {agent.name: _state(pair, agent) for agent in (pair["studio"], pair["facility"])}
    now = time.time()
    offer = sample_offer("studio:bad:1", sha256="a" * 64, size=10, name="bad")
    good_body = offer.to_body()
    notify = Notify(
        origin_job_id="nosuchjob",
        remote_job_id="r",
        epoch=1,
        state=NotifyState.DONE,
        frames_done=0,
        frames_total=1,
    )
    offer_url, notify_url = (
        f"{pair.fed_url('facility')}/fed/v1/offer",
        f"{pair.fed_url('studio')}/fed/v1/notify",
    )
    cases: list[tuple[str, str, str, TlsContexts, bytes, set[int]]] = [
        ("garbage bytes", offer_url, "facility", studio_tls, b"\xc1\xff not msgpack at all", {400}),
        (
            "msgpack list, not a map",
            offer_url,
            "facility",
            studio_tls,
            msgpack.packb([1, 2, 3]),
            {400},
        ),
        ("integer map keys", offer_url, "facility", studio_tls, msgpack.packb({1: 2}), {400}),
        (
            "sent_at is a string",
            offer_url,
            "facility",
            studio_tls,
            msgpack.packb(
                {
                    "v": 1,
                    "type": "offer",
                    "site": "studio",
                    "id": "x",
                    "sent_at": "yesterday",
                    "body": good_body,
                    "sig": b"0",
                }
            ),
            {400},
        ),
        (
            "signed offer whose epoch is a string",
            offer_url,
            "facility",
            studio_tls,
            _signed_raw(
                pair,
                site="studio",
                signer="studio",
                type_name="offer",
                body={**good_body, "epoch": "one"},
            ),
            {400},
        ),
        (
            "signed offer whose manifest escapes the job folder",
            offer_url,
            "facility",
            studio_tls,
            _signed_raw(
                pair,
                site="studio",
                signer="studio",
                type_name="offer",
                body={
                    **good_body,
                    "manifest": [{"path": "../../etc/passwd", "sha256": "a" * 64, "size": 1}],
                },
            ),
            {400},
        ),
        (
            "unknown message type",
            offer_url,
            "facility",
            studio_tls,
            _signed_raw(pair, site="studio", signer="studio", type_name="explode", body={}),
            {400},
        ),
        (
            "a notify sent to the offer endpoint",
            offer_url,
            "facility",
            studio_tls,
            encode_envelope(notify, site="studio", key=pair.key("studio"), now=now),
            {400},
        ),
        (
            "offer signed by the facility's key",
            offer_url,
            "facility",
            studio_tls,
            encode_envelope(offer, site="studio", key=pair.key("facility"), now=now),
            {403},
        ),
        (
            "offer claiming to come from the facility",
            offer_url,
            "facility",
            studio_tls,
            encode_envelope(offer, site="facility", key=pair.key("facility"), now=now),
            {400, 403},
        ),
        (
            "commit of an offer never made",
            f"{pair.fed_url('facility')}/fed/v1/commit",
            "facility",
            studio_tls,
            encode_envelope(
                Commit(key="studio:never:1"), site="studio", key=pair.key("studio"), now=now
            ),
            {404},
        ),
        (
            "expired notification",
            notify_url,
            "studio",
            facility_tls,
            encode_envelope(notify, site="facility", key=pair.key("facility"), now=now - 3600),
            {403},
        ),
        (
            "notification dated in the future",
            notify_url,
            "studio",
            facility_tls,
            encode_envelope(notify, site="facility", key=pair.key("facility"), now=now + 3600),
            {403},
        ),
        (
            "notification for an unknown job",
            notify_url,
            "studio",
            facility_tls,
            encode_envelope(notify, site="facility", key=pair.key("facility"), now=now),
            {404},
        ),
    ]
    codes = {400: "bad_request", 403: "forbidden", 404: "not_found"}
    for what, url, peer, tls, data, statuses in cases:
        answer = asyncio.run(_post(url, tls, peer, data))
        assert answer is not None, f"{what}: connection closed"
        status, body = answer
        assert status in statuses, f"{what}: {status} {body[:300]!r}"
        error = json.loads(body)["error"]
        assert error["code"] == codes[status] and error["message"], f"{what}: {error}"
        print(f"{what}: {status} {error['message']}")

    # A blob that is in no offer, and a body beyond the message size limit.
    blob = asyncio.run(
        _post(
            f"{pair.fed_url('facility')}/fed/v1/blobs/{'b' * 64}",
            studio_tls,
            "facility",
            b"x" * 100,
            method="PATCH",
        )
    )
    assert blob is not None and blob[0] == 403, blob
    huge = asyncio.run(_post(offer_url, studio_tls, "facility", b"\x00" * (17 * 1024 * 1024)))
    assert huge is None or huge[0] == 413, huge

    for agent in (pair["studio"], pair["facility"]):
        assert _state(pair, agent) == before[agent.name], f"{agent.name} stored something"
        assert agent.get("/api/v1/health")["site"] == agent.name
    # The federation listener itself still answers (a clean 404 for an unknown job).
    status_url = f"{pair.fed_url('facility')}/fed/v1/jobs/nosuchjob"
    answer = asyncio.run(_post(status_url, studio_tls, "facility", b"", method="GET"))
    assert answer is not None and answer[0] == 404, answer


# --- 5. overflow_after ------------------------------------------------------------------


def test_job_waiting_longer_than_overflow_after_is_forwarded_to_free_capacity(
    pair: Federation,
) -> None:
    # Keep the studio's only built-in server busy with a long local job: 200 frames of
    # 0.1-0.3 s each put the estimated wait well past overflow_after (10 s) on any machine.
    long_job = submit(
        pair["studio"], BUILTIN_SCENE, "builtin", "1-200", "--no-forward", "--name", "long"
    )
    wait_for(lambda: pair["studio"].job(long_job)["job"]["state"] == "running", 30, "the long job")
    try:
        job_id = submit(pair["studio"], BUILTIN_SCENE, "builtin", "1-2", "--name", "overflow")
        job = pair["studio"].job(job_id)["job"]
        assert job["placement"] == "facility", job
        reason = job["placement_reason"]
        assert "estimated local wait" in reason and "overflow_after" in reason, reason
        assert "free slot" in reason, reason
        shown = pair["studio"].cli("job", job_id).stdout
        assert "overflow_after" in shown and "facility" in shown, shown
        pair["studio"].wait_job(job_id, timeout=60)
        assert_frames_once_at_both_sites(pair, job_id, 2)
        remote = pair["facility"].job(pair["studio"].job(job_id)["job"]["remote_job_id"])
        assert {f["server"] for f in remote["frames"]} == {"fac-bi"}
    finally:
        pair["studio"].cli("cancel", long_job)


# --- 4. cancel at the origin reaches the remote ------------------------------------------


def _running_tasks(agent: Agent, server: str) -> int:
    return next(
        s["running_tasks"] for s in agent.get("/api/v1/servers")["servers"] if s["name"] == server
    )


def test_cancel_at_origin_cancels_the_remote_job_and_stops_its_servers(pair: Federation) -> None:
    job_id = submit(pair["studio"], POVRAY / "scene.pov", "povray", "1-40", "--name", "tocancel")
    wait_for(lambda: bool(pair["studio"].job(job_id)["job"]["remote_job_id"]), 60, "the commit")
    remote_id = pair["studio"].job(job_id)["job"]["remote_job_id"]
    wait_for(lambda: _running_tasks(pair["facility"], "fac-pov") > 0, 30, "the facility to render")

    pair["studio"].cli("cancel", job_id)
    remote = pair["facility"].wait_job(remote_id, timeout=30)
    assert remote["job"]["state"] == "cancelled", remote["job"]
    wait_for(
        lambda: _running_tasks(pair["facility"], "fac-pov") == 0,
        15,
        "the facility's render server to stop",
    )
    done = pair["facility"].job(remote_id)["job"]["progress"]["frames_done"]
    time.sleep(2)  # nothing keeps rendering after the cancel
    after = pair["facility"].job(remote_id)
    assert after["job"]["progress"]["frames_done"] == done < 40, after["job"]["progress"]
    # A cancelled job's unfinished tasks wait (for a possible retry); none is out on a server.
    assert {t["state"] for t in after["tasks"]} <= {"done", "waiting"}, after["tasks"]
    job = pair["studio"].job(job_id)["job"]
    assert job["state"] == "cancelled" and job["placement_epoch"] == 1, job
    delivered = query(
        site_db(pair, pair["studio"]),
        "SELECT delivered_at FROM fed_outbox WHERE id = ?",
        f"cancel:{job_id}:1",
    )
    assert delivered and delivered[0][0] is not None, delivered


def test_cancel_during_the_upload_never_leaves_the_remote_rendering(pair: Federation) -> None:
    scene, asset = scene_with_big_asset(pair.root)
    sha = sha256_file(asset)
    job_id = submit(
        pair["studio"], scene, "povray", "1-40", "--asset", str(asset), "--name", "cancel-upload"
    )
    wait_upload_in_progress(pair["facility"], sha, asset.stat().st_size)
    pair["studio"].cli("cancel", job_id)  # before the commit: the remote has no job yet

    def remote_jobs() -> list[dict[str, Any]]:
        return [
            j
            for j in pair["facility"].get("/api/v1/jobs")["jobs"]
            if j.get("origin_job_id") == job_id
        ]

    # The forwarding task may still finish the upload and commit; then the cancel must follow.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not remote_jobs():
        time.sleep(0.2)
    for remote in remote_jobs():
        pair["facility"].wait_job(remote["id"], states=("cancelled",), timeout=20)
    wait_for(
        lambda: _running_tasks(pair["facility"], "fac-pov") == 0,
        15,
        "the facility's render server to stop",
    )
    assert pair["studio"].job(job_id)["job"]["state"] == "cancelled"


# --- 1a / 2a. kill -9 during the blob upload ----------------------------------------------


def _manifest_bytes(scene: Path) -> int:
    return sum(p.stat().st_size for p in scene.parent.iterdir())


@pytest.mark.parametrize("victim", ["remote", "origin"])
def test_agent_killed_during_blob_upload_resumes_and_completes(
    pair: Federation, victim: str
) -> None:
    scene, asset = scene_with_big_asset(pair.root)
    sha, total = sha256_file(asset), _manifest_bytes(scene)
    job_id = submit(
        pair["studio"], scene, "povray", "1-2", "--asset", str(asset), "--name", f"upload-{victim}"
    )
    # Two chunks in: an upload that started over would then exceed the bounds below.
    held = wait_upload_in_progress(
        pair["facility"], sha, asset.stat().st_size, at_least=2 * CHUNK_SIZE
    )
    agent = pair["facility"] if victim == "remote" else pair["studio"]
    agent.kill()
    kept = partial_file(pair["facility"], sha).stat().st_size
    assert held <= kept < asset.stat().st_size, (held, kept)
    agent.start()

    detail = pair["studio"].wait_job(job_id, timeout=90)
    assert_frames_once_at_both_sites(pair, job_id, 2)
    job = detail["job"]
    assert job["placement"] == "facility" and job["placement_epoch"] == 1, job
    sent = job["transfer"]["bytes_sent"]
    if victim == "remote":
        # The origin kept counting across the outage: everything once, plus at most the
        # chunk that was in flight when the remote died. (Had the restart outlasted
        # upload_blob's retries, the bytes of that call would not be counted: hence no
        # lower bound.)
        assert 0 < sent <= total + CHUNK_SIZE, (sent, total)
    else:
        # The restarted origin resumed from the remote's offset instead of starting over.
        assert sent <= total - kept + CHUNK_SIZE, (sent, total, kept)
    assert not partial_file(pair["facility"], sha).exists()
    blob = pair["facility"].storage / ".assets" / "blobs" / sha[:2] / sha[2:]
    assert sha256_file(blob) == sha


# --- 1c / 2b. kill -9 of the origin after the commit -----------------------------------------


@pytest.mark.parametrize(
    "restart", ["while_remote_renders", "after_remote_finished", "remote_killed_before_notifying"]
)
def test_origin_killed_after_commit_receives_one_completion_with_every_frame(
    pair: Federation, restart: str
) -> None:
    """The origin goes down after the commit; in the last case the remote is also killed -9
    with its completion notification still undelivered, and both come back."""
    frames = 8 if restart == "while_remote_renders" else 3
    job_id = submit(
        pair["studio"], POVRAY / "scene.pov", "povray", f"1-{frames}", "--name", f"origin-{restart}"
    )
    wait_for(lambda: bool(pair["studio"].job(job_id)["job"]["remote_job_id"]), 60, "the commit")
    remote_id = pair["studio"].job(job_id)["job"]["remote_job_id"]
    pair["studio"].kill()
    final = f"notify:{remote_id}:1:final"
    if restart == "while_remote_renders":
        assert pair["facility"].job(remote_id)["job"]["state"] != "done", "rendered too fast"
    else:
        # The remote finishes and tries to notify an origin that is down.
        pair["facility"].wait_job(remote_id, timeout=60)

        def refused() -> bool:
            rows = query(
                site_db(pair, pair["facility"]),
                "SELECT attempts, delivered_at FROM fed_outbox WHERE id = ?",
                final,
            )
            return bool(rows) and rows[0][0] >= 1 and rows[0][1] is None

        wait_for(refused, 30, "the remote's notification to fail")
    if restart == "remote_killed_before_notifying":
        pair["facility"].kill()  # the notification is only in the remote's durable outbox now
        pair["studio"].start()
        time.sleep(1)
        pair["facility"].start()
    else:
        pair["studio"].start()
    if restart == "while_remote_renders":
        assert pair["facility"].job(remote_id)["job"]["state"] != "done", "rendered too fast"

    pair["studio"].wait_job(job_id, timeout=90)
    assert_frames_once_at_both_sites(pair, job_id, frames)
    wait_for(
        lambda: (
            query(
                site_db(pair, pair["facility"]),
                "SELECT delivered_at FROM fed_outbox WHERE id = ?",
                final,
            )[0][0]
            is not None
        ),
        30,
        "the final notification to be acknowledged",
    )
    time.sleep(1)  # a duplicate completion (notification or poll) would show up by now
    assert finished_logs(pair["studio"], job_id) == 1, pair["studio"].log()[-3000:]
