"""The client's typed records, exceptions and request building, and the ops helpers
(JSON log lines, --version, big-job frame lookup), without an agent."""

from __future__ import annotations

import io
import json
import logging
from importlib.metadata import version

import pytest

from spillway import main as cli
from spillway.client import api
from spillway.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    NotFound,
    ServerError,
    SpillwayError,
    Unavailable,
    Unprocessable,
    error_for_status,
)
from spillway.client.job_view import frame_task_indexes
from spillway.client.records import Frame, Job, JobDetail, JobState, Peer, Server, TaskState
from spillway.log_setup import JsonFormatter, configure_logging

JOB = {
    "id": "3f2a9c01b2c4",
    "name": "shot",
    "state": "running",
    "priority": 50,
    "frames": "1-4",
    "frame_count": 4,
    "chunk_size": 2,
    "requirement": "builtin",
    "created_at": 10.0,
    "finished_at": None,
    "progress": {"frames_total": 4, "frames_done": 1, "tasks": {"running": 1, "waiting": 1}},
    "a_field_added_later": {"x": 1},
}


def test_job_detail_decodes_into_typed_records() -> None:
    detail = JobDetail.from_json(
        {
            "job": JOB,
            "tasks": [{"id": 7, "index": 0, "frames": "1-2", "state": "running", "server": "r1"}],
            "frames": [{"frame": 1, "state": "done", "sha256": "ab" * 32, "size": 9, "task": 7}],
            "tasks_page": {"offset": 0, "limit": 100, "total": 2, "next_offset": None},
        }
    )
    assert detail.job.state is JobState.RUNNING and not detail.job.finished
    assert detail.job.progress.frames_done == 1 and detail.job.progress.tasks["waiting"] == 1
    assert detail.job.raw["a_field_added_later"] == {"x": 1}  # newer fields stay reachable
    assert detail.tasks[0].state is TaskState.RUNNING and detail.tasks[0].server == "r1"
    assert detail.frames[0].rendered and detail.frames[0].task == 7
    assert detail.page.total == 2 and detail.page.next_offset is None


def test_records_take_defaults_for_fields_an_older_agent_leaves_out() -> None:
    job = Job.from_json({"id": "j", "name": "n", "state": "done"})
    assert job.finished and job.progress.frames_total == 0 and job.placement == "local"
    assert not Frame.from_json({"frame": 3}).rendered
    server = Server.from_json(
        {"id": "s", "name": "r1", "status": "idle", "match": {"ok": False, "reasons": ["no gpu"]}}
    )
    assert server.match is not None and server.match.reasons == ("no gpu",)
    assert Peer.from_json({"name": "facility", "state": "up"}).state == "up"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (404, NotFound),
        (409, Conflict),
        (422, Unprocessable),
        (503, Unavailable),
        (500, ServerError),
        (418, ApiError),
    ],
)
def test_an_error_answer_becomes_the_class_of_its_status(status: int, cls: type) -> None:
    err = error_for_status(status, "some_code", "what to do", {"missing": ["ab"]})
    assert type(err) is cls
    assert isinstance(err, ClientError) and isinstance(err, SpillwayError)
    assert (err.status, err.code, err.details, str(err)) == (
        status,
        "some_code",
        {"missing": ["ab"]},
        "what to do",
    )


def test_calls_quote_ids_and_carry_their_parser() -> None:
    call = api.job("a/b", tasks=0)
    assert (call.method, call.path, call.params) == ("GET", "/jobs/a%2Fb", {"tasks": "0"})
    retry = api.control("j1", "retry", frames="1-3")
    assert (retry.path, retry.body) == ("/jobs/j1/retry", {"frames": "1-3"})
    assert retry.parse({"job": JOB}).id == JOB["id"]
    with pytest.raises(BadRequest, match="unknown job action 'explode'"):
        api.control("j1", "explode")
    with pytest.raises(ClientError, match="unexpected reply") as err:
        api.parse_reply(api.jobs(), {"jobs": [{"no": "id"}]}, "http://agent")
    assert err.value.code == "bad_reply"


def test_job_id_prefixes_resolve_only_when_unique() -> None:
    assert api.prefix_candidates("3f2a9c01b2c4") is None  # a whole id
    assert api.prefix_candidates("job1") is None  # not hex: taken as it is
    assert api.prefix_candidates("3f2a") is not None
    ids = ["3f2a9c01b2c4", "3f2b00000000", "aa0000000000"]
    assert api.pick_prefix_match("3f2a", ids) == "3f2a9c01b2c4"
    with pytest.raises(BadRequest, match="'3f' is the start of 2 job ids") as ambiguous:
        api.pick_prefix_match("3f", ids)
    assert ambiguous.value.code == "ambiguous_id"
    with pytest.raises(NotFound, match="no job 'bb'"):
        api.pick_prefix_match("bb", ids)


def test_frames_map_to_the_tasks_that_render_them() -> None:
    assert frame_task_indexes("1-10", 3, "1,3,4,10") == [0, 1, 3]
    assert frame_task_indexes("1-100x10", 1, "11,12,91") == [1, 9]  # 12 is not in the job
    assert frame_task_indexes("1-4", 1, "50") == []


def test_json_logs_are_one_object_per_line() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("debug", "json", stream=stream)
    try:
        log = logging.getLogger("site_agent.dispatcher")
        log.debug("dispatched task %s", 4, extra={"job": "3f2a", "task": 4})
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            log.exception("round failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "debug" and first["message"] == "dispatched task 4"
    assert (first["job"], first["task"], first["logger"]) == ("3f2a", 4, "site_agent.dispatcher")
    assert first["time"].endswith("Z")
    assert second["level"] == "error" and "ValueError: bad" in second["exc"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"spillway {version('spillway')}\n"


def test_scanner_coroutines_run_without_a_loop_unless_they_need_one() -> None:
    import asyncio

    from spillway.client.sync_submit import run_coroutine

    calls: list[str] = []

    async def reads_files() -> str:
        calls.append("reads")
        return "no loop needed"

    async def runs_a_program() -> str:
        calls.append("runs")
        loop = asyncio.get_running_loop()  # as create_subprocess_exec does
        await asyncio.sleep(0)
        return f"ran on {type(loop).__name__}"

    assert run_coroutine(reads_files) == "no loop needed"
    assert run_coroutine(runs_a_program).startswith("ran on ")
    assert calls == ["reads", "runs", "runs"]  # the second started once without a loop
