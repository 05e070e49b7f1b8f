"""Tables, human units and the --wait progress bar of the spillway CLI."""

from __future__ import annotations

import io
import re

import pytest

from spillway.client.formatting import (
    ProgressReporter,
    estimate_eta,
    format_job,
    format_jobs,
    format_peers,
    format_servers,
    frame_summary,
    human_age,
    human_duration,
    human_size,
    job_summary,
    progress_line,
    table,
)

NOW = 1_700_000_000.0


def make_job(**overrides):
    job = {
        "id": "j1",
        "name": "shot010",
        "owner": "ana",
        "origin_site": "studio",
        "priority": 50,
        "state": "running",
        "frames": "1-24",
        "frame_count": 24,
        "requirement": "povray>=3.7",
        "placement": "local",
        "placement_reason": "a local server matches",
        "remote_job_id": None,
        "created_at": NOW - 125,
        "finished_at": None,
        "error": "",
        "progress": {"frames_total": 24, "frames_done": 12, "tasks": {}},
        "why_waiting": None,
        "storage_dir": "/mnt/farm/shot010-j1",
    }
    job.update(overrides)
    return job


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0:00"),
        (14, "0:14"),
        (61.4, "1:01"),
        (3723, "1:02:03"),
        (2 * 86400 + 5, "2d 0:00:05"),
        (-3, "0:00"),
    ],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("age", "text"),
    [(0.2, "just now"), (5, "5s ago"), (185, "3m ago"), (7300, "2h ago"), (4 * 86400, "4d ago")],
)
def test_human_age(age, text):
    assert human_age(NOW - age, NOW) == text
    assert human_age(None, NOW) == "-"


def test_table_aligns_columns_and_right_aligns_numbers():
    text = table(["NAME", "N", "NOTE"], [["a", 5, None], ["longer", 123, "x" * 60]], right=[1])
    lines = text.splitlines()
    assert lines[0] == "NAME      N  NOTE"
    assert lines[1] == "a         5  -"
    # the last column is never cut, so long reasons stay readable
    assert lines[2] == "longer  123  " + "x" * 60


def test_table_cuts_long_inner_cells():
    text = table(["A", "B"], [["y" * 50, "z"]], max_width=10)
    assert text.splitlines()[1] == "yyyyyyyyy…  z"


def test_format_jobs_lists_progress_package_and_placement():
    jobs = [
        make_job(),
        make_job(id="j2", name="remote", placement="paris", state="queued"),
        make_job(id="j3", name="accepted", origin_site="studio", origin_job_id="s-42"),
    ]
    lines = format_jobs(jobs, NOW).splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "STATE",
        "PRIORITY",
        "FRAMES",
        "PACKAGE",
        "PLACEMENT",
        "AGE",
    ]
    assert lines[1].split() == [
        "j1",
        "shot010",
        "running",
        "50",
        "12/24",
        "povray>=3.7",
        "local",
        "2m",
        "ago",
    ]
    assert "→ paris" in lines[2]
    assert "from studio" in lines[3], "a job accepted from a peer says where it came from"
    assert format_jobs([], NOW) == "no jobs"


def test_format_jobs_marks_split_jobs_and_their_parts():
    jobs = [
        make_job(split=True),
        make_job(id="j2", name="shot010-part1", placement="paris", part_of="j1"),
    ]
    lines = format_jobs(jobs, NOW).splitlines()
    assert "local, split" in lines[1]
    assert "→ paris, part of j1" in lines[2]


