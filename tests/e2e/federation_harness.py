"""Federated sites for end-to-end tests: N real site agents peering over mutual TLS on loopback.

:class:`Federation` makes the certificates (with the CLI) and each site's TOML;
:func:`running` starts the sites and their render servers and returns once every
server is online and each site that must see a peer's servers in its capacity
advert does. :func:`running_pair` is the common case: a studio with one built-in
server and a facility with the servers a test names. :func:`site_databases` gives
each site its own PostgreSQL database when a test module runs on PostgreSQL
(:data:`BACKENDS`). The rest speaks to a site's federation listener directly: a
signed message (:meth:`Federation.signed`), a request with a site's certificate
(:func:`fed_request`), a minimal offer (:func:`sample_offer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import ssl
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from federation.envelope import encode_envelope
from federation.protocol import JobSpec, Message, Offer
from federation.tls import TlsFiles
from spillway.core.records import FileEntry
from spillway.main import main as cli_main

from .harness import Agent, Process, free_port, wait_for

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""``params`` of a module fixture that runs its sites on SQLite, then on PostgreSQL."""
PAIR = ("studio", "facility")
ENVELOPE = {"Content-Type": "application/vnd.spillway.fed+msgpack"}
"""Headers of a request that carries a signed envelope."""


@dataclass(frozen=True)
class PeerLink:
    """One ``[[peers]]`` entry of a site's TOML: the peer's name, extra keys of the entry
    (``preference = 10``), and the lines of its ``[peers.policy]`` table, if any."""

    name: str
    keys: str = ""
    policy: str = ""


@dataclass(frozen=True)
class RenderServer:
    """A render server to start at ``site``: its name, ``--packages``, slots and tags."""

    site: str
    name: str
    packages: str
    slots: int = 1
    tags: str = ""


def make_pki(root: Path, sites: Sequence[str]) -> Path:
    """A federation CA and one certificate per site, made with the CLI's ``certs`` command
    (run in this process: a new interpreter per command costs more than the command);
    returns the folder (``ca/ca.pem``, ``certs/<site>.pem``, ``certs/<site>-key.pem``)."""
    pki = root / "pki"
    commands = [["init", "--dir", str(pki / "ca")]]
    commands += [
        ["issue", site, "--dir", str(pki / "ca"), "--out", str(pki / "certs")] for site in sites
    ]
    for argv in commands:
        said = io.StringIO()
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            status = cli_main(["certs", *argv])
        assert status == 0, f"spillway certs {' '.join(argv)} exited {status}: {said.getvalue()}"
    return pki


def federation_toml(
    pki: Path,
    name: str,
    port: int,
    links: Sequence[PeerLink],
    ports: Mapping[str, int],
    *,
    lease: float = 60,
    overflow_after: float | None = None,
    advertise_interval: float = 1,
    blob_port: int | None = 0,
) -> str:
    """The ``[federation]`` table and the ``[[peers]]`` entries of one site."""
    overflow = "" if overflow_after is None else f"overflow_after = {overflow_after}\n"
    text = (
        f'\n[federation]\nlisten = "127.0.0.1:{port}"\nca = "{pki}/ca/ca.pem"\n'
        f'cert = "{pki}/certs/{name}.pem"\nkey = "{pki}/certs/{name}-key.pem"\n'
        f"lease = {lease}\nadvertise_interval = {advertise_interval}\n{overflow}"
        + ("" if blob_port is None else f"blob_port = {blob_port}\n")
    )
    for link in links:
        text += (
            f'\n[[peers]]\nname = "{link.name}"\nurl = "https://127.0.0.1:{ports[link.name]}"\n'
            f"{link.keys}\n"
        )
        if link.policy:
            text += f"[peers.policy]\n{link.policy}\n"
    return text


