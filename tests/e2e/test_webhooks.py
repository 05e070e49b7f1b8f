"""Webhooks end to end: a real agent posts job events to a tiny aiohttp receiver in the test,
which checks every signature; deliveries made while it is down (and the agent restarts)
arrive once it is back."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from webhooks.signing import SignatureError, secret_key, verify

from .federation_harness import PAIR, Federation, pair_servers, running
from .harness import ROOT, Agent, Process, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCENE = ROOT / "examples" / "textured" / "scene.json"
POV_SCENE = ROOT / "examples" / "povray" / "scene.pov"
SECRET = "whsec_c3BpbGx3YXktd2ViaG9vay10ZXN0LWtleQ=="
DOWN_S = 8.0
"""How long the receiver is down, the agent restarted halfway: long enough for several
retries with growing backoff on each side of the restart."""


@dataclass
class Receiver:
    """An aiohttp server on its own thread and loop, recording each verified delivery."""

    port: int
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            msg_id = verify(
                secret_key(SECRET),
                {k.lower(): v for k, v in request.headers.items()},
                body,
                now=time.time(),
            )
        except SignatureError as exc:
            self.bad.append(str(exc))
            return web.Response(status=400)
        self.requests[msg_id] += 1
        self.received.setdefault(msg_id, json.loads(body))  # deduplicated by webhook-id
        return web.Response(status=204)

    def start(self) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/hook", self._hook)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            ready.set()

        def run() -> None:
            assert self._loop is not None
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "the receiver did not start"

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        runner, loop = self._runner, self._loop
        assert runner is not None
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def events(self) -> Counter[tuple[str, str]]:
        """(event, job id) of each distinct delivery."""
        return Counter((b["type"], b["data"]["job"]["id"]) for b in self.received.values())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    r.start()
    yield r
    r.stop()


def submit(agent: Agent, *args: str) -> str:
    result = agent.cli("submit", str(SCENE), "--package", "builtin", "--json", *args)
    return str(json.loads(result.stdout)["job"]["id"])


def webhook_toml(receiver: Receiver, name: str = "ci") -> str:
    return (
        f'\n[[webhooks]]\nname = "{name}"\nurl = "http://127.0.0.1:{receiver.port}/hook"\n'
        f'secret = "{SECRET}"\ntimeout = 5\n'
    )


def test_receiver_gets_every_event_once_signed_even_after_being_down(
    tmp_path: Path, receiver: Receiver, processes: list[Process]
) -> None:
    hook = webhook_toml(receiver)
    agent = Agent(
        tmp_path / "studio",
        name="studio",
        database=f"sqlite:///{tmp_path / 'site.db'}",
        extra_toml=hook,
    )
    agent.start()
    processes.append(agent)
    processes.append(agent.render_server("rs-a", slots=2))
    agent.wait_servers(1)

    done = submit(agent, "--frames", "1-2")
    failed = submit(agent, "--frames", "1", "--max-attempts", "1", "--timeout", "0.01")
    held = submit(agent, "--frames", "1", "--tags", "nowhere", "--queue-anyway")
    agent.cli("cancel", held)
    for job_id in (done, failed):
        agent.wait_job(job_id)
    expected = {
        ("job.submitted", done),
        ("job.started", done),
        ("job.done", done),
        ("job.submitted", failed),
        ("job.started", failed),
        ("job.failed", failed),
        ("job.submitted", held),
        ("job.cancelled", held),
    }
    wait_for(lambda: set(receiver.events()) >= expected, 60, f"{expected} at the receiver")

    receiver.stop()
    late = submit(agent, "--frames", "1-2")
    agent.wait_job(late)
    late_events = {("job.submitted", late), ("job.started", late), ("job.done", late)}

    def retried_while_down() -> bool:
        rows = agent.get("/api/v1/webhooks")["deliveries"]
        mine = [d for d in rows if d["job_id"] == late]
        return len(mine) == 3 and all(d["attempts"] >= 2 and d["state"] == "pending" for d in mine)

    wait_for(retried_while_down, 30, "the late job's deliveries to be retried")
    shown = agent.cli("webhooks").stdout
    assert "ci" in shown and "pending" in shown and "Cannot connect" in shown, shown
    # Down a while longer, the agent restarted meanwhile: the deliveries wait in its database.
    time.sleep(DOWN_S / 2)
    agent.stop()
    agent.start()
    time.sleep(DOWN_S / 2)
    receiver.start()
    wait_for(
        lambda: set(receiver.events()) >= expected | late_events,
        60,
        "the deliveries made while the receiver was down",
    )

    assert receiver.bad == []
    assert set(receiver.events()) == expected | late_events
    assert all(n == 1 for n in receiver.events().values()), receiver.events()
    # The receiver has the last event before the agent has its answer and records it delivered.
    settled = {"pending": 0, "delivered": 11, "failed": 0}
    wait_for(
        lambda: agent.get("/api/v1/webhooks")["webhooks"][0]["deliveries"] == settled,
        30,
        f"the agent to record every delivery: {settled}",
    )
    body = agent.get("/api/v1/webhooks")
    [endpoint] = body["webhooks"]
    assert endpoint["deliveries"] == settled, endpoint
    assert {d["last_status"] for d in body["deliveries"]} == {204}
    shown = agent.cli("webhooks").stdout
    assert "delivered" in shown and "204" in shown, shown


@pytest.mark.povray
@pytest.mark.skipif(shutil.which("povray") is None, reason="POV-Ray is not installed")
def test_both_sites_tell_of_a_forwarded_job(tmp_path: Path, receiver: Receiver) -> None:
    """The studio says submitted, forwarded, done; the facility accepted, started, done."""
    fed = Federation(tmp_path, PAIR)
    for agent in fed.agents.values():
        with agent.config_path.open("a") as config:
            config.write(webhook_toml(receiver, f"ci-{agent.name}"))
    with running(fed, pair_servers({"fac-1": "povray"}), [("studio", "facility")]):
        studio = fed["studio"]
        result = studio.cli(
            "submit", str(POV_SCENE), "--package", "povray", "--frames", "1-2", "--json"
        )
        job_id = json.loads(result.stdout)["job"]["id"]
        detail = studio.wait_job(job_id, timeout=180)["job"]
        assert detail["state"] == "done" and detail["placement"] == "facility"
        remote = detail["remote_job_id"]
        expected = {
            ("studio", "job.submitted", job_id),
            ("studio", "job.forwarded", job_id),
            ("studio", "job.done", job_id),
            ("facility", "job.accepted", remote),
            ("facility", "job.started", remote),
            ("facility", "job.done", remote),
        }

        def seen() -> set[tuple[str, str, str]]:
            return {
                (b["data"]["site"], b["type"], b["data"]["job"]["id"])
                for b in receiver.received.values()
            }

        wait_for(lambda: seen() >= expected, 60, f"{expected} at the receiver")
        forwarded = [b for b in receiver.received.values() if b["type"] == "job.forwarded"]
        assert [b["data"]["job"]["placement"] for b in forwarded] == ["facility"]
        assert receiver.bad == [] and all(n == 1 for n in receiver.requests.values())
