"""A site posing as another: real agents, certificates made with the CLI, mutual TLS.

The probe: ``spillway certs issue rival2 --host facility`` and the studio's
facility URL pointing at rival2. The CA now refuses that certificate once the
facility exists; one issued before it did must still get nothing from the studio.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from federation.peers import DEFAULT_LEASE_S

from .federation_harness import PeerLink, federation_toml
from .harness import ROOT, Agent, free_port, spillway_cmd, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
LEASE = DEFAULT_LEASE_S  # a site's lease when its TOML names none


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(spillway_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_certs_issue_refuses_another_sites_name_as_a_host(tmp_path: Path) -> None:
    ca = str(tmp_path / "ca")
    assert cli("certs", "init", "--dir", ca).returncode == 0
    assert cli("certs", "issue", "facility", "--dir", ca).returncode == 0

    result = cli("certs", "issue", "rival2", "--dir", ca, "--host", "facility")

    assert result.returncode == 2, result
    assert "--host facility is the name of site facility" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_studio_sends_nothing_to_a_site_posing_as_its_peer(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = str(pki / "ca")
    assert cli("certs", "init", "--dir", ca).returncode == 0
    for site, extra in (("studio", ()), ("rival2", ("--host", "facility"))):
        result = cli("certs", "issue", site, "--dir", ca, "--out", str(pki / "certs"), *extra)
        assert result.returncode == 0, result  # no facility in this CA yet
    studio_port, rival_port = free_port(), free_port()
    studio = Agent(
        tmp_path / "studio",
        name="studio",
        database=f"sqlite:///{tmp_path / 'studio.db'}",
        extra_toml=federation_toml(
            pki,
            "studio",
            studio_port,
            [PeerLink("facility")],
            {"facility": rival_port},
            lease=LEASE,
        ),
    )
    rival = Agent(
        tmp_path / "rival2",
        name="rival2",
        database=f"sqlite:///{tmp_path / 'rival2.db'}",
        extra_toml=federation_toml(
            pki, "rival2", rival_port, [PeerLink("studio")], {"studio": studio_port}, lease=LEASE
        ),
    )
    server = None
    try:
        studio.start()
        rival.start()
        server = rival.render_server("rival-rs", packages="builtin")  # so rival2 would accept
        rival.wait_servers(1)
        submitted = studio.cli(
            "submit", str(SCENE), "--package", "builtin", "--frames", "1-2", "--site", "facility"
        )
        job_id = submitted.stdout.strip()

        wait_for(
            lambda: (
                "does not prove site facility" in studio.log()
                or bool(rival.get("/api/v1/jobs")["jobs"])
            ),
            60,
            f"the studio to forward or to refuse\n{studio.log()}",
        )
        assert rival.get("/api/v1/jobs")["jobs"] == [], "rival2 must not receive the job"
        # Incoming, rival2 is rival2: not a configured peer, whatever hosts its certificate lists.
        wait_for(
            lambda: "unconfigured site 'rival2'" in studio.log(),
            30,
            f"the studio to refuse rival2's own calls\n{studio.log()}",
        )
        time.sleep(2)  # give a wrongly accepted offer time to land

        assert rival.get("/api/v1/jobs")["jobs"] == [], "rival2 must not receive the job"
        assert "rejected the job" not in studio.log(), "the offer must not reach rival2"
        assert "does not prove site facility" in studio.log()
        # Nothing about blobs beyond the startup line of its blob listener (blob_port = 0).
        rival_log = "\n".join(
            line for line in rival.log().splitlines() if "blob listener on" not in line
        )
        assert "/fed/v1/offer" not in rival_log and "blob" not in rival_log.lower()
        job = studio.job(job_id)["job"]
        assert job["state"] not in ("done",), job
        assert not list((tmp_path / "rival2" / "storage").glob("**/*.png"))
        peers = {p["name"]: p for p in studio.get("/api/v1/peers")["peers"]}
        assert peers["facility"]["state"] != "up", json.dumps(peers)
    finally:
        for process in (server, rival, studio):
            if process is not None:
                process.stop()
