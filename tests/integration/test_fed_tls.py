"""Mutual TLS between two sites over real aiohttp servers on 127.0.0.1.

Includes the impersonation probe: a certificate must prove the peer's site name
by its CN and a DNS SAN alike, checked the same way on outgoing and incoming calls.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.api import FederationEndpoints, build_federation_app
from federation.certs import (
    CertificateNames,
    TlsContexts,
    TlsFiles,
    init_ca,
    issue_site_cert,
    load_certificate,
    peer_certificate,
    peer_name,
    verify_peer,
)
from federation.client import PeerCertificateError, PeerClient
from federation.errors import PeerIdentityError, TlsFilesError
from federation.peers import FederationConfig, PeerConfig
from federation.protocol import Ack


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


# --- impersonation: a certificate must prove the peer's name by CN and SAN ----------


def forge(pki: Pki, name: str, *, common_name: str, dns: list[str]) -> TlsFiles:
    """A certificate signed by the federation CA with exactly these names.

    ``certs issue`` refuses to make these now; they stand for certificates issued
    before it did, or by hand with the CA key.
    """
    ca_cert = load_certificate(pki.ca_dir / "ca.pem")
    ca_key = serialization.load_pem_private_key(
        (pki.ca_dir / "ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = pki.certs.parent / "forged"
    out.mkdir(exist_ok=True)
    (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(ca=pki.ca_dir / "ca.pem", cert=out / f"{name}.pem", key=out / f"{name}-key.pem")


@dataclass
class Listener:
    url: str
    requests: list[str]


@pytest.fixture
async def rival(pki: Pki) -> AsyncIterator[Listener]:
    """Site rival2, whose certificate also lists 'facility' as a host name (the probe's
    ``certs issue rival2 --host facility``), listening where the studio was told the
    facility is. It records every request that reaches it."""
    files = forge(pki, "rival2", common_name="rival2", dns=["rival2", "facility"])
    requests: list[str] = []

    async def record(request: web.Request) -> web.Response:
        requests.append(f"{request.method} {request.path} {len(await request.read())} bytes")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=TlsContexts(files).server_context())
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Listener(url=f"https://{host}:{port}", requests=requests)
    finally:
        await runner.cleanup()


async def test_outgoing_calls_refuse_a_site_posing_as_the_peer(
    pki: Pki, rival: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """The facility's URL points at rival2: nothing is sent, and the log says why."""
    client = PeerClient("studio", TlsContexts(pki.files("studio")))
    facility = PeerConfig(name="facility", url=rival.url)
    blob = pki.certs.parent / "blob.bin"
    blob.write_bytes(b"scene bytes" * 1000)
    try:
        with caplog.at_level(logging.ERROR, logger="federation.client"):
            with pytest.raises(PeerCertificateError, match="does not prove site facility"):
                await client.post_raw(facility, "/fed/v1/offer", b"signed offer", Ack)
            with pytest.raises(PeerCertificateError):
                await client.get_json(facility, "/fed/v1/jobs/j1")
            with pytest.raises(PeerCertificateError):
                await client.download(facility, "/fed/v1/jobs/j1/frames/1", _Discard())
            with pytest.raises(PeerCertificateError):
                await client.upload_blob(
                    facility, hashlib.sha256(blob.read_bytes()).hexdigest(), blob
                )
    finally:
        await client.close()

    assert rival.requests == [], "rival2 must receive nothing meant for the facility"
    assert "its certificate does not prove site facility" in caplog.text
    assert "certificate names 'rival2'" in caplog.text
    # The real rival2 is still reachable under its own name.
    assert await call(rival.url, **TlsContexts(pki.files("studio")).request_options("rival2"))


async def test_request_options_check_the_common_name_not_only_the_san(
    pki: Pki, rival: Listener
) -> None:
    studio = TlsContexts(pki.files("studio"))
    with pytest.raises(aiohttp.ClientConnectorCertificateError, match="names 'rival2'"):
        await call(rival.url, **studio.request_options("facility"))
    assert rival.requests == []


class _Discard:
    size = 0

    def write(self, block: bytes | memoryview) -> None:
        self.size += len(block)


class _Status:
    """The one Acceptance method the status route calls."""

    async def status(self, peer: PeerConfig, job_id: str) -> dict[str, str]:
        return {"job": job_id, "asked_by": peer.name}


@pytest.fixture
async def studio_api(pki: Pki, tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """The studio's real federation app (facility and rival2 unconfigured: only facility)."""
    refused: list[str] = []
    config = FederationConfig(
        tls=pki.files("studio"),
        peers=(PeerConfig(name="facility", url="https://127.0.0.1:1"),),
        listen="127.0.0.1:0",
        overflow_after_s=None,
    )
    blobs = SimpleNamespace(max_blob_bytes=1 << 20, partial_dir=tmp_path / "partial")
    endpoints = FederationEndpoints(
        name="studio",
        config=config,
        seen=None,  # type: ignore[arg-type]
        acceptance=_Status(),  # type: ignore[arg-type]
        results=None,  # type: ignore[arg-type]
        controls=None,  # type: ignore[arg-type]
        book=None,  # type: ignore[arg-type]
        blobs=blobs,  # type: ignore[arg-type]
        refused=refused.append,
    )
    runner = web.AppRunner(build_federation_app(endpoints))
    await runner.setup()
    ctx = TlsContexts(pki.files("studio")).server_context()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"https://{host}:{port}", refused
    finally:
        await runner.cleanup()


async def _status_as(url: str, files: TlsFiles) -> tuple[int, dict]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=files.ca)
    ctx.load_cert_chain(certfile=files.cert, keyfile=files.key)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(f"{url}/fed/v1/jobs/j1", ssl=ctx, timeout=aiohttp.ClientTimeout(10)) as resp,
    ):
        return resp.status, await resp.json()


async def test_incoming_calls_need_the_peer_name_as_cn_and_san(
    pki: Pki, studio_api: tuple[str, list[str]]
) -> None:
    url, refused = studio_api
    assert await _status_as(url, pki.files("facility")) == (
        200,
        {"job": "j1", "asked_by": "facility"},
    )

    # CN says facility, the SANs say rival2: an outgoing call to rival2 would have
    # accepted it, so an incoming one must not take it for the facility.
    status, body = await _status_as(
        url, forge(pki, "split", common_name="facility", dns=["rival2"])
    )
    assert status == 403, body
    assert "is not among its DNS names (rival2)" in body["error"]["message"]
    assert any("'facility' is not among its DNS names" in r for r in refused), refused

    # rival2's certificate listing facility as a host is rival2, not the facility.
    status, body = await _status_as(
        url, forge(pki, "rival2", common_name="rival2", dns=["rival2", "facility"])
    )
    assert status == 403 and "'rival2' is not a configured peer" in body["error"]["message"]
    assert any("unconfigured site 'rival2'" in r for r in refused), refused


def test_peer_name_is_the_cn_only_when_a_san_repeats_it() -> None:
    assert CertificateNames("facility", ("facility", "fac.example")).site == "facility"
    assert CertificateNames("facility", ("rival2",)).site is None
    assert CertificateNames(None, ("facility",)).site is None
