"""The agent <-> render-server wire protocol: round trips and refusal of bad input."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import nested

from render_server import protocol as p
from spillway.core.records import FileEntry

MESSAGES = [
    p.Hello(
        token="t",
        name="rs-1",
        host="h",
        cores=8,
        memory_mb=16000,
        gpus=["RTX"],
        os="Linux",
        cpu_model="x",
        packages={"povray": "3.7.0.10"},
        tags=["fast"],
        slots=2,
        running=[p.TaskRef(task_id=1, attempt=2)],
    ),
    p.Heartbeat(free_slots=1, running=[p.TaskRef(task_id=3, attempt=1)]),
    p.TaskStarted(task_id=1, attempt=1),
    p.TaskLog(task_id=1, attempt=1, text="frame 1 done\n"),
    p.TaskDone(
        task_id=1,
        attempt=1,
        outputs=[p.Output(frame=1, name="a_0001.png", sha256="0" * 64, size=10)],
        started_at=1.0,
        finished_at=2.5,
        log_tail="ok",
    ),
    p.TaskDone(
        task_id=2,
        attempt=1,
        outputs=[p.Output(frame=3, name="a_0003.png", sha256="1" * 64, size=4)],
        started_at=1.0,
        finished_at=2.0,
        frames=[
            p.InlineFrame(frame=3, name="a_0003.png", sha256="1" * 64, data=b"\x89PNG\x00\xff")
        ],
    ),
    p.TaskFailed(task_id=1, attempt=2, error="boom", log_tail="trace"),
    p.Welcome(
        server_id="s-1",
        site="studio",
        heartbeat_interval_s=2.0,
        keep=[p.TaskRef(task_id=1, attempt=1)],
    ),
    p.Assign(
        task_id=7,
        attempt=1,
        job_id="j",
        job_name="shot",
        package="builtin",
        version=">=1",
        engine="",
        scene="scene.json",
        manifest=[FileEntry(path="tex/a.png", sha256="f" * 64, size=3)],
        frames=[1, 2],
        output_name="shot",
        output_ext="png",
        width=320,
        height=240,
        timeout_s=60.0,
        threads=2,
    ),
    p.Cancel(task_id=7, attempt=1, reason="job cancelled"),
    p.Refused(reason="wrong token"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.TYPE)
def test_every_message_round_trips(msg: p.Message) -> None:
    assert p.decode(p.encode(msg)) == msg


def test_task_done_from_an_older_sender_has_no_inline_frames() -> None:
    raw = msgpack.packb(
        {
            "type": "task_done",
            "v": 1,
            "task_id": 1,
            "attempt": 1,
            "outputs": [],
            "started_at": 0.0,
            "finished_at": 1.0,
        }
    )
    msg = p.decode(raw)
    assert isinstance(msg, p.TaskDone) and msg.frames == []


def test_integers_are_accepted_where_floats_are_expected() -> None:
    raw = msgpack.packb(
        {"type": "welcome", "v": 1, "server_id": "s", "site": "x", "heartbeat_interval_s": 2}
    )
    msg = p.decode(raw)
    assert isinstance(msg, p.Welcome) and msg.heartbeat_interval_s == 2.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xc1", "not a msgpack message"),
        (msgpack.packb([1, 2]), "must be a msgpack map"),
        (msgpack.packb({"type": "hello", "v": 99}), "unsupported protocol version 99"),
        (msgpack.packb({"type": "launch", "v": 1}), "unknown message type 'launch'"),
        (msgpack.packb({"type": "task_started", "v": 1, "task_id": 1}), "missing field 'attempt'"),
        (
            msgpack.packb({"type": "task_started", "v": 1, "task_id": "1", "attempt": 1}),
            r"task_started.task_id: expected int",
        ),
        (
            msgpack.packb({"type": "task_started", "v": 1, "task_id": True, "attempt": 1}),
            "expected int",
        ),
        (
            msgpack.packb(
                {"type": "heartbeat", "v": 1, "free_slots": 1, "running": [{"task_id": 1}]}
            ),
            r"heartbeat.running\[0\]: missing field 'attempt'",
        ),
        (
            msgpack.packb(
                {
                    "type": "hello",
                    "v": 1,
                    "token": "",
                    "name": "n",
                    "host": "h",
                    "cores": 1,
                    "memory_mb": 1,
                    "packages": {"povray": 3.7},
                }
            ),
            r"packages\['povray'\]: expected str",
        ),
        (
            msgpack.packb(
                {
                    "type": "task_done",
                    "v": 1,
                    "task_id": 1,
                    "attempt": 1,
                    "outputs": [],
                    "started_at": 0,
                    "finished_at": 0,
                    "frames": [{"frame": 1, "name": "a", "sha256": "0" * 64, "data": "text"}],
                },
                use_bin_type=True,
            ),
            r"task_done.frames\[0\].data: expected bytes",
        ),
        (
            msgpack.packb(
                {
                    "type": "task_done",
                    "v": 1,
                    "task_id": 1,
                    "attempt": 1,
                    "outputs": [],
                    "started_at": 0,
                    "finished_at": 0,
                    "frames": [{"frame": 1, "name": "a", "sha256": "0" * 64}],
                },
                use_bin_type=True,
            ),
            r"task_done.frames\[0\]: missing field 'data'",
        ),
    ],
)
def test_bad_input_raises_protocol_error_naming_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(p.ProtocolError, match=message):
        p.decode(raw)


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.decode(b"\x00" * (p.MAX_MESSAGE_BYTES + 1))


@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_ever_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(p.ProtocolError):
        p.decode(data)


_values = nested(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    max_size=3,
)


@given(
    st.sampled_from(sorted(p.MESSAGES)), st.dictionaries(st.text(max_size=12), _values, max_size=8)
)
def test_arbitrary_maps_with_a_known_type_only_ever_raise_protocol_error(
    kind: str, body: dict[str, object]
) -> None:
    raw = msgpack.packb({**body, "type": kind, "v": 1})
    with contextlib.suppress(p.ProtocolError):
        p.decode(raw)


def test_a_decoded_assign_manifest_holds_the_shared_file_entry() -> None:
    assign = next(m for m in MESSAGES if isinstance(m, p.Assign))
    decoded = p.decode(p.encode(assign))
    assert isinstance(decoded, p.Assign)
    assert all(type(entry) is FileEntry for entry in decoded.manifest)
