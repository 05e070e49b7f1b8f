"""The agent <-> connection worker link: batches, their codec, and the proxy connection over it."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import msgpack
import pytest
from aiohttp import WSCloseCode
from aiohttp.test_utils import make_mocked_request

from render_server import protocol
from site_agent.config import ConfigError, auto_workers, parse_config, parse_workers
from site_agent.connections import ConnectionRegistry
from site_agent.store.records import FrameFile, ServerRecord
from site_agent.worker_link import (
    Alive,
    Close,
    Gone,
    Hello,
    LinkError,
    LinkMessage,
    LinkWriter,
    Report,
    Send,
    Written,
    decode_batch,
    encode_batch,
    read_batches,
    without_frame_data,
)
from site_agent.workers import WorkerConnection, WorkerSocket, request_head
from spillway.core.records import FileKind

ASSIGN = protocol.Assign(
    task_id=3,
    attempt=2,
    job_id="j1",
    job_name="shot",
    package="builtin",
    version="1",
    engine="builtin",
    scene="scene.json",
    manifest=[],
    frames=[5, 6],
    output_name="shot",
    output_ext="png",
    timeout_s=60.0,
)


DONE = protocol.TaskDone(
    task_id=3,
    attempt=2,
    outputs=[
        protocol.Output(frame=5, name="shot_0005.png", sha256="a" * 64, size=4),
        protocol.Output(
            frame=5, name="shot_0005_R.png", sha256="c" * 64, size=2, kind=FileKind.EXTRA
        ),
    ],
    started_at=1.0,
    finished_at=2.5,
    log_tail="ok",
    frames=[
        protocol.InlineFrame(frame=5, name="shot_0005.png", sha256="a" * 64, data=b"png!"),
        protocol.InlineFrame(
            frame=5, name=".previews/p.png", sha256="b" * 64, data=b"p", kind=FileKind.PREVIEW
        ),
    ],
)


_DONE_ARRAY = [3, 2, [], 1.0, 2.0, "", []]


def _all_messages() -> list[LinkMessage]:
    return [
        Hello(conn=1, remote="127.0.0.1", data=b"\x81\xa1a\x01"),
        Report(conn=1, data=b"report"),
        Written(
            conn=2,
            done=without_frame_data(DONE),
            files=[
                FrameFile(name="shot_0005.png", sha256="a" * 64, size=10, kind=FileKind.MAIN),
                FrameFile(name=".previews/x.png", sha256="b" * 64, size=3, kind=FileKind.PREVIEW),
            ],
        ),
        Alive(seen=[1, 2], beats=[2]),
        Gone(conn=1),
        Send(conn=2, data=protocol.encode(ASSIGN)),
        Close(conn=2, code=1001, reason="heartbeat timeout"),
    ]


def test_a_batch_of_every_message_round_trips() -> None:
    messages = _all_messages()
    data = encode_batch(messages)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    assert decode_batch(data[4:]) == messages


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xc1", "not a msgpack link batch"),
        (msgpack.packb({"v": 1}), "[version, [message, ...]]"),
        (msgpack.packb([1, []]), "unsupported link version 1"),
        (msgpack.packb([2, [["nope"]]]), "unknown message type 'nope'"),
        (msgpack.packb([2, [["gone", "x"]]]), "gone.conn must be int, got str"),
        (msgpack.packb([2, [["gone", True]]]), "gone.conn must be int, got bool"),
        (msgpack.packb([2, [["send", 1]]]), "send: 1 fields, expected 2 (conn, data)"),
        (msgpack.packb([2, [["alive", [1, "2"], []]]]), "alive.seen must be an array of integers"),
        (
            msgpack.packb([2, [["written", 1, _DONE_ARRAY, [["a", "b", 1, "nope"]]]]]),
            "written.files",
        ),
        (
            msgpack.packb([2, [["written", 1, _DONE_ARRAY, [["a", "b", "1", "main"]]]]]),
            "[name, sha256",
        ),
        (msgpack.packb([2, [["written", 1, [3, 2], []]]]), "written.done: not a forwarded"),
        (
            msgpack.packb(
                [2, [["written", 1, [3, 2, [[5, "a", "b", 1, "nope"]], 1.0, 2.0, "", []], []]]]
            ),
            "written.done: not a forwarded TaskDone: 'nope'",
        ),
        (
            msgpack.packb([2, [["written", 1, [3, 2, [], 1.0, 2.0, "", [[5, "a"]]], []]]]),
            "a InlineFrame is [frame, name, sha256, kind]",
        ),
        (msgpack.packb([2, [{"type": "gone", "conn": 1}]]), "must be an array"),
        (msgpack.packb([2, [7]]), "must be an array"),
    ],
)
def test_a_bad_batch_is_a_link_error_that_names_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(LinkError) as info:
        decode_batch(body)
    assert words in str(info.value)


def test_a_forwarded_task_done_keeps_everything_but_the_frames_bytes() -> None:
    sent = Written(conn=1, done=without_frame_data(DONE), files=[])
    [forwarded] = decode_batch(encode_batch([sent])[4:])
    assert isinstance(forwarded, Written)
    done = forwarded.done
    assert [f.data for f in done.frames] == [b"", b""]
    assert [(f.frame, f.name, f.sha256, f.kind) for f in done.frames] == [
        (f.frame, f.name, f.sha256, f.kind) for f in DONE.frames
    ]
    assert isinstance(done.frames[1].kind, FileKind) and isinstance(done.outputs[1].kind, FileKind)
    assert (done.outputs, done.log_tail, done.attempt, done.started_at, done.finished_at) == (
        DONE.outputs,
        "ok",
        2,
        1.0,
        2.5,
    )


async def _link() -> tuple[LinkWriter, asyncio.StreamReader, asyncio.StreamWriter]:
    """A LinkWriter on one end of a real Unix socket pair, a reader on the other."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    _, writer = await asyncio.open_unix_connection(sock=a)
    reader, other = await asyncio.open_unix_connection(sock=b)
    return LinkWriter(writer), reader, other


