"""``scripts/soak``: a chaos soak of real processes on loopback, with a strict check at the end.

For ``--minutes`` it runs a studio site (``--servers`` render servers) federated
with a facility site (two render servers), several clients submitting small
built-in-tracer jobs (some sent to the facility), and a seeded random schedule
of faults: render servers killed with SIGKILL or frozen with SIGSTOP, the
studio agent killed or stopped with SIGTERM and restarted, the federation link
cut (the facility agent killed or frozen) and the facility restarted. Then it
stops injecting, waits (bounded) for every job to end and checks every job of
both sites through the API, the database and the disk (see ``soak_verify``),
and that the agents' resident memory stayed under ``--rss-limit-mib``.

Exit status: 0 when nothing was lost and nothing left behind, 1 on any
finding or leftover temp file, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from spillway.client import AgentClient, SpillwayClientError

from .soak_clients import ClientStats, Submitter
from .soak_farm import BACKENDS, Farm, Site, soak_databases
from .soak_faults import FaultInjector
from .soak_verify import SiteVerdict, unfinished_jobs, verify_site

log = logging.getLogger("soak")


@dataclass
class SoakResult:
    """The figures of one soak run on one database backend."""

    backend: str
    seconds: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    slow_terms: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    submitted: int = 0
    refused: int = 0
    verdicts: list[SiteVerdict] = field(default_factory=list)
    rss_max_mib: dict[str, float] = field(default_factory=dict)
    rss_limit_mib: float = 0.0
    drain_s: float = 0.0
    findings: list[str] = field(default_factory=list)

    @property
    def losses(self) -> int:
        """Findings of lost or wrong work (see ``soak_verify``)."""
        return len(self.findings) + sum(len(v.findings) for v in self.verdicts)

    @property
    def leftovers(self) -> list[str]:
        return [f for v in self.verdicts for f in v.leftovers]

    @property
    def failed(self) -> bool:
        return self.losses > 0 or bool(self.leftovers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "seconds": round(self.seconds, 1),
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "slow_sigterms": self.slow_terms,
            "unexpected_exits": self.unexpected_exits,
            "jobs_submitted": self.submitted,
            "submissions_refused": self.refused,
            "sites": {
                v.site: {"jobs": dict(v.jobs), "frames": v.frames, "tasks": v.tasks}
                for v in self.verdicts
            },
            "rss_max_mib": {k: round(v, 1) for k, v in self.rss_max_mib.items()},
            "rss_limit_mib": self.rss_limit_mib,
            "drain_s": round(self.drain_s, 1),
            "losses": self.losses,
            "findings": self.findings + [f for v in self.verdicts for f in v.findings],
            "leftovers": self.leftovers,
        }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--minutes", type=float, default=10.0, help="how long to inject faults (default 10)"
    )
    p.add_argument("--backend", choices=(*BACKENDS, "both"), default="sqlite")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault and job schedule")
    p.add_argument(
        "--servers", type=int, default=3, help="render servers at the studio (default 3)"
    )
    p.add_argument("--clients", type=int, default=3, help="concurrent submitters (default 3)")
    p.add_argument("--fault-interval", type=float, default=4.0, help="mean seconds between faults")
    p.add_argument("--no-federation", action="store_true", help="one site, no link faults")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="seconds for jobs to end")
    p.add_argument("--rss-limit-mib", type=float, default=400.0, help="bound on each agent's RSS")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--keep", action="store_true", help="keep the run folder (kept on failure)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.servers < 1 or args.clients < 1 or args.fault_interval <= 0:
        p.error("--minutes, --fault-interval must be > 0; --servers and --clients >= 1")
    return args


async def _wait_ready(studio: Site, servers: int, federated: bool, within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    async with AgentClient(studio.url, timeout_s=5) as client:
        while time.monotonic() < deadline:
            try:
                online = [s for s in await client.servers() if s["status"] in ("idle", "busy")]
                peers_up = not federated or any(p["state"] == "up" for p in await client.peers())
            except SpillwayClientError:
                online, peers_up = [], False
            if len(online) >= servers and peers_up:
                return
            await asyncio.sleep(0.3)
    raise RuntimeError(f"the farm was not ready within {within_s:.0f}s; see {studio.root}/logs")


async def _sample_rss(farm: Farm, peaks: dict[str, float], stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        for site in farm.sites.values():
            rss = site.agent.rss_mib()
            if rss is not None and rss > peaks.get(site.name, 0.0):
                peaks[site.name] = rss
        await asyncio.sleep(1.0)


async def _drain(farm: Farm, within_s: float) -> list[str]:
    """Wait until every job of every site has ended; the ids still open at the deadline."""
    deadline = time.monotonic() + within_s
    open_jobs: list[str] = []
    while time.monotonic() < deadline:
        open_jobs = []
        for site in farm.sites.values():
            open_jobs += [f"{site.name}/{j}" for j in await unfinished_jobs(site)]
        if not open_jobs:
            return []
        await asyncio.sleep(2.0)
    return open_jobs


async def _start_farm(farm: Farm) -> None:
    """Agents first (the facility before the studio), then their render servers; wait until ready."""
    for site in reversed(list(farm.sites.values())):
        await asyncio.to_thread(site.start_agent)
        for server in site.servers:
            server.start()
    studio = farm.sites["studio"]
    await _wait_ready(studio, len(studio.servers), "facility" in farm.sites)


async def _settle_and_check(
    farm: Farm,
    injector: FaultInjector,
    stats: ClientStats,
    args: argparse.Namespace,
    result: SoakResult,
) -> None:
    """After the faults: heal the farm, wait for every job to end, record the figures, verify."""
    await injector.heal()
    drained = time.monotonic()
    still_open = await _drain(farm, args.drain_timeout)
    result.drain_s = time.monotonic() - drained
    result.findings += [f"job {j} did not end within the drain timeout" for j in still_open]
    result.faults = injector.log.by_kind
    result.slow_terms = injector.log.slow_terms
    result.unexpected_exits = injector.log.unexpected
    result.submitted = len(stats.submitted)
    result.refused = stats.refused
    result.verdicts.append(await verify_site(farm.sites["studio"], stats.submitted))
    if "facility" in farm.sites:
        result.verdicts.append(await verify_site(farm.sites["facility"], []))


async def _run_farm(farm: Farm, args: argparse.Namespace, result: SoakResult) -> None:
    await _start_farm(farm)
    injector = FaultInjector(farm, seed=args.seed, mean_interval_s=args.fault_interval)
    stats = ClientStats()
    stopping, sampling = asyncio.Event(), asyncio.Event()
    remote_share = 0.3 if "facility" in farm.sites else 0.0
    submitters = [
        Submitter(i, farm.sites["studio"].url, stats, seed=args.seed, remote_share=remote_share)
        for i in range(1, args.clients + 1)
    ]
    started = time.monotonic()
    background = [
        asyncio.create_task(_sample_rss(farm, result.rss_max_mib, sampling), name="rss"),
        asyncio.create_task(injector.run(), name="faults"),
        asyncio.create_task(injector.watchdog(), name="watchdog"),
        *(asyncio.create_task(s.run(stopping), name=f"client-{s.number}") for s in submitters),
    ]
    try:
        await asyncio.sleep(args.minutes * 60)
        log.info("stopping the faults and the clients")
        injector.stop()
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*background[1:]), 120)
        await _settle_and_check(farm, injector, stats, args, result)
        result.seconds = time.monotonic() - started
    finally:
        sampling.set()
        injector.stop()
        stopping.set()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)


def _check_bounds(result: SoakResult, args: argparse.Namespace) -> None:
    result.rss_limit_mib = args.rss_limit_mib
    for site, peak in result.rss_max_mib.items():
        if peak > args.rss_limit_mib:
            result.findings.append(
                f"{site} agent peaked at {peak:.0f} MiB RSS, over the {args.rss_limit_mib:.0f} MiB bound"
            )
    result.findings += [f"{e} (a crash, not an injected fault)" for e in result.unexpected_exits]


async def run_soak(
    backend: str, args: argparse.Namespace, root: Path, started: list[Farm]
) -> SoakResult:
    """One soak on ``backend``; fresh databases, dropped (PostgreSQL) at the end.

    The farm is appended to ``started`` so that the caller can still end its
    processes when an interrupt tears the event loop down before ``finally`` runs.
    """
    result = SoakResult(backend)
    sites = ("studio",) if args.no_federation else ("studio", "facility")
    async with soak_databases(backend, root, sites) as databases:
        farm = Farm(root)
        started.append(farm)
        try:
            if args.no_federation:
                farm.add_site("studio", databases["studio"])
            else:
                farm.federate(databases)
                farm.add_servers(farm.sites["facility"], 2)
            farm.add_servers(farm.sites["studio"], args.servers)
            await _run_farm(farm, args, result)
        finally:
            await asyncio.to_thread(farm.close)
    _check_bounds(result, args)
    return result


def render_summary(result: SoakResult) -> str:
    """The figures of one run in a few lines of text."""
    d = result.to_dict()
    faults = ", ".join(f"{k} {v}" for k, v in sorted(result.faults.items()))
    lines = [
        f"soak on {result.backend}: {d['seconds']:.0f} s, {d['faults_total']} faults ({faults})",
        f"  clients: {result.submitted} jobs acknowledged, {result.refused} submissions refused "
        "while an agent was down (retried)",
    ]
    for v in result.verdicts:
        jobs = ", ".join(f"{k} {n}" for k, n in sorted(v.jobs.items()))
        lines.append(
            f"  {v.site}: jobs {sum(v.jobs.values())} ({jobs}), {v.frames} frames verified, "
            f"{v.tasks} task rows"
        )
    rss = ", ".join(f"{k} {v:.0f} MiB" for k, v in result.rss_max_mib.items())
    lines.append(
        f"  agent RSS peak: {rss} (bound {result.rss_limit_mib:.0f} MiB); drain {result.drain_s:.0f} s"
    )
    if result.slow_terms:
        lines.append(f"  SIGTERMs that needed a kill after 15 s: {result.slow_terms}")
    lines.append(f"  losses: {result.losses}; leftover temp files: {len(result.leftovers)}")
    lines += [f"  LOSS: {f}" for f in d["findings"]]
    lines += [f"  LEFTOVER: {f}" for f in result.leftovers]
    return "\n".join(lines)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, _interrupt)  # end the children on `kill` as on Ctrl-C
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    results: list[SoakResult] = []
    # Start-up (<= 90 s), ending the faults (<= 120 s) and the check fit in the margin.
    limit_s = args.minutes * 60 + args.drain_timeout + 300
    for backend in backends:
        root = Path(tempfile.mkdtemp(prefix=f"spillway-soak-{backend}-"))
        failed = True
        farms: list[Farm] = []
        try:
            result = asyncio.run(asyncio.wait_for(run_soak(backend, args, root, farms), limit_s))
            results.append(result)
            print(render_summary(result), flush=True)
            failed = result.failed
        except (RuntimeError, OSError, TimeoutError) as exc:
            print(f"soak on {backend}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"soak interrupted; logs in {root}", file=sys.stderr)
            return 130
        finally:
            for farm in farms:
                farm.close()  # idempotent: a no-op when the run ended normally
            if failed or args.keep:
                print(f"run folder kept: {root}", file=sys.stderr)
            else:
                shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
