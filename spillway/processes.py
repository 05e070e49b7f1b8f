"""The ``spillway`` commands that run processes: agent, render-server, certs, demo.

Each command imports the parts it runs (site agent, federation, render server)
when it runs, so ``spillway --help`` and the client commands load none of them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spillway.client.args import agent_url, plain_name, positive_int, tag_list

if TYPE_CHECKING:
    from aiohttp import web

    from site_agent.site import SiteAgent

# --- process commands (lazy imports: these pull in the server side) ---------------------


def _finish(result: Any) -> int:
    """Accept a sync or async entry point's result: an int exit status or None."""
    import asyncio
    import inspect

    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return int(result or 0)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def federation_extension(app: web.Application, site: SiteAgent) -> None:
    """Start federation for a site whose config has a ``[federation]`` table."""
    if site.config.federation is None:
        return
    from federation.service import attach_federation

    await attach_federation(app, site)


async def webhooks_extension(app: web.Application, site: SiteAgent) -> None:
    """Start the webhooks of a site whose config has ``[[webhooks]]``."""
    if not site.config.webhooks:
        return
    from webhooks.service import attach_webhooks

    await attach_webhooks(app, site)


# The choices of spillway.log_setup, spelled out so that building the parser (every
# `spillway` command does) does not import the logging package.
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def _logging(args: argparse.Namespace) -> None:
    from spillway.log_setup import configure_logging

    configure_logging(args.log_level, args.log_format)


def _add_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=os.environ.get("SPILLWAY_LOG_LEVEL") or "info",
        help="least severe records logged (default: $SPILLWAY_LOG_LEVEL or %(default)s)",
    )
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("SPILLWAY_LOG_FORMAT") or "text",
        help="text, or json: one JSON object per line (default: $SPILLWAY_LOG_FORMAT or "
        "%(default)s)",
    )


def _workers(value: str) -> int:
    from site_agent.config import ConfigError, parse_workers

    try:
        return parse_workers("auto" if value == "auto" else int(value), "--workers")
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError('a whole number from 0 to 64, or "auto"') from None


def cmd_agent(args: argparse.Namespace) -> int:
    from site_agent.app import run_agent

    _logging(args)
    extensions = [federation_extension, webhooks_extension]
    return _finish(run_agent(Path(args.config), extensions=extensions, workers=args.workers))


def cmd_render_server(args: argparse.Namespace) -> int:
    import socket
    import tempfile

    from render_server.main import run_render_server

    _logging(args)
    server_name = args.name or socket.gethostname()
    cache = Path(args.cache) if args.cache else Path.home() / ".cache" / "spillway" / server_name

    def run(work_dir: Path) -> int:
        return _finish(
            run_render_server(
                agent_url=args.agent,
                name=server_name,
                slots=args.slots,
                tags=list(args.tags),
                token=args.token or "",  # the wire protocol wants a string; "" = none
                cache_dir=cache,
                work_dir=work_dir,
                packages=set(args.packages) if args.packages else None,
                state_dir=Path(args.state) if args.state else None,
            )
        )

    if args.workdir:
        return run(Path(args.workdir))
    with tempfile.TemporaryDirectory(prefix=f"spillway-{server_name}-") as tmp:
        return run(Path(tmp))


def cmd_certs_init(args: argparse.Namespace) -> int:
    from federation.certs import init_ca

    paths = init_ca(Path(args.dir), force=args.force)
    print(f"federation CA created: {_paths(paths, Path(args.dir))}")
    return 0


def cmd_certs_issue(args: argparse.Namespace) -> int:
    from federation.certs import issue_site_cert

    out = Path(args.out) if args.out else Path(args.dir) / args.site
    if args.host:
        paths = issue_site_cert(Path(args.dir), args.site, out, hosts=list(args.host))
    else:
        paths = issue_site_cert(Path(args.dir), args.site, out)
    print(f"certificate for site {args.site}: {_paths(paths, out)}")
    return 0


def _paths(result: Any, fallback: Path) -> str:
    """``cert X, key Y`` from the certs module's path records (or the directory)."""
    named = [(k, getattr(result, k, None)) for k in ("cert", "key")]
    shown = ", ".join(f"{k} {v}" for k, v in named if v is not None)
    return shown or str(fallback)


def cmd_demo(args: argparse.Namespace) -> int:
    from spillway.demo import run_demo

    return _finish(run_demo())


def add_process_commands(sub: Any) -> None:
    p = sub.add_parser("agent", help="run a site agent")
    p.add_argument("--config", required=True, metavar="FILE", help="site TOML file")
    p.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help='connection worker processes serving render servers, or "auto" '
        "(default: the config's [agent] workers, else 0: all in the agent's own process)",
    )
    _add_log_options(p)
    p.set_defaults(run=cmd_agent)
    p = sub.add_parser("render-server", help="run a render server")
    agent = os.environ.get("SPILLWAY_AGENT") or None
    p.add_argument(
        "--agent",
        required=agent is None,
        default=agent,
        type=agent_url,
        metavar="URL",
        help="site agent URL (default: $SPILLWAY_AGENT)",
    )
    _add_log_options(p)
    p.add_argument("--name", type=plain_name, help="server name (default: host name)")
    p.add_argument("--slots", type=positive_int, default=1, help="tasks at once (default 1)")
    p.add_argument("--tags", type=tag_list, default=[], help="e.g. gpu,linux")
    p.add_argument(
        "--packages",
        type=tag_list,
        default=[],
        help="offer only these installed render packages, e.g. builtin,povray (default: all found)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("SPILLWAY_SERVER_TOKEN") or None,
        help="enrollment token (default: $SPILLWAY_SERVER_TOKEN)",
    )
    p.add_argument("--cache", metavar="DIR", help="asset cache (default ~/.cache/spillway/NAME)")
    p.add_argument("--workdir", metavar="DIR", help="task work dirs (default: a temp dir)")
    p.add_argument(
        "--state",
        metavar="DIR",
        help="keeps this server's identity key "
        "(default ~/.local/share/spillway/render-servers/NAME)",
    )
    p.set_defaults(run=cmd_render_server)
    certs = sub.add_parser("certs", help="federation certificates")
    certs_sub = certs.add_subparsers(dest="certs_command", metavar="COMMAND", required=True)
    p = certs_sub.add_parser("init", help="create the federation CA")
    p.add_argument("--dir", required=True, help="CA directory")
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    p.set_defaults(run=cmd_certs_init)
    p = certs_sub.add_parser("issue", help="issue a site certificate")
    p.add_argument("site", type=plain_name, metavar="SITE")
    p.add_argument("--dir", required=True, help="CA directory")
    p.add_argument("--host", action="append", default=[], help="DNS name or IP (repeatable)")
    p.add_argument("--out", metavar="DIR", help="output directory (default DIR/SITE)")
    p.set_defaults(run=cmd_certs_issue)
    p = sub.add_parser("demo", help="run a whole site on this machine and render an example")
    p.set_defaults(run=cmd_demo)
