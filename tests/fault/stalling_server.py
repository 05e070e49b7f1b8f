"""A misbehaving render server for fault tests (run as a script, killed with SIGKILL).

It says hello, takes one Assign, sends TaskStarted, then either
``stall``: starts the frame upload, sends half the body and hangs there; or
``wrong``: uploads a complete frame with different (but correctly hashed) pixels and hangs
before TaskDone. Either way it touches READY_FILE once it is in that state.

    python tests/fault/stalling_server.py AGENT_URL NAME stall|wrong READY_FILE
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from PIL import Image

from render_server import protocol


def red_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


async def partial_put(agent_url: str, path: str, data: bytes) -> asyncio.StreamWriter:
    parts = urlsplit(agent_url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/octet-stream\r\n"
        f"X-Sha256: {hashlib.sha256(data).hexdigest()}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[: len(data) // 2])
    await writer.drain()
    return writer


async def main(agent_url: str, name: str, mode: str, ready: Path) -> None:
    ws_url = agent_url.replace("http", "ws", 1) + "/ws/render-server"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        await ws.send_bytes(
            protocol.encode(
                protocol.Hello(
                    token="",
                    name=name,
                    host="staller",
                    cores=1,
                    memory_mb=1024,
                    packages={"builtin": "1.0.0"},
                )
            )
        )
        welcome = protocol.decode((await ws.receive()).data)
        assert isinstance(welcome, protocol.Welcome), welcome
        while True:
            msg = protocol.decode((await ws.receive()).data)
            if isinstance(msg, protocol.Assign):
                break
        await ws.send_bytes(
            protocol.encode(protocol.TaskStarted(task_id=msg.task_id, attempt=msg.attempt))
        )
        frame = msg.frames[0]
        path = (
            f"/api/v1/servers/{welcome.server_id}/tasks/{msg.task_id}/attempts/{msg.attempt}"
            f"/frames/{frame}"
        )
        data = red_png()
        if mode == "stall":
            # Keep the half-sent request's connection open until the process is killed.
            _held = await partial_put(agent_url, path, data)
        else:
            headers = {"X-Sha256": hashlib.sha256(data).hexdigest()}
            async with session.put(agent_url + path, data=data, headers=headers) as resp:
                assert resp.status == 201, await resp.text()
        await asyncio.to_thread(ready.write_text, f"{msg.task_id} {frame}\n")
        # Keep heartbeating so only the kill makes the agent give up on us.
        while True:
            await ws.send_bytes(
                protocol.encode(
                    protocol.Heartbeat(
                        free_slots=0,
                        running=[protocol.TaskRef(task_id=msg.task_id, attempt=msg.attempt)],
                    )
                )
            )
            await asyncio.sleep(0.3)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
