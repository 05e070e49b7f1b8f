"""Faults on a seeded random schedule: crashes, freezes and restarts of real processes.

Each fault leaves the farm whole again before the next one starts (a killed
process is restarted, a stopped one continued), so the damage is what the
fault did while it lasted: lost connections, half-done tasks and uploads,
a database closed mid-write. Outages stay well under the federation lease
(60 s), so no job is legitimately re-placed because of one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .soak_farm import Child, Farm, Site

log = logging.getLogger("soak")

# Fault kinds and their relative weights; the remote ones need federation.
LOCAL_FAULTS = {
    "server kill -9": 4,
    "server SIGSTOP": 3,
    "agent kill -9": 2,
    "agent SIGTERM": 1,
}
REMOTE_FAULTS = {
    "link cut (remote kill -9)": 1,
    "link stall (remote SIGSTOP)": 1,
    "remote restart (SIGTERM)": 1,
}


@dataclass
class FaultLog:
    """What was injected, in order, and how many of each kind."""

    events: list[tuple[float, str, str]] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    slow_terms: int = 0  # SIGTERMs that needed a kill after the grace period
    unexpected: list[str] = field(default_factory=list)  # processes that ended by themselves

    def record(self, kind: str, target: str) -> None:
        self.events.append((time.time(), kind, target))
        self.by_kind[kind] += 1
        log.info("fault %d: %s on %s", len(self.events), kind, target)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


class FaultInjector:
    """Injects one fault after another until :meth:`stop`; every choice comes from ``seed``."""

    def __init__(self, farm: Farm, *, seed: int, mean_interval_s: float) -> None:
        self.farm = farm
        self.rng = random.Random(seed)
        self.mean_interval_s = mean_interval_s
        self.log = FaultLog()
        self._stopping = asyncio.Event()
        self._busy = asyncio.Lock()  # one fault (or watchdog round) at a time
        studio = farm.sites["studio"]
        self._faults: dict[str, Callable[[], Awaitable[None]]] = {
            "server kill -9": lambda: self._server_kill(studio),
            "server SIGSTOP": lambda: self._server_stop(studio),
            "agent kill -9": lambda: self._agent_restart(studio, "agent kill -9", signal.SIGKILL),
            "agent SIGTERM": lambda: self._agent_restart(studio, "agent SIGTERM", signal.SIGTERM),
        }
        self._weights = dict(LOCAL_FAULTS)
        if "facility" in farm.sites:
            remote = farm.sites["facility"]
            self._faults |= {
                "link cut (remote kill -9)": lambda: self._agent_restart(
                    remote, "link cut (remote kill -9)", signal.SIGKILL, down=(2.0, 8.0)
                ),
                "link stall (remote SIGSTOP)": lambda: self._remote_stall(remote),
                "remote restart (SIGTERM)": lambda: self._agent_restart(
                    remote, "remote restart (SIGTERM)", signal.SIGTERM
                ),
            }
            self._weights |= REMOTE_FAULTS

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Wait a random interval, inject a random fault, repeat; returns after :meth:`stop`."""
        kinds = list(self._weights)
        weights = [self._weights[k] for k in kinds]
        while not await self._pause(self.rng.uniform(0.4, 1.6) * self.mean_interval_s):
            kind = self.rng.choices(kinds, weights)[0]
            async with self._busy:
                await self._faults[kind]()

    async def _pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the run is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _pick_server(self, site: Site) -> Child:
        live = [s for s in site.servers if s.alive and not s.stopped]
        return self.rng.choice(live or site.servers)

    async def _server_kill(self, site: Site) -> None:
        server = self._pick_server(site)
        self.log.record("server kill -9", server.name)
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(self.rng.uniform(0.2, 3.0))
        server.start()

    async def _server_stop(self, site: Site) -> None:
        # Sometimes shorter than the heartbeat timeout (3 s), sometimes longer: the
        # agent then requeues the tasks, and the server wakes up holding stale ones.
        server = self._pick_server(site)
        self.log.record("server SIGSTOP", server.name)
        server.signal_group(signal.SIGSTOP)
        await asyncio.sleep(self.rng.uniform(1.0, 7.0))
        server.signal_group(signal.SIGCONT)

    async def _agent_restart(
        self, site: Site, kind: str, sig: int, down: tuple[float, float] = (0.0, 2.0)
    ) -> None:
        self.log.record(kind, site.agent.name)
        if sig == signal.SIGKILL:
            await asyncio.to_thread(site.agent.kill)
        elif not await asyncio.to_thread(site.agent.terminate, 15.0):
            self.log.slow_terms += 1
            log.warning("%s did not end within 15 s of SIGTERM; killed", site.agent.name)
        await asyncio.sleep(self.rng.uniform(*down))
        await asyncio.to_thread(site.start_agent)

    async def _remote_stall(self, site: Site) -> None:
        self.log.record("link stall (remote SIGSTOP)", site.agent.name)
        site.agent.signal_group(signal.SIGSTOP)
        await asyncio.sleep(self.rng.uniform(2.0, 8.0))
        site.agent.signal_group(signal.SIGCONT)

    async def heal(self) -> None:
        """After the last fault: continue what is stopped and restart what is down."""
        for site in self.farm.sites.values():
            site.agent.signal_group(signal.SIGCONT)
            if not site.agent.alive:
                await asyncio.to_thread(site.start_agent)
            for server in site.servers:
                server.signal_group(signal.SIGCONT)
                if not server.alive:
                    server.start()

    async def watchdog(self, every_s: float = 2.0) -> None:
        """Restart a process that ended without a fault (a crash) and record it as a finding."""
        while not await self._pause(every_s):
            async with self._busy:
                for site in self.farm.sites.values():
                    for child in (site.agent, *site.servers):
                        if child.proc is not None and not child.alive:
                            code = child.proc.returncode
                            self.log.unexpected.append(f"{child.name} exited with {code}")
                            log.error("%s exited by itself with %s; restarting", child.name, code)
                            if child is site.agent:
                                await asyncio.to_thread(site.start_agent)
                            else:
                                child.start()
