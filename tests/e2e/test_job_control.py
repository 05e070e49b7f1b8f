"""Job control a user sees with real processes: refusing unrunnable jobs, paged detail, re-rendering."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from .harness import ROOT, Agent, Process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SCENE = ROOT / "examples" / "textured" / "scene.json"


def _submit(agent: Agent, *args: str) -> str:
    result = agent.cli("submit", str(SCENE), "--json", *args)
    return str(json.loads(result.stdout)["job"]["id"])


def test_a_job_no_server_can_run_is_refused_unless_queued_anyway(
    agent: Agent, processes: list[Process]
) -> None:
    processes.append(agent.render_server("rs-1", packages="builtin"))
    agent.wait_servers(1)
    refused = agent.cli(
        "submit", str(SCENE), "--package", "povray>=9", "--frames", "1-2", check=False
    )
    assert refused.returncode != 0, refused.stdout
    assert "no server has povray>=9" in refused.stderr, refused.stderr
    assert "--queue-anyway" in refused.stderr
    assert agent.get("/api/v1/jobs")["jobs"] == []

    job_id = _submit(agent, "--package", "povray>=9", "--frames", "1-2", "--queue-anyway")
    job = agent.job(job_id)["job"]
    assert job["state"] == "queued"
    assert "no server has povray>=9" in job["why_waiting"]


def test_job_detail_is_bounded_and_paged(agent: Agent, processes: list[Process]) -> None:
    job_id = _submit(agent, "--package", "builtin", "--frames", "1-1500")
    detail = agent.job(job_id)
    assert len(detail["tasks"]) == 100
    assert {f["frame"] for f in detail["frames"]} == set(range(1, 101))
    assert detail["tasks_page"] == {"offset": 0, "limit": 100, "total": 1500, "next_offset": 100}
    assert detail["job"]["progress"]["tasks"]["waiting"] == 1500
    page = agent.get(f"/api/v1/jobs/{job_id}/tasks?offset=1450&limit=1000&state=waiting")
    assert [t["index"] for t in page["tasks"]] == list(range(1450, 1500))
    assert page["tasks_page"]["next_offset"] is None

    # A job this big is summarised, not listed task by task.
    shown = agent.cli("job", job_id[:6])  # a unique start of the id will do
    assert f"job        {job_id}" in shown.stdout
    assert "tasks      1500: 1500 waiting" in shown.stdout
    assert len(shown.stdout.splitlines()) < 20, shown.stdout
    assert f"spillway job {job_id} --state failed" in shown.stderr
    listed = agent.cli("job", job_id, "--limit", "100")
    rows = [line for line in listed.stdout.splitlines() if line.split()[:1] != ["frames:"]]
    assert len([line for line in rows if " waiting " in line]) == 100
    assert f"spillway job {job_id} --offset 100" in listed.stderr
    tail = agent.cli("job", job_id, "--offset", "1490", "--limit", "5")
    assert [line.split()[0] for line in tail.stdout.splitlines() if "  waiting  " in line] == [
        "1490",
        "1491",
        "1492",
        "1493",
        "1494",
    ]
    frames = agent.cli("job", job_id, "--frames", "7,1200-1201")
    assert [line.split()[:2] for line in frames.stdout.splitlines() if "  waiting  " in line] == [
        ["6", "7"],
        ["1199", "1200"],
        ["1200", "1201"],
    ]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_retry_frames_renders_a_deleted_and_a_corrupt_frame_again(
    agent: Agent, processes: list[Process]
) -> None:
    processes.append(agent.render_server("rs-1"))
    agent.wait_servers(1)
    job_id = _submit(agent, "--package", "builtin", "--frames", "1-4", "--chunk", "2")
    detail = agent.wait_job(job_id)
    assert detail["job"]["state"] == "done"
    storage = Path(detail["job"]["storage_dir"])
    frames = {f["frame"]: f for f in agent.get(f"/api/v1/jobs/{job_id}/frames")["frames"]}
    (storage / frames[2]["name"]).unlink()
    (storage / frames[3]["name"]).write_bytes(b"not a png")

    retried = agent.cli("retry", job_id, "--frames", "2,3")
    assert "is now queued" in retried.stdout, retried.stdout
    again = agent.wait_job(job_id)
    assert again["job"]["state"] == "done", again
    assert {t["attempt"] for t in again["tasks"]} == {2}  # both chunks, as a new attempt
    stored = {f["frame"]: f for f in agent.get(f"/api/v1/jobs/{job_id}/frames")["frames"]}
    assert sorted(stored) == [1, 2, 3, 4]
    for n in (2, 3):
        assert _sha(storage / stored[n]["name"]) == stored[n]["sha256"]

    refused = agent.cli("retry", job_id, "--frames", "9", check=False)
    assert refused.returncode != 0 and "has no frame 9" in refused.stderr


@pytest.mark.timeout(300)
def test_a_million_frame_list_does_not_stall_the_agent(agent: Agent) -> None:
    """The body is decoded, checked and chunked off the event loop: /health stays prompt."""
    scene = SCENE.read_bytes()
    digest = hashlib.sha256(scene).hexdigest()
    urllib.request.urlopen(
        urllib.request.Request(
            f"{agent.url}/api/v1/blobs/{digest}",
            data=scene,
            method="PUT",
            headers={"Content-Type": "application/octet-stream"},
        ),
        timeout=10,
    ).close()
    body = {
        "scene": "scene.json",
        "manifest": [{"path": "scene.json", "sha256": digest, "size": len(scene)}],
        "frames": ",".join(str(n) for n in range(1, 999_999)),
        "chunk_size": 1000,
        "profile": {"package": "builtin"},
    }
    reply: dict[str, object] = {}
    request = urllib.request.Request(
        f"{agent.url}/api/v1/jobs",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )

    def post() -> None:
        with urllib.request.urlopen(request, timeout=180) as resp:
            reply.update(json.loads(resp.read()))

    poster = threading.Thread(target=post)
    poster.start()
    worst = 0.0
    while poster.is_alive():
        started = time.monotonic()
        agent.get("/api/v1/health")
        worst = max(worst, time.monotonic() - started)
        time.sleep(0.02)
    poster.join()
    assert worst < 1.5, f"/health took {worst:.2f}s during the submission"
    job = reply["job"]
    assert isinstance(job, dict) and job["frame_count"] == 999_998
    assert job["frames"] == "1-999998"  # a long list is kept compact in the job's JSON
