"""Render-server identity with real processes: a name belongs to one key and one live process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from render_server import protocol

from .harness import Agent, Process, spillway_cmd, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _server(agent: Agent, name: str, state: Path, label: str) -> Process:
    argv = spillway_cmd(
        "render-server", "--agent", agent.url, "--name", name, "--packages", "builtin",
        "--state", str(state), "--cache", str(agent.root / "cache" / label),
        "--workdir", str(agent.root / "work" / label),
    )  # fmt: skip
    proc = Process(argv, agent.root / f"{label}.log")
    proc.start()
    return proc


def _servers(agent: Agent) -> dict[str, dict[str, object]]:
    return {s["name"]: s for s in agent.get("/api/v1/servers")["servers"]}


def _exits(proc: Process, timeout: float = 30) -> int:
    assert proc.proc is not None
    return proc.proc.wait(timeout)


def test_a_name_held_by_a_live_server_is_refused_on_the_newcomers_console(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    first = _server(agent, "rs-1", tmp_path / "state-a", "first")
    processes.append(first)
    agent.wait_servers(1)
    # Another host with its own key, then a clone of the first host's state folder.
    for label, state, words in (
        ("other", tmp_path / "state-b", "enrolled by another render server"),
        ("clone", tmp_path / "state-a", "already connected"),
    ):
        newcomer = _server(agent, "rs-1", state, label)
        processes.append(newcomer)
        assert _exits(newcomer) == 2, newcomer.log()
        assert "spillway: error: the agent refused this render server" in newcomer.log()
        assert words in newcomer.log(), newcomer.log()
    assert first.proc is not None and first.proc.poll() is None
    assert first.log().count("connected to site") == 1, first.log()
    assert _servers(agent)["rs-1"]["status"] == "idle"


async def _forged_hello(agent: Agent, name: str) -> protocol.Message:
    url = agent.url.replace("http", "ws", 1) + "/ws/render-server"
    hello = protocol.Hello(token="", name=name, host="intruder", cores=1, memory_mb=1)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_bytes(protocol.encode(hello))
        reply = await ws.receive(timeout=15)
        return protocol.decode(reply.data)


def _put_frame(agent: Agent, server_id: str, key: str) -> int:
    data = b"forged"
    req = urllib.request.Request(
        f"{agent.url}/api/v1/servers/{server_id}/tasks/1/attempts/1/frames/1",
        data=data,
        method="PUT",
        headers={"X-Sha256": hashlib.sha256(data).hexdigest(), "X-Server-Key": key},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_enrollment_token_alone_cannot_take_over_a_server(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    victim = _server(agent, "victim", tmp_path / "state", "victim")
    processes.append(victim)
    agent.wait_servers(1)
    reply = asyncio.run(_forged_hello(agent, "victim"))
    assert isinstance(reply, protocol.Refused) and "enrolled by another" in reply.reason
    assert victim.log().count("connected to site") == 1
    server_id = str(_servers(agent)["victim"]["id"])
    assert _put_frame(agent, server_id, key="") == 401
    assert _put_frame(agent, server_id, key="guess") == 401


def test_servers_rm_forgets_an_offline_server_so_a_new_host_can_take_its_name(
    sqlite_agent: Agent, processes: list[Process], tmp_path: Path
) -> None:
    agent = sqlite_agent
    old = _server(agent, "node", tmp_path / "old-disk", "old")
    processes.append(old)
    agent.wait_servers(1)
    busy = agent.cli("servers", "rm", "node", check=False)
    assert busy.returncode != 0 and "is connected" in busy.stderr, busy
    old.stop()
    wait_for(lambda: _servers(agent)["node"]["status"] == "offline", 30, "node to go offline")
    reimaged = _server(agent, "node", tmp_path / "new-disk", "reimaged")
    processes.append(reimaged)
    assert _exits(reimaged) == 2 and "servers rm node" in reimaged.log(), reimaged.log()
    removed = agent.cli("servers", "rm", "node")
    assert "render server node removed" in removed.stdout
    assert "node" not in _servers(agent)
    unknown = agent.cli("servers", "rm", "node", check=False)
    assert unknown.returncode != 0 and "no render server 'node'" in unknown.stderr
    again = _server(agent, "node", tmp_path / "new-disk", "again")
    processes.append(again)
    agent.wait_servers(1)
    assert json.loads(agent.cli("servers", "--json").stdout)["servers"][0]["name"] == "node"