def test_format_job_shows_header_tasks_and_frames():
    detail = {
        "job": make_job(why_waiting="no server has povray>=3.8; 2 servers have povray 3.7.0.10"),
        "tasks": [
            {
                "index": 0,
                "frames": "1-2",
                "state": "done",
                "server": "r1",
                "attempt": 1,
                "started_at": NOW - 70,
                "finished_at": NOW - 10,
                "error": "",
            },
            {
                "index": 1,
                "frames": "3-4",
                "state": "failed",
                "server": "r2",
                "attempt": 3,
                "started_at": NOW - 5,
                "finished_at": None,
                "error": "povray:\n exit 1",
            },
        ],
        "frames": [
            {"frame": 1, "state": "done"},
            {"frame": 2, "state": "done"},
            {"frame": 3, "state": "failed"},
            {"frame": 4, "state": "failed"},
        ],
    }
    text = format_job(detail, NOW)
    assert "requires   povray>=3.7" in text
    assert "placement  local — a local server matches" in text
    assert "storage    /mnt/farm/shot010-j1" in text
    assert "waiting    no server has povray>=3.8" in text
    task_lines = [line for line in text.splitlines() if line.lstrip().startswith(("0 ", "1 "))]
    assert task_lines[0].split() == ["0", "1-2", "done", "r1", "1", "1:00", "-"]
    assert task_lines[1].split() == [
        "1",
        "3-4",
        "failed",
        "r2",
        "3",
        "0:05",
        "povray:",
        "exit",
        "1",
    ]
    assert text.endswith("frames: 2 done (1-2), 2 failed (3-4); 4 total")


def test_format_job_shows_the_chunks_taken_back_from_parts():
    reclaimed = [
        {
            "part": "p1",
            "peer": "facility",
            "state": "answered",
            "chunks_asked": 2,
            "chunks": 2,
            "frames": "21-24",
        },
        {
            "part": "p2",
            "peer": "farm",
            "state": "answered",
            "chunks_asked": 1,
            "chunks": 0,
            "frames": "",
        },
        {
            "part": "p2",
            "peer": "farm",
            "state": "asked",
            "chunks_asked": 3,
            "chunks": 0,
            "frames": "",
        },
    ]
    text = format_job({"job": make_job(split=True, reclaimed=reclaimed)}, NOW)
    lines = [line for line in text.splitlines() if line.startswith("reclaimed")]
    assert lines == [
        "reclaimed  frames 21-24 from facility (part p1)",
        "reclaimed  none of 1 chunk(s) from farm (part p2): started there",
        "reclaimed  3 chunk(s) asked back from farm (part p2)",
    ]


def test_frame_summary_without_frames():
    assert frame_summary([]) == "frames: none"


def test_job_summary():
    done = make_job(
        state="done", finished_at=NOW - 5, progress={"frames_total": 24, "frames_done": 24}
    )
    assert job_summary(done) == "job j1 done: 24/24 frames in 2:00; frames in /mnt/farm/shot010-j1"
    failed = make_job(state="failed", error="task 3 failed 3 times")
    assert job_summary(failed) == (
        "job j1 failed: 12/24 frames; task 3 failed 3 times; see `spillway job j1`"
    )


def test_format_servers_with_match_reasons():
    servers = [
        {
            "name": "r1",
            "status": "busy",
            "slots": 4,
            "free_slots": 1,
            "cores": 16,
            "memory_mb": 32768,
            "packages": {"povray": "3.7.0.10", "builtin": "1.0.0"},
            "tags": ["linux"],
            "last_heartbeat": NOW - 3,
            "match": {"ok": False, "reasons": ["has povray 3.7.0.10, job needs povray>=3.8"]},
        },
    ]
    lines = format_servers(servers, NOW).splitlines()
    assert lines[0].split()[-2:] == ["MATCH", "REASONS"]
    assert "1/4" in lines[1] and "32.0 GiB" in lines[1]
    assert "builtin 1.0.0, povray 3.7.0.10" in lines[1]
    assert re.search(r" no +has povray 3\.7\.0\.10, job needs povray>=3\.8$", lines[1])
    assert "MATCH" not in format_servers(
        [{k: v for k, v in servers[0].items() if k != "match"}], NOW
    )
    assert format_servers([], NOW) == "no render servers connected"


