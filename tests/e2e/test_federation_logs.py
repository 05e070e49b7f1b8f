"""A forwarded job's task logs, read at its origin: the origin asks the remote over mutual TLS.

Three real site agents peer with each other (SQLite, then PostgreSQL); the studio and the facility run, the
facility with a POV-Ray render server. A broken POV-Ray scene forwarded to the facility
fails there; `spillway logs` at the studio prints POV-Ray's whole log and its error line.
The third site, a configured peer with a valid certificate, is refused the job's log (only
the origin that placed a job may read it); with the facility stopped the studio answers
503 ``peer_unavailable`` with a message, never a 500.
"""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .federation_harness import BACKENDS, Federation, RenderServer, running, site_databases
from .test_task_logs import BROKEN_SCENE, PARSE_ERROR

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.povray,
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed"),
]


SITES = ("studio", "facility", "outsider")


def fed_get(fed: Federation, caller: str, site: str, path: str) -> tuple[int, dict[str, object]]:
    """GET ``path`` on ``site``'s federation listener with ``caller``'s certificate."""
    ca, cert, key = fed.cert_files(caller)
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # the CA is still checked; the address is 127.0.0.1
    context.load_cert_chain(str(cert), str(key))
    try:
        with urllib.request.urlopen(fed.fed_url(site) + path, timeout=30, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def api_get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Iterator[dict[str, str] | None]:
    """Each site's own database, on SQLite, then on PostgreSQL."""
    with site_databases(request, SITES, "logs_") as found:
        yield found


def test_a_forwarded_job_s_log_is_read_at_its_origin_and_only_by_it(
    tmp_path: Path, databases: dict[str, str] | None
) -> None:
    fed = Federation(tmp_path, SITES, databases=databases)
    studio, facility = fed["studio"], fed["facility"]
    server = RenderServer("facility", "fac-pov", "povray")
    # The outsider only holds a certificate: it is never started.
    with running(fed, [server], [("studio", "facility")], sites=("studio", "facility")):
        scene = tmp_path / "broken.pov"
        scene.write_text(BROKEN_SCENE)
        submitted = studio.cli(
            "submit", str(scene), "--package", "povray", "--frames", "1", "--site", "facility",
            "--max-attempts", "1", "--wait", check=False, timeout=150,
        )  # fmt: skip
        assert submitted.returncode == 1, submitted.stdout + submitted.stderr
        job_id = submitted.stdout.strip().splitlines()[0]
        remote = studio.job(job_id)["job"]
        assert remote["placement"] == "facility", remote
        remote_id = str(remote["remote"]["job_id"])

        printed = studio.cli("logs", job_id, "--frame", "1", check=False)
        lines = printed.stdout.splitlines()
        assert len(lines) > 120, printed.stdout[-800:] + printed.stderr
        assert lines[0].startswith("$ povray"), "the log starts with the command that ran"
        assert "scene line 1" in lines and "scene line 120" in lines
        assert PARSE_ERROR in " ".join(line.strip() for line in lines), printed.stdout[-800:]
        status, page = api_get(f"{studio.url}/api/v1/jobs/{job_id}/log?frame=1&wait=5")
        assert status == 200, page
        assert (page["job"], page["site"], page["state"]) == (job_id, "facility", "failed")
        assert PARSE_ERROR in str(page["error"])
        followed = studio.cli("logs", job_id, "--frame", "1", "--follow", check=False)
        assert "scene line 120" in followed.stdout, followed.stderr
        assert PARSE_ERROR in followed.stderr, followed.stderr

        # The origin reads it at the facility; a third peer of the facility may not.
        log_path = f"/fed/v1/jobs/{remote_id}/tasks/0/log?wait=60"
        status, body = fed_get(fed, "studio", "facility", log_path)
        assert status == 200 and "scene line 120" in str(body["text"]), body
        status, body = fed_get(fed, "outsider", "facility", log_path)
        assert status == 404, body
        assert "scene line" not in json.dumps(body), body
        status, body = fed_get(fed, "studio", "facility", f"/fed/v1/jobs/{remote_id}/tasks/9/log")
        assert (status, body["error"]["code"]) == (404, "task_not_found"), body  # type: ignore[index]

        facility.stop()
        status, body = api_get(f"{studio.url}/api/v1/jobs/{job_id}/tasks/0/log")
        assert status == 503, body
        error = body["error"]
        assert isinstance(error, dict) and error["code"] == "peer_unavailable", body
        assert "facility" in error["message"] and "could not be asked" in error["message"]
        down = studio.cli("logs", job_id, "--frame", "1", check=False)
        assert down.returncode != 0 and "could not be asked" in down.stderr, down.stderr
        assert "Traceback" not in down.stderr + printed.stderr + followed.stderr
