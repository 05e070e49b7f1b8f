"""Operations with real processes: /metrics moving during a job, JSON logs, a render
server that finds its agent in $SPILLWAY_AGENT, and the control commands' --json."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .harness import ROOT, Agent, Process, spillway_cmd, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(agent: Agent) -> Samples:
    with urllib.request.urlopen(agent.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_during_a_job_and_logs_are_json_lines(
    tmp_path: Path, processes: list[Process]
) -> None:
    agent = Agent(tmp_path / "studio", name="studio", database=f"sqlite:///{tmp_path / 'db'}")
    agent.argv += ["--log-format", "json", "--log-level", "debug"]
    agent.start()
    processes.append(agent)
    before = scrape(agent)
    assert value(before, "spillway_tasks_dispatched_total") == 0
    assert value(before, "spillway_free_slots") == 0

    # No --agent: the render server reads $SPILLWAY_AGENT.
    server = Process(
        spillway_cmd(
            "render-server",
            "--name",
            "rs-1",
            "--packages",
            "builtin",
            "--cache",
            str(tmp_path / "cache"),
            "--workdir",
            str(tmp_path / "work"),
            "--state",
            str(tmp_path / "state"),
        ),
        tmp_path / "rs-1.log",
        env={"SPILLWAY_AGENT": agent.url},
    )
    server.start()
    processes.append(server)
    agent.wait_servers(1)
    assert value(scrape(agent), "spillway_servers", status="idle") == 1
    assert value(scrape(agent), "spillway_free_slots") == 1

    submitted = agent.cli(
        "submit",
        str(SCENE),
        "--package",
        "builtin",
        "--frames",
        "1-12",
        "--json",
    )
    job_id = json.loads(submitted.stdout)["job"]["id"]
    # During: once a frame is done, pause the job so the numbers hold still while read.
    wait_for(lambda: agent.job(job_id)["job"]["progress"]["frames_done"] >= 1, 60, "a frame")
    paused = json.loads(agent.cli("pause", job_id[:8], "--json").stdout)
    assert paused["job"]["id"] == job_id and paused["job"]["state"] == "paused"
    wait_for(lambda: value(scrape(agent), "spillway_servers", status="idle") == 1, 30, "idle")
    during = scrape(agent)
    done_during = value(during, "spillway_tasks_completed_total")
    assert 1 <= done_during < 12
    assert value(during, "spillway_tasks_dispatched_total") >= done_during
    assert value(during, "spillway_jobs", state="paused") == 1
    assert value(during, "spillway_frame_render_seconds_count", package="builtin") == done_during

    agent.cli("resume", job_id)
    assert agent.wait_job(job_id)["job"]["state"] == "done"
    after = scrape(agent)
    assert value(after, "spillway_tasks_completed_total") == 12
    # Tasks waiting in the server's queue (look-ahead) when the job paused went back to
    # waiting unstarted, and were sent again after the resume: each such send is counted.
    assert value(after, "spillway_tasks_dispatched_total") == 12 + value(
        after, "spillway_tasks_requeued_total"
    )
    assert value(after, "spillway_tasks_failed_total", outcome="final") == 0
    assert value(after, "spillway_frame_render_seconds_count", package="builtin") == 12
    assert value(after, "spillway_frame_render_seconds_sum", package="builtin") > 0
    assert value(after, "spillway_dispatch_latency_seconds_count") >= 1
    assert value(after, "spillway_jobs", state="done") == 1
    assert value(after, "spillway_jobs", state="paused") == 0

    lines = [line for line in agent.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert "debug" in {r["level"] for r in records}
    assert "rs-1" in server.log()  # it connected to the agent it was given by environment