async def test_messages_queued_in_one_loop_turn_travel_as_one_batch() -> None:
    link, reader, other = await _link()
    for msg in _all_messages():
        link.send(msg)
    await link.drain()
    link.send(Gone(conn=9))  # the next turn: a batch of its own
    await link.close()
    batches = [batch async for batch in read_batches(reader)]
    assert batches == [_all_messages(), [Gone(conn=9)]]
    other.close()


async def test_a_worker_connection_sends_and_closes_over_the_link() -> None:
    link, reader, other = await _link()
    ws = WorkerSocket(link, 7)
    record = ServerRecord(id="s-1", name="rs-1", host="h", cores=2, memory_mb=1, slots=2)
    conn = WorkerConnection(record=record, ws=ws, last_seen=0.0, reconciled=True)
    registry = ConnectionRegistry()
    registry.add(conn)
    assert [v.free_slots for v in registry.dispatchable()] == [2]

    assert await conn.send(ASSIGN)
    assert await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"replaced")
    assert not await conn.ws.close()  # once
    assert not await conn.send(ASSIGN)  # a closed socket: the caller requeues
    await link.close()
    batches = [batch async for batch in read_batches(reader)]
    assert [m for batch in batches for m in batch] == [
        Send(conn=7, data=protocol.encode(ASSIGN)),
        Close(conn=7, code=int(WSCloseCode.GOING_AWAY), reason="replaced"),
    ]
    other.close()


async def test_a_socket_the_worker_reported_gone_takes_no_more_sends() -> None:
    link, _, other = await _link()
    ws = WorkerSocket(link, 1)
    ws.gone()
    assert ws.closed
    with pytest.raises(ConnectionResetError):
        await ws.send_bytes(b"x")
    await link.close()
    other.close()


def test_the_handed_over_request_is_the_request_line_and_headers_as_sent() -> None:
    request = make_mocked_request(
        "GET",
        "/ws/render-server?x=1",
        headers={"Upgrade": "websocket", "Sec-WebSocket-Key": "abc=="},
    )
    assert request_head(request) == (
        b"GET /ws/render-server?x=1 HTTP/1.1\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Key: abc==\r\n\r\n"
    )


def test_workers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [auto_workers(n) for n in (None, 1, 2, 3, 4, 16, 64)] == [0, 0, 0, 0, 3, 15, 16]
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert parse_workers("auto", "w") == 7
    assert parse_workers(0, "w") == 0 and parse_workers(3, "w") == 3
    for bad in (-1, 65, 1.5, True, "two"):
        with pytest.raises(ConfigError, match="from 0 to 64"):
            parse_workers(bad, "t.toml: [agent] workers")


def test_agent_section(tmp_path: Path) -> None:
    base = {"name": "studio", "storage": "frames"}
    root = tmp_path
    assert parse_config(dict(base), source="t", base_dir=root).agent.workers == 0
    cfg = parse_config({**base, "agent": {"workers": 2}}, source="t", base_dir=root)
    assert cfg.agent.workers == 2
    with pytest.raises(ConfigError, match=r"unknown key \[agent\] 'threads'"):
        parse_config({**base, "agent": {"threads": 2}}, source="t", base_dir=root)
