"""Job dependencies with real agents, render servers and renderers: render -> comp chains at one
site and across federation, failures marking the jobs that wait, refused edges."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .federation_harness import running_pair
from .harness import ROOT, Agent, Process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
POV_SCENE = ROOT / "examples" / "povray" / "scene.pov"


def submit(agent: Agent, *args: str, scene: Path = SCENE, package: str = "builtin") -> str:
    result = agent.cli("submit", str(scene), "--package", package, "--json", *args)
    return str(json.loads(result.stdout)["job"]["id"])


def post(agent: Agent, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        agent.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def first_dispatch(detail: dict[str, Any]) -> float:
    return min(float(t["dispatched_at"]) for t in detail["tasks"])


def test_comp_starts_only_after_render_is_done(agent: Agent, processes: list[Process]) -> None:
    processes.append(agent.render_server("rs-a", slots=1))
    agent.wait_servers(1)
    render = submit(agent, "--frames", "1-16", "--name", "render")
    comp = submit(agent, "--frames", "1-4", "--name", "comp", "--after", render)

    shown = agent.cli("job", comp).stdout
    assert f"waiting for job {render} (render, " in shown, shown
    held = agent.job(comp)
    assert held["job"]["state"] == "queued"
    assert [(a["job_id"], a["kind"], a["met"]) for a in held["job"]["after"]] == [
        (render, "done", False)
    ]

    upstream = agent.wait_job(render, timeout=180)
    downstream = agent.wait_job(comp, timeout=120)
    assert upstream["job"]["state"] == downstream["job"]["state"] == "done"
    assert first_dispatch(downstream) >= upstream["job"]["finished_at"], (
        "comp started before render was done"
    )
    assert downstream["job"]["after"][0]["met"] is True
    assert downstream["job"]["why_waiting"] is None


def test_each_comp_frame_starts_after_its_render_frame(
    agent: Agent, processes: list[Process]
) -> None:
    processes.append(agent.render_server("rs-a", slots=2))
    agent.wait_servers(1)
    render = submit(agent, "--frames", "1-8", "--name", "render")
    comp = submit(agent, "--frames", "1-8", "--name", "comp", "--after-frames", render)
    assert agent.job(comp)["job"]["after"][0]["kind"] == "frames"

    upstream = agent.wait_job(render, timeout=180)
    downstream = agent.wait_job(comp, timeout=120)
    assert upstream["job"]["state"] == downstream["job"]["state"] == "done"
    stored = {
        f["frame"]: f["rendered_at"] for f in agent.get(f"/api/v1/jobs/{render}/frames")["frames"]
    }
    for task in downstream["tasks"]:
        frame = int(task["frames"])
        assert task["dispatched_at"] >= stored[frame], (
            f"comp frame {frame} started before render frame {frame} was stored"
        )
    overlap = first_dispatch(downstream) < upstream["job"]["finished_at"]
    print(f"comp started {'before' if overlap else 'after'} render was done")


def test_a_failed_upstream_fails_its_dependents_and_edges_are_checked(
    agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    # Killed by its render server after 10 ms: the attempt fails, and with it the job.
    render = submit(agent, "--frames", "1-2", "--max-attempts", "1", "--timeout", "0.01")
    comp = submit(agent, "--frames", "1", "--name", "comp", "--after", render)
    grade = submit(agent, "--frames", "1", "--name", "grade", "--after", comp)
    cleanup = submit(agent, "--frames", "1", "--after", render, "--after-any")
    processes.append(agent.render_server("rs-a", slots=2))  # the chain is in place: go

    assert agent.wait_job(render)["job"]["state"] == "failed"
    for job_id, upstream in ((comp, render), (grade, comp)):
        job = agent.wait_job(job_id, timeout=30)["job"]
        assert job["state"] == "failed", job
        assert f"upstream job {upstream} failed" in job["error"], job["error"]
    assert agent.wait_job(cleanup)["job"]["state"] == "done"  # --after-any: runs however it ended

    refused = agent.cli(
        "submit",
        str(SCENE),
        "--package",
        "builtin",
        "--frames",
        "1",
        "--after",
        render,
        check=False,
    )
    assert refused.returncode != 0 and f"job {render} failed: " in refused.stderr, refused.stderr
    refused = agent.cli(
        "submit",
        str(SCENE),
        "--package",
        "builtin",
        "--frames",
        "1",
        "--after",
        "nosuchjob",
        check=False,
    )
    assert refused.returncode != 0 and "no job 'nosuchjob'" in refused.stderr, refused.stderr

    # No server has the tag: the blocker stays queued, and so do the jobs waiting for it.
    blocker = submit(agent, "--frames", "1", "--tags", "nowhere", "--queue-anyway")
    first = submit(agent, "--frames", "1", "--after", blocker)
    second = submit(agent, "--frames", "1", "--after", first)
    status, body = post(agent, f"/api/v1/jobs/{first}/after", {"after": [second]})
    assert status == 409 and "cycle" in body["error"]["message"], body
    assert f"{first} -> {second} -> {first}" in body["error"]["message"]
    status, body = post(agent, f"/api/v1/jobs/{first}/after", {"after": [first]})
    assert status == 400 and "itself" in body["error"]["message"], body


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_dependencies_hold_across_federation(tmp_path: Path) -> None:
    """Render is forwarded (only the facility has POV-Ray): comp starts at the studio once its
    frames are back there. A POV-Ray job waiting for a local job is offered only once released."""
    with running_pair(tmp_path, {"fac-1": "povray"}) as fed:
        studio, facility = fed["studio"], fed["facility"]
        render = submit(studio, "--frames", "1-3", scene=POV_SCENE, package="povray")
        comp = submit(studio, "--frames", "1-2", "--after", render)
        prep = submit(studio, "--frames", "1-8", "--name", "prep")
        late = submit(studio, "--frames", "1", "--after", prep, scene=POV_SCENE, package="povray")
        assert studio.job(late)["job"]["placement"] == "facility"

        upstream = studio.wait_job(render, timeout=180)
        assert upstream["job"]["placement"] == "facility" and upstream["job"]["state"] == "done"
        downstream = studio.wait_job(comp, timeout=120)
        assert downstream["job"]["state"] == "done"
        assert first_dispatch(downstream) >= upstream["job"]["finished_at"]

        prepped = studio.wait_job(prep, timeout=120)
        forwarded = studio.wait_job(late, timeout=180)
        assert forwarded["job"]["state"] == "done", forwarded["job"]
        remote = facility.job(forwarded["job"]["remote_job_id"])["job"]
        assert remote["origin_job_id"] == late
        assert remote["created_at"] >= prepped["job"]["finished_at"], (
            "the dependent job was offered to the peer before its upstream was done"
        )
