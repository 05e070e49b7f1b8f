"""Mutual TLS between two sites over real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from federation.certs import (
    TlsContexts,
    TlsFiles,
    init_ca,
    issue_site_cert,
    load_certificate,
    peer_certificate,
    peer_name,
    verify_peer,
)
from federation.errors import PeerIdentityError, TlsFilesError


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    ca_dir: Path
    certs: Path

    def files(self, site: str) -> TlsFiles:
        return TlsFiles(
            ca=self.ca_dir / "ca.pem",
            cert=self.certs / f"{site}.pem",
            key=self.certs / f"{site}-key.pem",
        )

    def serial(self, site: str) -> int:
        return load_certificate(self.certs / f"{site}.pem").serial_number


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    init_ca(tmp_path / "ca")
    for site in ("studio", "facility"):
        issue_site_cert(tmp_path / "ca", site, tmp_path / "certs")
    return Pki(ca_dir=tmp_path / "ca", certs=tmp_path / "certs")


async def whoami(request: web.Request) -> web.Response:
    """Answers with the verified client certificate's name and serial."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    cert = peer_certificate(ssl_object)
    return web.json_response(
        {"peer": peer_name(ssl_object), "serial": cert.serial_number if cert else None}
    )


@pytest.fixture
async def facility(pki: Pki) -> AsyncIterator[str]:
    """The 'facility' site's federation listener; yields its base URL."""
    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(
        runner, "127.0.0.1", 0, ssl_context=TlsContexts(pki.files("facility")).server_context()
    )
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"https://{host}:{port}"
    finally:
        await runner.cleanup()


async def call(url: str, **options: object) -> dict:
    """GET /whoami over aiohttp on a fresh connection."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}/whoami", timeout=aiohttp.ClientTimeout(total=10), **options) as resp,
    ):
        resp.raise_for_status()
        return await resp.json()


async def handshake(url: str, ctx: ssl.SSLContext, *, expect: str = "facility") -> int:
    """TLS handshake over asyncio streams; verifies the peer name, returns its serial."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), ssl=ctx), 10)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        verify_peer(ssl_object, expect)
        cert = peer_certificate(ssl_object)
        assert cert is not None
        return cert.serial_number
    finally:
        writer.close()
        await writer.wait_closed()


async def test_mutual_tls_identifies_both_sites(pki: Pki, facility: str) -> None:
    studio = TlsContexts(pki.files("studio"))

    answer = await call(facility, **studio.request_options("facility"))

    assert answer == {"peer": "studio", "serial": pki.serial("studio")}
    assert await handshake(facility, studio.client_context()) == pki.serial("facility")


async def test_request_options_refuse_a_peer_with_another_name(pki: Pki, facility: str) -> None:
    studio = TlsContexts(pki.files("studio"))
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await call(facility, **studio.request_options("render-farm"))


async def test_verify_peer_rejects_a_peer_with_another_name(pki: Pki, facility: str) -> None:
    ctx = TlsContexts(pki.files("studio")).client_context()
    with pytest.raises(PeerIdentityError, match="certificate names 'facility' but the peer is"):
        await handshake(facility, ctx, expect="render-farm")


def test_verify_peer_without_a_certificate() -> None:
    with pytest.raises(PeerIdentityError, match="presented no verified certificate"):
        verify_peer(None, "facility")


async def test_client_certificate_from_another_ca_is_refused(
    pki: Pki, facility: str, tmp_path: Path
) -> None:
    init_ca(tmp_path / "rogue-ca")
    issue_site_cert(tmp_path / "rogue-ca", "studio", tmp_path / "rogue")
    rogue = TlsContexts(
        TlsFiles(
            ca=pki.ca_dir / "ca.pem",  # trusts the real CA, but its own cert is foreign
            cert=tmp_path / "rogue" / "studio.pem",
            key=tmp_path / "rogue" / "studio-key.pem",
        )
    )
    with pytest.raises(aiohttp.ClientError):
        await call(facility, **rogue.request_options("facility"))


async def test_client_without_certificate_is_refused(pki: Pki, facility: str) -> None:
    with pytest.raises(aiohttp.ClientError):
        await call(facility, ssl=_no_cert_context(pki))


async def test_server_from_another_ca_is_refused_by_the_client(
    pki: Pki, facility: str, tmp_path: Path
) -> None:
    init_ca(tmp_path / "other-ca")
    studio = pki.files("studio")
    other = TlsContexts(
        TlsFiles(ca=tmp_path / "other-ca" / "ca.pem", cert=studio.cert, key=studio.key)
    )
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await call(facility, **other.request_options("facility"))


async def test_server_certificate_rotation_needs_no_restart(pki: Pki, facility: str) -> None:
    studio = TlsContexts(pki.files("studio"))
    before = await handshake(facility, studio.client_context())

    issue_site_cert(pki.ca_dir, "facility", pki.certs)  # new key and serial, same files

    after = await handshake(facility, studio.client_context())
    assert after != before
    assert after == pki.serial("facility")
    assert await call(facility, **studio.request_options("facility")) == {
        "peer": "studio",
        "serial": pki.serial("studio"),
    }
    # The swapped-in context still demands client certificates.
    with pytest.raises(aiohttp.ClientError):
        await call(facility, ssl=_no_cert_context(pki))


async def test_client_certificate_rotation_rebuilds_the_client_context(
    pki: Pki, facility: str
) -> None:
    studio = TlsContexts(pki.files("studio"))
    first = studio.named_client_context()
    assert studio.named_client_context() is first  # cached while the files are unchanged
    old_serial = pki.serial("studio")

    issue_site_cert(pki.ca_dir, "studio", pki.certs)

    assert studio.named_client_context() is not first
    answer = await call(facility, **studio.request_options("facility"))
    assert answer == {"peer": "studio", "serial": pki.serial("studio")}
    assert answer["serial"] != old_serial


def test_half_rotated_files_keep_the_previous_context(pki: Pki, tmp_path: Path) -> None:
    contexts = TlsContexts(pki.files("studio"))
    before = contexts.client_context()
    # A key that does not match the certificate, as between writing key and cert.
    issue_site_cert(pki.ca_dir, "other", tmp_path / "spare")
    pki.files("studio").key.write_bytes((tmp_path / "spare" / "other-key.pem").read_bytes())

    assert contexts.client_context() is before


def test_missing_files_are_reported_at_construction(pki: Pki, tmp_path: Path) -> None:
    files = TlsFiles(ca=pki.ca_dir / "ca.pem", cert=tmp_path / "nope.pem", key=tmp_path / "k")
    with pytest.raises(TlsFilesError, match="nope.pem.*spillway certs issue"):
        TlsContexts(files)


def _no_cert_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=pki.ca_dir / "ca.pem")
    return ctx
