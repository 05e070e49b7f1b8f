"""``python -m bench [overhead|short|dispatch|large|transfer|cli|monitor ...] [--quick]``: run, print a table, update docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

from site_agent.app import new_event_loop

from .cli import cli_run
from .common import ROOT, machine, scratch_root
from .dispatch import dispatch_run, large_job_run
from .monitor import monitor_run
from .overhead import overhead_run
from .report import render_markdown, render_table, update_doc
from .transfer import transfer_run

SUITES = ("overhead", "short", "dispatch", "large", "transfer", "cli", "monitor")
RESULTS = ROOT / "docs" / "benchmarks.json"
DOC = ROOT / "docs" / "benchmarks.md"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    p.add_argument(
        "suites",
        nargs="*",
        metavar="overhead|short|dispatch|large|transfer|cli|monitor",
        help="which benchmarks (default: all)",
    )
    p.add_argument(
        "--quick", action="store_true", help="smaller runs (minutes, not tens of minutes)"
    )
    p.add_argument(
        "--backends", default="sqlite,postgres", help="for dispatch and large (default: both)"
    )
    p.add_argument(
        "--servers",
        default="500,1000,2000",
        help="simulated servers for dispatch (default: 500,1000,2000)",
    )
    p.add_argument(
        "--workers",
        default="0",
        help="dispatch: the agent's connection workers, a comma list run in that order for "
        "each server count, e.g. 0,2,2,0 for an ABBA pair (default: 0, none)",
    )
    p.add_argument(
        "--render-ms",
        type=float,
        default=0.0,
        help="dispatch: each simulated task renders this long before it reports "
        "(default 0: at once; with a render time completions arrive spread out, as on a farm)",
    )
    p.add_argument(
        "--latency-render-ms",
        type=float,
        default=4000.0,
        help="dispatch: one more run per backend at the largest --servers whose tasks render "
        "this long, for assign latency on a farm the agent keeps up with (default 4000; 0: none)",
    )
    p.add_argument(
        "--loadgen-procs",
        type=int,
        default=None,
        help="dispatch: processes the simulated servers are spread over (default: 1 below "
        "8 cores, else one per 4 cores, at most one per 250 servers)",
    )
    p.add_argument(
        "--slots",
        type=int,
        default=max(2, os.cpu_count() or 1),
        help="render slots (and xargs -P, parallel -j) for overhead and short "
        "(default: one per core, at least 2)",
    )
    p.add_argument(
        "--lookahead",
        type=int,
        default=None,
        help="overhead and short: the agent's [scheduling] lookahead, tasks per slot a render "
        "server holds queued (default: the agent's own; 0: off, for an A/B)",
    )
    p.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone"
    )
    args = p.parse_args(argv)
    for name in args.suites:
        if name not in SUITES:
            p.error(f"unknown benchmark {name!r}; choose from {', '.join(SUITES)}")
    return args


async def run_suites(args: argparse.Namespace) -> dict[str, Any]:
    suites = args.suites or list(SUITES)
    backends = [b for b in args.backends.split(",") if b]
    results: dict[str, Any] = {}
    if "overhead" in suites:
        frames = 24 if args.quick else 240
        print(
            f"overhead: {frames} frames, xargs -P {args.slots} and GNU parallel vs Spillway "
            f"({args.slots} slots) ...",
            file=sys.stderr,
        )
        results["overhead"] = [
            await overhead_run(
                frames, args.slots, limit_s=450 if args.quick else 1800, lookahead=args.lookahead
            )
        ]
    if "short" in suites:
        frames = 100 if args.quick else 500
        print(
            f"short: {frames} near-empty frames, xargs -P {args.slots} and GNU parallel vs "
            "Spillway ...",
            file=sys.stderr,
        )
        results["short"] = [
            await overhead_run(
                frames,
                args.slots,
                limit_s=600 if args.quick else 1500,
                short=True,
                lookahead=args.lookahead,
            )
        ]
    if "dispatch" in suites:
        results["dispatch"] = await _dispatch_rows(args, backends)
    if "large" in suites:
        frames = 20_000 if args.quick else 100_000
        rows = []
        for backend in backends:
            print(f"large: {backend}, {frames} frames ...", file=sys.stderr)
            rows.append(
                {"backend": backend, **await large_job_run(backend, frames, 10, limit_s=120)}
            )
        results["large"] = rows
    if "transfer" in suites:
        size = (128 if args.quick else 1024) * 1024 * 1024
        print(
            f"transfer: {size >> 20} MiB of assets over mutual TLS vs raw loopback ...",
            file=sys.stderr,
        )
        results["transfer"] = [await transfer_run(size, timeout=600)]
    if "cli" in suites:
        runs = 5 if args.quick else 20
        print(f"cli: start times and submit -> first frame, {runs} runs each ...", file=sys.stderr)
        results["cli"] = [await cli_run(runs, limit_s=60)]
    if "monitor" in suites:
        jobs = 500 if args.quick else 2000
        print(f"monitor: {jobs} jobs and a 10000-frame job in Chromium ...", file=sys.stderr)
        results["monitor"] = [await monitor_run(jobs, 10_000, limit_s=600)]
    return results


async def _dispatch_rows(args: argparse.Namespace, backends: list[str]) -> list[dict[str, Any]]:
    rows = []
    for backend in backends:
        for servers in (int(s) for s in args.servers.split(",")):
            for workers in (int(w) for w in args.workers.split(",")):
                tasks = servers * (10 if args.quick else 40)
                rows.append(
                    await _dispatch_row(args, backend, servers, tasks, args.render_ms, workers)
                )
        if args.latency_render_ms > 0:
            rows.append(await _latency_row(args, backend))
    return rows


async def _latency_row(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """Assign latency where it means something: the largest farm, each task "rendering"
    ``--latency-render-ms``, so the agent is not saturated. With tasks that take no time
    every simulated server asks again at once and waits for the whole cycle
    (servers / throughput, Little's law), so the throughput rows' latency is their cycle."""
    servers = max(int(s) for s in args.servers.split(","))
    workers = max(int(w) for w in args.workers.split(","))
    tasks = servers * (2 if args.quick else 5)
    return await _dispatch_row(args, backend, servers, tasks, args.latency_render_ms, workers)


async def _dispatch_row(
    args: argparse.Namespace,
    backend: str,
    servers: int,
    tasks: int,
    render_ms: float,
    workers: int,
) -> dict[str, Any]:
    print(
        f"dispatch: {backend}, {servers} servers, {tasks} tasks"
        + (f" of {render_ms:g} ms" if render_ms else "")
        + f", {workers} workers ...",
        file=sys.stderr,
    )
    row = await dispatch_run(
        backend,
        servers,
        tasks,
        limit_s=300 if args.quick else 600,
        render_s=render_ms / 1000,
        loadgen_processes=args.loadgen_procs,
        workers=workers,
    )
    return {"backend": backend, **row}


def run(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run the load generators on the agent's event loop (uvloop where installed): they share its 2 cores."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.time()
    with scratch_root():
        results = run(run_suites(args))
    host = machine()
    print(render_table(results, host))
    if not args.no_write:
        stored: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        for name, rows in results.items():
            stored[name] = {"rows": rows, "quick": args.quick, "at": started}
        stored["machine"] = host
        RESULTS.write_text(json.dumps(stored, indent=2) + "\n")
        update_doc(DOC, render_markdown(stored))
        print(f"results written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
