"""Bad input over HTTP and the render-server WebSocket against a real agent app.

Every bad request gets a 4xx ``{"error": {"code", "message"}}`` (or, on the
WebSocket, a closed connection with a logged reason); nothing is written outside
the storage roots; and the agent keeps serving afterwards.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from render_server import protocol

from .conftest import AgentFactory, files_outside, png_bytes, sha

pytestmark = pytest.mark.timeout(60)
Client = TestClient[web.Request, web.Application]
MIB = 1024 * 1024
SCENE = json.dumps({"format": "spillway-scene/1", "objects": []}).encode()


async def assert_error(resp: Any, status: int | tuple[int, ...]) -> dict[str, Any]:
    expected = (status,) if isinstance(status, int) else status
    body = await resp.json()
    assert resp.status in expected, (resp.status, body)
    assert 400 <= resp.status < 500
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body  # type: ignore[no-any-return]


async def assert_serving(client: Client) -> None:
    resp = await client.get("/api/v1/health")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["site"] == "fault"


def assert_contained(client: Client) -> None:
    site_dir: Path = client.site_dir  # type: ignore[attr-defined]
    allowed = [site_dir / "storage", site_dir / "assets", *site_dir.glob("site.db*")]
    assert files_outside(site_dir.parent, allowed) == []
    assert list((site_dir / "assets").rglob("*.part")) == []
    assert list((site_dir / "storage").rglob("*.part")) == []


async def put_blob(client: Client, data: bytes) -> dict[str, Any]:
    resp = await client.put(f"/api/v1/blobs/{sha(data)}", data=data)
    assert resp.status in (200, 201), await resp.text()
    return {"path": "scene.json", "sha256": sha(data), "size": len(data)}


def job_body(manifest: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {
        "scene": "scene.json",
        "manifest": manifest,
        "frames": "1-4",
        "profile": {"package": "builtin"},
        **over,
    }


@pytest.fixture
async def client(make_agent: AgentFactory) -> Client:
    return await make_agent()


@pytest.mark.parametrize(
    "frames",
    [
        "",
        "   ",
        "1-",
        "-5",
        "abc",
        "5-1",
        "1,,2",
        "1-10x0",
        "1-10x-2",
        "1.5",
        "1-2000000",
        "0x1",
        "1e9",
        "99999999999999999999",
        "1-3,",
        "x",
        "1-10xabc",
        "\u0661-\u0663",
    ],
)
async def test_malformed_frame_specs_are_400(client: Client, frames: str) -> None:
    manifest = [await put_blob(client, SCENE)]
    resp = await client.post("/api/v1/jobs", json=job_body(manifest, frames=frames))
    await assert_error(resp, 400)
    await assert_serving(client)
    assert_contained(client)


@pytest.mark.parametrize("frames", [None, 12, ["1-4"], {"a": 1}, True])
async def test_frame_spec_of_wrong_type_is_400(client: Client, frames: Any) -> None:
    manifest = [await put_blob(client, SCENE)]
    await assert_error(
        await client.post("/api/v1/jobs", json=job_body(manifest, frames=frames)), 400
    )
    await assert_serving(client)


@pytest.mark.parametrize(
    "profile",
    [
        {"package": "nope"},
        {"package": ""},
        {"package": "builtin", "version": ">>1"},
        {},
        {"package": 5},
        {"package": "builtin", "min_cores": -1},
        {"package": "builtin", "max_attempts": 0},
        {"package": "builtin", "task_timeout_s": "soon"},
        {"package": "builtin", "tags": "a"},
        {"package": "builtin", "surprise": 1},
        "builtin",
    ],
)
async def test_unknown_packages_and_bad_profiles_are_400(client: Client, profile: Any) -> None:
    manifest = [await put_blob(client, SCENE)]
    await assert_error(
        await client.post("/api/v1/jobs", json=job_body(manifest, profile=profile)), 400
    )
    await assert_serving(client)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b"null",
        b"\xff\xfe",
        b'{"scene": 1}',
        b'"x"',
        b"",
    ],
)
async def test_malformed_json_bodies_are_400(client: Client, body: bytes) -> None:
    resp = await client.post(
        "/api/v1/jobs", data=body, headers={"Content-Type": "application/json"}
    )
    await assert_error(resp, 400)
    resp = await client.post(
        "/api/v1/blobs/check", data=body, headers={"Content-Type": "application/json"}
    )
    await assert_error(resp, 400)
    await assert_serving(client)


async def test_wrong_content_type_is_400(client: Client) -> None:
    await assert_error(await client.post("/api/v1/jobs", data=b"scene=x"), 400)
    await assert_serving(client)


async def test_json_body_over_max_request_mb_is_413(client: Client) -> None:
    big = json.dumps({"sha256": ["0" * 64] * (2 * MIB // 64)}).encode()
    assert len(big) > MIB
    resp = await client.post(
        "/api/v1/blobs/check", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    await assert_error(resp, 413)
    resp = await client.post(
        "/api/v1/jobs", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    await assert_error(resp, 413)
    await assert_serving(client)
    assert_contained(client)


async def test_blob_over_max_blob_mb_is_413_and_not_stored(client: Client) -> None:
    data = b"x" * (MIB + 10)
    resp = await client.put(f"/api/v1/blobs/{sha(data)}", data=io.BytesIO(data))
    await assert_error(resp, 413)
    blobs = client.site_dir / "assets" / "blobs"  # type: ignore[attr-defined]
    assert [p for p in blobs.rglob("*") if p.is_file()] == []
    await assert_serving(client)
    assert_contained(client)


@pytest.mark.parametrize("kind", ["tampered", "truncated", "empty", "extended"])
async def test_tampered_or_truncated_blob_is_422_and_not_stored(client: Client, kind: str) -> None:
    data = b"the real asset bytes " * 1000
    sent = {
        "tampered": data[:-1] + b"!",
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "extended": data + b"more",
    }[kind]
    resp = await client.put(f"/api/v1/blobs/{sha(data)}", data=sent)
    await assert_error(resp, 422)
    blobs = client.site_dir / "assets" / "blobs"  # type: ignore[attr-defined]
    assert [p for p in blobs.rglob("*") if p.is_file()] == []
    # The asset counts as missing, so a job referencing it is refused.
    check = await client.post("/api/v1/blobs/check", json={"sha256": [sha(data)]})
    assert (await check.json())["missing"] == [sha(data)]
    await assert_serving(client)
    assert_contained(client)


@pytest.mark.parametrize("digest", ["abc", "0" * 63, "G" * 64, "A" * 64, "0" * 65, "..%2F..%2Fetc"])
async def test_bad_blob_names_are_4xx(client: Client, digest: str) -> None:
    await assert_error(await client.put(f"/api/v1/blobs/{digest}", data=b"x"), (400, 404))
    await assert_error(await client.get(f"/api/v1/blobs/{digest}"), (400, 404))
    await assert_serving(client)
    assert_contained(client)


@pytest.mark.parametrize(
    "path",
    [
        "../scene.json",
        "../../etc/passwd",
        "/etc/passwd",
        "/scene.json",
        "a/../../b",
        "textures/../../x",
        "a\\..\\b",
        "C:\\scene.json",
        "a/./../..",
        "",
        "dir/",
        "./",
        "./.",
        "a\x00b",
        "a\nb",
        "..",
        ".",
        "x" * 2000,
    ],
)
async def test_unsafe_asset_paths_in_manifest_are_400(client: Client, path: str) -> None:
    good = await put_blob(client, SCENE)
    manifest = [good, {"path": path, "sha256": good["sha256"], "size": good["size"]}]
    await assert_error(await client.post("/api/v1/jobs", json=job_body(manifest)), 400)
    # As the scene itself, too.
    manifest = [{"path": path, "sha256": good["sha256"], "size": good["size"]}]
    await assert_error(await client.post("/api/v1/jobs", json=job_body(manifest, scene=path)), 400)
    await assert_serving(client)
    assert_contained(client)


@pytest.mark.parametrize(
    "manifest",
    [
        [],
        None,
        "scene.json",
        [{"path": "scene.json"}],
        [{"path": "scene.json", "sha256": "x", "size": 1}],
        [{"path": "scene.json", "sha256": "0" * 64, "size": -1}],
        [{"path": "scene.json", "sha256": "0" * 64, "size": 1, "extra": 1}],
        [{"path": 7, "sha256": "0" * 64, "size": 1}],
    ],
)
async def test_malformed_manifests_are_4xx(client: Client, manifest: Any) -> None:
    await assert_error(await client.post("/api/v1/jobs", json=job_body(manifest)), (400, 422))
    await assert_serving(client)


async def test_hostile_job_names_stay_inside_storage(client: Client) -> None:
    manifest = [await put_blob(client, SCENE)]
    for name in ("../../escape", "/abs/olute", "..", "a/b\\c", "\u202e\u0000x"):
        resp = await client.post("/api/v1/jobs", json=job_body(manifest, name=name))
        assert resp.status in (201, 400), await resp.text()
        if resp.status == 201:
            storage_dir = Path((await resp.json())["job"]["storage_dir"])
            assert storage_dir.parent == client.site_dir / "storage"  # type: ignore[attr-defined]
        else:
            await assert_error(resp, 400)
    await assert_serving(client)
    assert_contained(client)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/nope",
        "/api/v1/jobs/nope/frames",
        "/api/v1/jobs/nope/frames/1",
        "/api/v1/nothing",
        "/api/v1/jobs?limit=0",
        "/api/v1/jobs?limit=x",
        "/api/v1/jobs?state=bogus",
        "/api/v1/servers?job=nope",
    ],
)
async def test_unknown_things_are_4xx(client: Client, path: str) -> None:
    await assert_error(await client.get(path), (400, 404))
    await assert_serving(client)


@pytest.mark.parametrize("action", ["explode", "cancel"])
async def test_job_control_on_missing_job_is_404(client: Client, action: str) -> None:
    await assert_error(await client.post(f"/api/v1/jobs/nope/{action}"), 404)
    await assert_error(await client.post(f"/api/v1/servers/nope/{action}"), 404)
    await assert_serving(client)


# --- the render-server WebSocket -------------------------------------------------------------


def hello(name: str, token: str = "", **over: Any) -> bytes:
    return protocol.encode(
        protocol.Hello(
            token=token,
            name=name,
            host="test",
            cores=2,
            memory_mb=2048,
            packages={"builtin": "1.0.0"},
            **over,
        )
    )


def raw_msg(**fields: Any) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)  # type: ignore[no-any-return]


GARBAGE: list[tuple[str, Any]] = [
    ("text frame", "hello"),
    ("not msgpack", b"\xc1\xc1\xc1"),
    ("truncated msgpack", raw_msg(type="heartbeat", v=1, free_slots=1)[:-2]),
    ("a list", msgpack.packb([1, 2, 3])),
    ("an int", msgpack.packb(7)),
    ("no version", raw_msg(type="heartbeat", free_slots=1)),
    ("wrong version", raw_msg(type="heartbeat", v=99, free_slots=1)),
    ("unknown type", raw_msg(type="format_disk", v=1)),
    ("type not a string", raw_msg(type=5, v=1)),
    (
        "wrong field type",
        raw_msg(
            type="task_done",
            v=1,
            task_id="one",
            attempt=1,
            outputs=[],
            started_at=0.0,
            finished_at=0.0,
        ),
    ),
    ("missing field", raw_msg(type="task_started", v=1, task_id=1)),
    ("bool as int", raw_msg(type="task_started", v=1, task_id=True, attempt=1)),
    (
        "nested garbage",
        raw_msg(
            type="task_done",
            v=1,
            task_id=1,
            attempt=1,
            outputs=[{"frame": "x"}],
            started_at=0.0,
            finished_at=0.0,
        ),
    ),
    ("binary keys", msgpack.packb({b"type": b"heartbeat", b"v": 1}, use_bin_type=True)),
    ("int keys", msgpack.packb({1: 2}, use_bin_type=True)),
]


async def _send(ws: Any, payload: Any) -> None:
    if isinstance(payload, str):
        await ws.send_str(payload)
    else:
        await ws.send_bytes(payload)


async def _closed(ws: Any) -> Any:
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            return msg
        if msg.type == WSMsgType.BINARY:
            decoded = protocol.decode(msg.data)
            if isinstance(decoded, protocol.Refused):
                continue
        else:
            return msg


@pytest.mark.parametrize(("what", "payload"), GARBAGE, ids=[g[0] for g in GARBAGE])
async def test_garbage_instead_of_hello_closes_the_connection(
    client: Client, caplog: pytest.LogCaptureFixture, what: str, payload: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="site_agent")
    ws = await client.ws_connect("/ws/render-server")
    await _send(ws, payload)
    await _closed(ws)
    assert ws.closed
    await ws.close()
    assert any("refused" in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]
    await assert_serving(client)
    assert_contained(client)


@pytest.mark.parametrize(("what", "payload"), GARBAGE, ids=[g[0] for g in GARBAGE])
async def test_garbage_after_hello_closes_the_connection(
    client: Client, caplog: pytest.LogCaptureFixture, what: str, payload: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="site_agent")
    ws = await client.ws_connect("/ws/render-server")
    await ws.send_bytes(hello("garbler"))
    welcome = protocol.decode((await ws.receive()).data)
    assert isinstance(welcome, protocol.Welcome)
    await _send(ws, payload)
    msg = await _closed(ws)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    await ws.close()
    assert any("garbler" in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]
    await assert_serving(client)
    # The agent still takes a well-behaved server afterwards.
    ws2 = await client.ws_connect("/ws/render-server")
    await ws2.send_bytes(hello("garbler"))
    assert isinstance(protocol.decode((await ws2.receive()).data), protocol.Welcome)
    await ws2.close()


@pytest.mark.parametrize(
    "over", [{"name": ""}, {"name": "x" * 129}, {"slots": 0}, {"slots": 100000}]
)
async def test_bad_hello_values_are_refused(client: Client, over: dict[str, Any]) -> None:
    ws = await client.ws_connect("/ws/render-server")
    await ws.send_bytes(
        hello(over.pop("name", "ok"), **over)
        if "name" not in over
        else protocol.encode(
            protocol.Hello(token="", name=over["name"], host="h", cores=1, memory_mb=1)
        )
    )
    first = await asyncio.wait_for(ws.receive(), 10)
    assert first.type == WSMsgType.BINARY and isinstance(
        protocol.decode(first.data), protocol.Refused
    )
    await _closed(ws)
    await ws.close()
    await assert_serving(client)


async def test_wrong_enrollment_token_is_refused(make_agent: AgentFactory) -> None:
    client = await make_agent(server_token="enroll-me")
    for token in ("", "wrong", "enroll-me-not", "ENROLL-ME"):
        ws = await client.ws_connect("/ws/render-server")
        await ws.send_bytes(hello("intruder", token=token))
        first = await asyncio.wait_for(ws.receive(), 10)
        refused = protocol.decode(first.data)
        assert isinstance(refused, protocol.Refused) and "token" in refused.reason
        await _closed(ws)
        await ws.close()
    # Nothing registered, and the right token still works.
    servers = (await (await client.get("/api/v1/servers")).json())["servers"]
    assert servers == []
    ws = await client.ws_connect("/ws/render-server")
    await ws.send_bytes(hello("member", token="enroll-me"))
    assert isinstance(protocol.decode((await ws.receive()).data), protocol.Welcome)
    await ws.close()
    # Frame uploads need the token as a bearer too.
    resp = await client.put(
        "/api/v1/servers/s-x/tasks/1/attempts/1/frames/1",
        data=b"x",
        headers={"X-Sha256": sha(b"x"), "Authorization": "Bearer wrong"},
    )
    await assert_error(resp, 401)
    await assert_serving(client)


# --- frame uploads --------------------------------------------------------------------------


async def _assigned(client: Client) -> tuple[Any, Any, str, str, protocol.Assign]:
    """Two connected servers and a 1-frame job assigned to one of them."""
    conns = []
    for name in ("rs-one", "rs-two"):
        ws = await client.ws_connect("/ws/render-server")
        await ws.send_bytes(hello(name))
        welcome = protocol.decode((await ws.receive()).data)
        assert isinstance(welcome, protocol.Welcome)
        conns.append((ws, welcome.server_id))
    manifest = [await put_blob(client, SCENE)]
    resp = await client.post("/api/v1/jobs", json=job_body(manifest, frames="7"))
    assert resp.status == 201, await resp.text()

    async def first_assign(ws: Any) -> protocol.Assign:
        while True:
            msg = protocol.decode((await ws.receive()).data)
            if isinstance(msg, protocol.Assign):
                return msg

    waits = {asyncio.ensure_future(first_assign(ws)): (ws, sid) for ws, sid in conns}
    done, pending = await asyncio.wait(waits, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    for p in pending:
        p.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    winner = done.pop()
    ws, sid = waits[winner]
    ((other_ws, other_sid),) = [c for c in conns if c[1] != sid]
    return ws, other_ws, sid, other_sid, winner.result()


def _frame_url(server_id: str, task_id: Any, attempt: Any, frame: Any) -> str:
    return f"/api/v1/servers/{server_id}/tasks/{task_id}/attempts/{attempt}/frames/{frame}"


async def test_frame_upload_for_a_task_not_assigned_to_the_server_is_409(client: Client) -> None:
    ws, other_ws, sid, other_sid, assign = await _assigned(client)
    data = png_bytes()
    headers = {"X-Sha256": sha(data)}
    t, a = assign.task_id, assign.attempt
    await assert_error(
        await client.put(_frame_url(other_sid, t, a, 7), data=data, headers=headers), 409
    )
    await assert_error(
        await client.put(_frame_url(sid, t, a + 1, 7), data=data, headers=headers), 409
    )
    await assert_error(
        await client.put(_frame_url("s-nobody", t, a, 7), data=data, headers=headers), 409
    )
    await assert_error(await client.put(_frame_url(sid, t, a, 8), data=data, headers=headers), 400)
    await assert_error(
        await client.put(_frame_url(sid, 999999, 1, 7), data=data, headers=headers), 404
    )
    for bad in (
        ("x", a, 7),
        (t, "y", 7),
        (t, a, "z"),
        (t, a, "1e3"),
        (t, a, "-1"),
        (t, "9" * 30, 7),
    ):
        await assert_error(
            await client.put(_frame_url(sid, *bad), data=data, headers=headers), (400, 404, 409)
        )
    await assert_error(
        await client.put(_frame_url(sid, t, a, 7), data=data, headers={"X-Sha256": "nope"}), 400
    )
    await assert_error(await client.put(_frame_url(sid, t, a, 7), data=data), 400)
    # A tampered frame: the declared hash does not match the bytes.
    await assert_error(
        await client.put(_frame_url(sid, t, a, 7), data=data + b"!", headers=headers), 422
    )
    frames = (await (await client.get(f"/api/v1/jobs/{assign.job_id}/frames")).json())["frames"]
    assert frames == []
    job_dir = client.site_dir / "storage"  # type: ignore[attr-defined]
    assert [p for p in job_dir.rglob("*") if p.is_file()] == []
    # The rightful server's upload is accepted.
    resp = await client.put(_frame_url(sid, t, a, 7), data=data, headers=headers)
    assert resp.status == 201, await resp.text()
    await ws.close()
    await other_ws.close()
    await assert_serving(client)
    assert_contained(client)


async def test_task_done_without_frames_fails_that_attempt(client: Client) -> None:
    ws, other_ws, sid, _, assign = await _assigned(client)
    await ws.send_bytes(
        protocol.encode(
            protocol.TaskDone(
                task_id=assign.task_id,
                attempt=assign.attempt,
                outputs=[],
                started_at=0.0,
                finished_at=0.0,
            )
        )
    )
    await asyncio.sleep(0.3)
    detail = await (await client.get(f"/api/v1/jobs/{assign.job_id}")).json()
    task = detail["tasks"][0]
    assert task["failures"] == 1 and task["state"] in ("waiting", "dispatched"), task
    await ws.close()
    await other_ws.close()
    await assert_serving(client)


# --- frames inline in task_done -----------------------------------------------------------


async def test_a_real_render_servers_small_frames_arrive_inline(
    client: Client, tmp_path: Path
) -> None:
    from render_server.daemon import RenderServer
    from render_server.probe import HostInfo, probe_packages
    from site_agent.appkeys import SITE

    site = client.app[SITE]
    stored_calls = 0
    write_frame = site.storage.write_frame

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal stored_calls
        stored_calls += 1
        return await write_frame(*args, **kwargs)

    # every stored file, HTTP or inline, is written by the site's frame storage
    site.storage.write_frame = counting  # type: ignore[method-assign]
    packages = await probe_packages({"builtin"})
    server = RenderServer(
        agent_url=str(client.make_url("/")),
        name="rs-real",
        slots=1,
        tags=[],
        token="",
        cache_dir=tmp_path / "cache",
        work_dir=tmp_path / "work",
        host=HostInfo(host="localhost", cores=1, memory_mb=1024, packages=packages),
    )
    runner = asyncio.ensure_future(server.run())
    try:
        scene = json.dumps(
            {
                "format": "spillway-scene/1",
                "camera": {"position": [0, 0, 5], "look_at": [0, 0, 0]},
                "objects": [
                    {
                        "type": "sphere",
                        "center": [0, 0, 0],
                        "radius": 1.0,
                        "material": {"color": [0.9, 0.2, 0.2]},
                    }
                ],
            }
        )
        manifest = [await put_blob(client, scene.encode())]
        resp = await client.post(
            "/api/v1/jobs",
            json=job_body(
                manifest, frames="1-2", chunk_size=2, settings={"width": 32, "height": 24}
            ),
        )
        assert resp.status == 201, await resp.text()
        job_id = (await resp.json())["job"]["id"]
        for _ in range(200):
            detail = await (await client.get(f"/api/v1/jobs/{job_id}")).json()
            if detail["job"]["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.1)
        assert detail["job"]["state"] == "done", detail
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await server.shutdown()
    # Both frames inline, none over HTTP: each its main file and its preview.
    assert site.reports.files.inline_frames == 2 and stored_calls == 4
    frames = (await (await client.get(f"/api/v1/jobs/{job_id}/frames")).json())["frames"]
    assert sorted(f["frame"] for f in frames) == [1, 2]
    stored = sorted(p.name for p in (client.site_dir / "storage").rglob("*") if p.is_file())  # type: ignore[attr-defined]
    assert len(stored) == 4 and all(name.endswith(".png") for name in stored), stored
    previews = [p for p in (client.site_dir / "storage").rglob(".previews/*")]  # type: ignore[attr-defined]
    assert len(previews) == 2


@pytest.mark.parametrize(
    "kind", ["tampered", "not_in_task", "bad_sha", "folder_name", "hidden_name", "no_main"]
)
async def test_a_bad_inline_frame_fails_the_attempt_and_stores_nothing(
    client: Client, kind: str
) -> None:
    ws, other_ws, sid, _, assign = await _assigned(client)
    data = png_bytes()
    frame, digest, body = 7, sha(data), data
    name = f"{assign.output_name}_{frame:04d}.png"
    file_kind = protocol.FileKind.MAIN
    if kind == "tampered":
        body = data + b"!"
    elif kind == "not_in_task":
        frame = 8
    elif kind == "bad_sha":
        digest = "not-a-sha"
    elif kind == "folder_name":
        name = "../escape.png"
    elif kind == "hidden_name":
        name = ".hidden.png"
    else:
        file_kind = protocol.FileKind.EXTRA  # a frame's other file without its main file
    await ws.send_bytes(
        protocol.encode(
            protocol.TaskDone(
                task_id=assign.task_id,
                attempt=assign.attempt,
                started_at=0.0,
                finished_at=0.0,
                outputs=[
                    protocol.Output(
                        frame=frame, name=name, sha256=digest, size=len(body), kind=file_kind
                    )
                ],
                frames=[
                    protocol.InlineFrame(
                        frame=frame, name=name, sha256=digest, data=body, kind=file_kind
                    )
                ],
            )
        )
    )
    await asyncio.sleep(0.3)
    detail = await (await client.get(f"/api/v1/jobs/{assign.job_id}")).json()
    task = detail["tasks"][0]
    assert task["failures"] == 1 and task["state"] in ("waiting", "dispatched"), task
    assert "inline frames refused" in (task["error"] or ""), task
    assert (await (await client.get(f"/api/v1/jobs/{assign.job_id}/frames")).json())["frames"] == []
    storage = client.site_dir / "storage"  # type: ignore[attr-defined]
    assert [p for p in storage.rglob("*") if p.is_file()] == []
    await ws.close()
    await other_ws.close()
    await assert_serving(client)
    assert_contained(client)


async def test_an_output_name_another_frame_holds_is_refused_before_writing(
    client: Client,
) -> None:
    """Two frames of a job writing one file name would overwrite each other's output."""
    from site_agent.appkeys import SITE
    from site_agent.store.records import FrameRecord

    ws, other_ws, sid, _, assign = await _assigned(client)
    site = client.app[SITE]
    taken = FrameRecord(
        job_id=assign.job_id,
        frame=8,
        task_id=None,
        name="shot.png",
        sha256="a" * 64,
        size=1,
        server_id=None,
        rendered_at=1.0,
    )
    async with site.store.transaction() as tx:
        await tx.upsert_frames([taken])
    data = png_bytes()
    url = _frame_url(sid, assign.task_id, assign.attempt, 7)
    resp = await client.put(
        url, params={"name": "shot.png"}, data=data, headers={"X-Sha256": sha(data)}
    )
    body = await assert_error(resp, 400)
    assert "'shot.png' of frame 7 is already frame 8's" in body["error"]["message"]
    resp = await client.put(
        url,
        params={"name": "x.png", "kind": "thumbnail"},
        data=data,
        headers={"X-Sha256": sha(data)},
    )
    assert (
        "kind must be one of main, extra, preview"
        in (await assert_error(resp, 400))["error"]["message"]
    )
    # A name of its own is stored under that name.
    resp = await client.put(
        url, params={"name": "shot 7.png"}, data=data, headers={"X-Sha256": sha(data)}
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["name"] == "shot 7.png"
    storage = client.site_dir / "storage"  # type: ignore[attr-defined]
    assert sorted(p.name for p in storage.rglob("*") if p.is_file()) == ["shot 7.png"]
    await ws.close()
    await other_ws.close()


async def test_a_slow_completion_does_not_hold_up_the_connections_next_report(
    client: Client,
) -> None:
    """While one task's frames are still being written, the same connection's report on its
    other task is read and applied; both complete once the write finishes."""
    from site_agent.appkeys import SITE

    site = client.app[SITE]
    release = asyncio.Event()
    write_frame = site.storage.write_frame

    async def slow_write(*args: Any, **kwargs: Any) -> Any:
        await release.wait()
        return await write_frame(*args, **kwargs)

    site.storage.write_frame = slow_write  # type: ignore[method-assign]
    ws = await client.ws_connect("/ws/render-server")
    await ws.send_bytes(hello("rs-slots", slots=2))
    assert isinstance(protocol.decode((await ws.receive()).data), protocol.Welcome)
    manifest = [await put_blob(client, SCENE)]
    resp = await client.post("/api/v1/jobs", json=job_body(manifest, frames="1-2", chunk_size=1))
    assert resp.status == 201, await resp.text()
    assigns: list[protocol.Assign] = []
    while len(assigns) < 2:
        msg = protocol.decode((await asyncio.wait_for(ws.receive(), 10)).data)
        if isinstance(msg, protocol.Assign):
            assigns.append(msg)
    first, second = assigns
    data = png_bytes()
    name = f"{first.output_name}_{first.frames[0]:04d}.png"
    await ws.send_bytes(
        protocol.encode(
            protocol.TaskDone(
                task_id=first.task_id,
                attempt=first.attempt,
                started_at=0.0,
                finished_at=0.0,
                outputs=[
                    protocol.Output(
                        frame=first.frames[0], name=name, sha256=sha(data), size=len(data)
                    )
                ],
                frames=[
                    protocol.InlineFrame(
                        frame=first.frames[0], name=name, sha256=sha(data), data=data
                    )
                ],
            )
        )
    )
    await ws.send_bytes(
        protocol.encode(protocol.TaskStarted(task_id=second.task_id, attempt=second.attempt))
    )

    async def states() -> dict[int, str]:
        detail = await (await client.get(f"/api/v1/jobs/{first.job_id}")).json()
        return {t["id"]: t["state"] for t in detail["tasks"]}

    for _ in range(100):
        if (await states())[second.task_id] == "running":
            break
        await asyncio.sleep(0.05)
    assert (await states()) == {first.task_id: "dispatched", second.task_id: "running"}
    release.set()
    for _ in range(100):
        if (await states())[first.task_id] == "done":
            break
        await asyncio.sleep(0.05)
    assert (await states())[first.task_id] == "done"
    frames = (await (await client.get(f"/api/v1/jobs/{first.job_id}/frames")).json())["frames"]
    assert [f["frame"] for f in frames] == [first.frames[0]]
    await ws.close()
    await assert_serving(client)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("asset", "caf\udce9.png"),  # a Latin-1 file name as Python decodes it
        ("asset", "x" * 300 + ".png"),  # one name longer than any file system allows
        ("asset", "tex/" + "y" * 256),
        ("scene", "sc\udcffene.json"),
        ("name", "\udcff"),
        ("name", "a\x00b"),
        ("name", "tab\there"),
        ("name", "n" * 201),
        ("owner", "\udcff"),
        ("site", "\udcff"),
        ("frames", "1-4\udcff"),
        ("tags", "\udcff"),
        ("engine", "\ud800"),
    ],
)
async def test_names_no_store_or_file_system_can_hold_are_400(
    client: Client, field: str, value: str
) -> None:
    good = await put_blob(client, SCENE)
    manifest = [good]
    body = job_body(manifest)
    if field == "asset":
        manifest.append({"path": value, "sha256": good["sha256"], "size": good["size"]})
    elif field == "scene":
        manifest[0] = good | {"path": value}
        body["scene"] = value
    elif field in ("tags", "engine"):
        body["profile"] = {"package": "builtin", field: [value] if field == "tags" else value}
    else:
        body[field] = value
    error = await assert_error(await client.post("/api/v1/jobs", json=body), 400)
    assert "Traceback" not in error["error"]["message"]
    assert (await (await client.get("/api/v1/jobs")).json())["jobs"] == []
    await assert_serving(client)


async def test_an_asset_that_another_needs_as_a_folder_is_400(client: Client) -> None:
    good = await put_blob(client, SCENE)
    manifest = [
        good,
        {"path": "tex", "sha256": good["sha256"], "size": good["size"]},
        {"path": "tex/a.png", "sha256": good["sha256"], "size": good["size"]},
    ]
    error = await assert_error(await client.post("/api/v1/jobs", json=job_body(manifest)), 400)
    assert "'tex'" in error["error"]["message"] and "tex/a.png" in error["error"]["message"]
    await assert_serving(client)