def test_format_peers():
    peers = [
        {
            "name": "paris",
            "url": "https://paris:8701",
            "state": "up",
            "last_seen": NOW - 30,
            "capacity": {"free_slots": 8},
        }
    ]
    lines = format_peers(peers, NOW).splitlines()
    assert lines[1].split() == [
        "paris",
        "up",
        "https://paris:8701",
        "30s",
        "ago",
        "free_slots",
        "8",
        "-",
    ]
    peers[0] |= {
        "preference": 10,
        "cost": 0.0,
        "policy": {"packages": ["povray", "blender"], "max_priority": 50, "max_hops": 1},
    }
    terms = format_peers(peers, NOW).splitlines()[1].split("8 ", 1)[1].strip()
    assert terms == "max_priority 50, packages povray,blender, preference 10"


def test_format_peers_says_why_a_refusing_peer_shows_no_free_slot():
    peers = [
        {
            "name": "facility-a",
            "url": "https://a:8701",
            "state": "up",
            "last_seen": NOW - 2,
            "capacity": {"free_slots": 0, "advertised_free_slots": 2},
            "refused": {"note": "refused job j1: priority 80 is above the cap 50", "at": NOW - 12},
        },
        {"name": "facility-b", "url": "https://b:8701", "state": "up", "last_seen": NOW - 1},
    ]
    lines = format_peers(peers, NOW).splitlines()
    assert lines[1].split()[5:] == ["free_slots", "0", "-"]
    assert lines[3] == (
        "facility-a: refused job j1: priority 80 is above the cap 50, 12s ago; "
        "no free slot until its next advert (it advertised 2)"
    )
    assert len(lines) == 4


def test_progress_line_matches_the_documented_shape():
    line = progress_line(make_job(), servers=2, eta=14)
    assert line == "[##########----------]  12/24 frames  running  2 servers  eta 0:14"


def test_progress_line_edge_cases():
    assert progress_line(make_job(progress={"frames_total": 0, "frames_done": 0}), 1, None) == (
        "[--------------------]  0/0 frames  running  1 server"
    )
    waiting = make_job(state="queued", why_waiting="no server has povray>=3.8")
    assert progress_line(waiting, 0, None).endswith("0 servers  (no server has povray>=3.8)")


@pytest.mark.parametrize(
    ("start", "now", "done", "total", "eta"),
    [
        ((0.0, 0), 10.0, 5, 10, 10.0),
        ((0.0, 0), 10.0, 0, 10, None),
        ((5.0, 2), 5.0, 4, 10, None),
        ((0.0, 0), 1.0, 10, 10, 0.0),
    ],
)
def test_estimate_eta(start, now, done, total, eta):
    assert estimate_eta(start, now, done, total) == eta


def detail(done, state="running", servers=("r1",)):
    tasks = [{"state": "running", "server": s} for s in servers]
    return {
        "job": make_job(state=state, progress={"frames_total": 24, "frames_done": done}),
        "tasks": tasks,
    }


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_reporter_redraws_one_line_on_a_tty():
    out = io.StringIO()
    clock = FakeClock()
    reporter = ProgressReporter(out, tty=True, clock=clock)
    reporter.update(detail(0))
    clock.now = 10
    reporter.update(detail(12))
    reporter.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "12/24 frames  running  1 server  eta 0:10" in text


def test_progress_reporter_throttles_lines_when_not_a_tty():
    out = io.StringIO()
    clock = FakeClock()
    reporter = ProgressReporter(out, tty=False, interval_s=5, clock=clock)
    reporter.update(detail(0, state="queued", servers=()))
    clock.now = 1
    reporter.update(detail(0, state="running"))  # state change: shown at once
    clock.now = 2
    reporter.update(detail(3))  # progress within the interval: held back
    clock.now = 7
    reporter.update(detail(6))  # interval passed: shown
    clock.now = 13
    reporter.update(detail(6))  # nothing changed: not repeated
    clock.now = 14
    reporter.update(detail(24, state="done", servers=()))
    reporter.close()
    lines = out.getvalue().splitlines()
    assert [line.split("frames")[0].split()[-1] for line in lines] == [
        "0/24",
        "0/24",
        "6/24",
        "24/24",
    ]
    assert "\r" not in out.getvalue()
    assert lines[-1].endswith("done  0 servers")
