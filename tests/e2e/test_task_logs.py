"""The renderer's own words: its error line in `submit --wait` and `spillway job`, its full log
in `spillway logs`, and `--follow` streaming a running task."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .harness import ROOT, Agent, Process, spillway_cmd

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PARSE_ERROR = "Parse Error: No matching } in 'sphere'"
# 120 lines of its own before the error: the whole log is far longer than a 60-line tail.
BROKEN_SCENE = """\
#for (I, 1, 120)
  #debug concat("scene line ", str(I, 0, 0), "\\n")
#end
camera { location <0, 0, -5> look_at <0, 0, 0> }
sphere { <0, 0, 0>, 1
"""


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_a_parse_error_shows_povray_s_line_and_every_attempt_keeps_its_full_log(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    processes.append(agent.render_server("pov-1", packages="povray"))
    agent.wait_servers(1)
    scene = tmp_path / "broken.pov"
    scene.write_text(BROKEN_SCENE)
    submitted = agent.cli(
        "submit",
        str(scene),
        "--package",
        "povray",
        "--frames",
        "1",
        "--max-attempts",
        "2",
        "--wait",
        check=False,
        timeout=150,
    )
    assert submitted.returncode == 1, submitted.stderr
    assert PARSE_ERROR in submitted.stdout + submitted.stderr, submitted.stderr
    job_id = submitted.stdout.strip().splitlines()[0]
    shown = agent.cli("job", job_id).stdout  # no --json: what a user reads
    assert PARSE_ERROR in shown, shown

    latest = agent.get(f"/api/v1/jobs/{job_id}/log?frame=1")
    assert latest["attempts"] == [1, 2], latest
    assert (latest["attempt"], latest["state"], latest["complete"]) == (2, "failed", True)
    assert PARSE_ERROR in latest["error"]
    for attempt in latest["attempts"]:
        printed = agent.cli("logs", job_id, "--frame", "1", "--attempt", str(attempt))
        lines = printed.stdout.splitlines()
        assert len(lines) > 120, f"attempt {attempt}: only {len(lines)} lines"
        assert lines[0].startswith("$ povray"), "the log starts with the command that ran"
        assert "scene line 1" in lines and "scene line 120" in lines
        assert PARSE_ERROR in " ".join(line.strip() for line in lines), printed.stdout[-800:]
        assert any("Render failed" in line for line in lines), "POV-Ray's last words are kept"
        assert f"attempt {attempt} of [1, 2]" in printed.stderr
    # Without --frame: the first failed task's latest attempt; --follow on it ends at once, exit 1.
    followed = agent.cli("logs", job_id, "--follow", check=False)
    assert followed.returncode == 1, followed.stderr
    assert "scene line 120" in followed.stdout
    assert PARSE_ERROR in followed.stderr.strip().splitlines()[-1]


def test_logs_of_unknown_or_unstarted_tasks_say_what_is_wrong(sqlite_agent: Agent) -> None:
    agent = sqlite_agent
    missing = agent.cli("logs", "no-such-job", check=False)
    assert missing.returncode == 2 and "no job 'no-such-job'" in missing.stderr, missing.stderr
    scene = ROOT / "examples" / "textured" / "scene.json"
    job_id = agent.cli("submit", str(scene), "--package", "builtin", "--frames", "1-2").stdout
    job_id = job_id.strip().splitlines()[0]
    waiting = agent.cli("logs", job_id, check=False)  # no render server: nothing ran
    assert waiting.returncode == 2 and "has not run yet" in waiting.stderr, waiting.stderr
    other = agent.cli("logs", job_id, "--frame", "7", check=False)
    assert other.returncode == 2 and "has no frame 7" in other.stderr, other.stderr
    traceback_free = waiting.stderr + other.stderr + missing.stderr
    assert "Traceback" not in traceback_free


def test_follow_streams_a_running_task_then_exits_when_it_ends(
    sqlite_agent: Agent, processes: list[Process]
) -> None:
    agent = sqlite_agent
    scene = ROOT / "examples" / "textured" / "scene.json"
    job_id = agent.cli(
        "submit",
        str(scene),
        "--package",
        "builtin",
        "--frames",
        "1-6",
        "--chunk",
        "6",  # one task printing a line per frame, a few seconds each at this size
        "--resolution",
        "640x480",
    ).stdout.strip()
    job_id = job_id.splitlines()[0]
    processes.append(agent.render_server("rs-1"))
    follow = subprocess.Popen(
        spillway_cmd("logs", job_id, "--task", "0", "--follow", "--agent", agent.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline()
        while first.startswith("$ "):  # the command line, printed before any frame
            first = follow.stdout.readline()
        assert first.startswith("frame 1 done"), first
        task = agent.job(job_id)["tasks"][0]
        assert task["state"] == "running", "text arrived while the task still ran"
        # Not communicate(): it reads the pipe itself and loses the lines readline() has
        # already buffered (two frames' lines in one page went missing that way).
        rest = follow.stdout.read()
        assert follow.stderr is not None
        err = follow.stderr.read()
        follow.wait(240)
        follow.stdout.close()
        follow.stderr.close()
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert [f"frame {n} done" in rest for n in range(2, 7)] == [True] * 5, rest
    assert "attempt 1 is done" in err
    assert agent.job(job_id)["job"]["state"] == "done"


def test_a_short_task_s_whole_output_is_its_log(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    # A render server sends a short task's output only with its final report (no log
    # message of its own): the agent keeps that report's tail as the attempt's log.
    agent = sqlite_agent
    processes.append(agent.render_server("rs-1"))
    scene = ROOT / "examples" / "textured" / "scene.json"
    job_id = agent.submit(
        str(scene), "--package", "builtin", "--frames", "1", "--resolution", "16x16"
    )
    assert agent.wait_job(job_id)["job"]["state"] == "done"
    log = agent.get(f"/api/v1/jobs/{job_id}/log?frame=1")
    assert (log["state"], log["complete"], log["truncated_bytes"]) == ("done", True, 0), log
    lines = log["text"].splitlines()
    assert lines[0].startswith("$ ") and "render_server.packages.builtin" in lines[0], lines
    assert any("frame 1" in line for line in lines[1:]), lines