class Federation:
    """N site agents that peer with each other over mutual TLS (nothing started).

    ``links[site]`` lists the peers of ``site`` (default: every other site, no options);
    ``databases[site]`` its database URL (default: an SQLite file under ``root``);
    ``overflow_after[site]`` its ``overflow_after`` (default: none).
    """

    def __init__(
        self,
        root: Path,
        sites: Sequence[str],
        *,
        links: Mapping[str, list[PeerLink]] | None = None,
        databases: Mapping[str, str] | None = None,
        lease: float = 60,
        overflow_after: Mapping[str, float] | None = None,
    ) -> None:
        self.root = root
        self.pki = make_pki(root, sites)
        self.fed_ports = {site: free_port() for site in sites}
        self.agents: dict[str, Agent] = {}
        for site in sites:
            peers = (links or {}).get(site) or [PeerLink(other) for other in sites if other != site]
            database = (databases or {}).get(site) or f"sqlite:///{root / f'{site}.db'}"
            self.agents[site] = Agent(
                root / site,
                name=site,
                database=database,
                extra_toml=federation_toml(
                    self.pki,
                    site,
                    self.fed_ports[site],
                    peers,
                    self.fed_ports,
                    lease=lease,
                    overflow_after=(overflow_after or {}).get(site),
                ),
            )

    def __getitem__(self, site: str) -> Agent:
        return self.agents[site]

    def fed_url(self, site: str) -> str:
        return f"https://127.0.0.1:{self.fed_ports[site]}"

    def cert_files(self, site: str) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) of ``site``."""
        return (
            self.pki / "ca" / "ca.pem",
            self.pki / "certs" / f"{site}.pem",
            self.pki / "certs" / f"{site}-key.pem",
        )

    def tls(self, site: str) -> TlsFiles:
        ca, cert, key = self.cert_files(site)
        return TlsFiles(ca=ca, cert=cert, key=key)

    def key(self, site: str) -> ec.EllipticCurvePrivateKey:
        """``site``'s private key, which signs its messages."""
        key = serialization.load_pem_private_key(self.tls(site).key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def signed(self, site: str, msg: Message, msg_id: str | None = None) -> bytes:
        """``msg`` in an envelope from ``site``, signed with its key, sent now."""
        return encode_envelope(msg, site=site, key=self.key(site), now=time.time(), msg_id=msg_id)


@contextlib.contextmanager
def site_databases(
    request: pytest.FixtureRequest, sites: Sequence[str], prefix: str = ""
) -> Iterator[dict[str, str] | None]:
    """Per site, a new PostgreSQL database (dropped afterwards) when the fixture's param
    is ``postgres`` (:data:`BACKENDS`); None on SQLite (each site has its own file)."""
    if request.param != "postgres":
        yield None
        return
    new_db = request.getfixturevalue("empty_pg_database")
    with contextlib.ExitStack() as stack:
        yield {
            site: stack.enter_context(new_db(f"{prefix}{site.replace('-', '_')}")) for site in sites
        }


@contextlib.contextmanager
def running(
    fed: Federation,
    servers: Sequence[RenderServer],
    adverts: Sequence[tuple[str, str]],
    *,
    sites: Sequence[str] | None = None,
) -> Iterator[Federation]:
    """``fed``'s agents (or only ``sites``) and ``servers`` started; stopped afterwards.

    Returns once every server is online at its site and, for each ``(site, peer)`` in
    ``adverts``, ``site`` sees ``peer`` up with all of ``peer``'s servers in its advert.
    """
    started: list[Process] = []
    try:
        for site in sites or list(fed.agents):
            fed[site].start()
            started.append(fed[site])
        for server in servers:
            started.append(
                fed[server.site].render_server(
                    server.name, slots=server.slots, tags=server.tags, packages=server.packages
                )
            )
        for site, count in Counter(s.site for s in servers).items():
            fed[site].wait_servers(count)
        for site, peer in adverts:
            packages = Counter(s.packages for s in servers if s.site == peer)
            wait_advertised(fed[site], peer, packages=packages)
        yield fed
    finally:
        for proc in reversed(started):
            proc.stop()


def pair_servers(facility_servers: Mapping[str, str]) -> list[RenderServer]:
    """The studio's one built-in server ``studio-rs``, and the facility's (name -> packages)."""
    return [
        RenderServer("studio", "studio-rs", "builtin"),
        *(RenderServer("facility", name, pkgs) for name, pkgs in facility_servers.items()),
    ]


@contextlib.contextmanager
def running_pair(
    root: Path,
    facility_servers: Mapping[str, str],
    *,
    databases: Mapping[str, str] | None = None,
    lease: float = 60,
    overflow_after: float | None = None,
) -> Iterator[Federation]:
    """A studio and a facility (:data:`PAIR`) started with :func:`pair_servers`, until the
    studio sees the facility's servers advertised; ``overflow_after`` is the studio's."""
    fed = Federation(
        root,
        PAIR,
        databases=databases,
        lease=lease,
        overflow_after=None if overflow_after is None else {"studio": overflow_after},
    )
    with running(fed, pair_servers(facility_servers), [("studio", "facility")]):
        yield fed


def peer_servers(agent: Agent, peer: str) -> list[dict[str, Any]] | None:
    """The online servers ``peer`` last advertised to ``agent``; None while it is not up."""
    for entry in agent.get("/api/v1/peers")["peers"]:
        if entry["name"] == peer and entry["state"] == "up":
            return [s for s in entry["servers"] if s["status"] in ("idle", "busy")]
    return None


def wait_advertised(
    agent: Agent,
    peer: str,
    servers: int = 1,
    timeout: float = 30,
    *,
    packages: Mapping[str, int] | None = None,
) -> None:
    """Wait until ``agent`` sees ``peer`` up with at least ``servers`` online servers, and
    at least ``packages[p]`` of them with package ``p``."""

    def enough() -> bool:
        seen = peer_servers(agent, peer)
        return (
            seen is not None
            and len(seen) >= servers
            and all(
                sum(package in s["packages"] for s in seen) >= n
                for package, n in (packages or {}).items()
            )
        )

    wait_for(enough, timeout, f"{agent.name} to see {servers} servers advertised by {peer}")


async def fed_request(
    url: str,
    ssl_ctx: ssl.SSLContext,
    *,
    server_hostname: str | None,
    method: str = "POST",
    data: Any = b"",
    headers: Mapping[str, str] = ENVELOPE,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """One request to a federation listener on a fresh connection: (status, body)."""
    connector = aiohttp.TCPConnector(force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(
                method,
                url,
                data=data,
                headers=dict(headers),
                ssl=ssl_ctx,
                server_hostname=server_hostname,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp,
        ):
            return resp.status, await resp.read()
    finally:
        await asyncio.sleep(0.1)  # let the TLS transport finish closing before the loop ends


def sample_offer(
    key: str, *, sha256: str, size: int, path: tuple[str, ...] = (), name: str = "sample"
) -> Offer:
    """An offer of a one-frame POV-Ray job whose only asset is ``scene.pov``."""
    origin_job_id = key.split(":")[1]
    spec = JobSpec(
        name=name,
        owner="t",
        priority=50,
        profile={"package": "povray"},
        frames="1",
        chunk_size=1,
        scene="scene.pov",
        output_name=name,
    )
    return Offer(
        key=key,
        origin_job_id=origin_job_id,
        epoch=1,
        job=spec,
        manifest=(FileEntry(path="scene.pov", sha256=sha256, size=size),),
        path=path,
    )


def split_with_frozen_facility(
    fed: Federation, started: list[Process], scene: Path, frames: int
) -> tuple[Process, Process, str]:
    """Both sites started (added to ``started``) with one built-in render server each, the
    facility's frozen (SIGSTOP: still connected, so still advertised, but what the facility
    accepts is never rendered there), and a split job of ``frames`` frames in chunks of 2
    submitted at the studio. Returns the studio's server, the frozen one (not in
    ``started``) and the job id."""
    studio, facility = fed["studio"], fed["facility"]
    for site in ("studio", "facility"):
        fed[site].start()
        started.append(fed[site])
    studio_rs = studio.render_server("studio-rs", packages="builtin")
    started.append(studio_rs)
    frozen = facility.render_server("fac-rs", packages="builtin", slots=2)
    studio.wait_servers(1)
    facility.wait_servers(1)
    wait_advertised(studio, "facility", 1)
    assert frozen.proc is not None
    os.killpg(frozen.proc.pid, signal.SIGSTOP)
    spec = ("--frames", f"1-{frames}", "--chunk", "2", "--split", "--json")
    result = studio.cli("submit", str(scene), "--package", "builtin", *spec)
    return studio_rs, frozen, str(json.loads(result.stdout)["job"]["id"])
