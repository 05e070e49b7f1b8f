"""Federation TLS material: the CA, site certificates and TLS contexts.

Sites talk HTTPS with mutual TLS under one federation CA. A peer is identified
by the site name its verified certificate proves, never by the host name it was
reached at: sites sit behind NAT, load balancers and changing addresses, while
the site name is what the configuration and every federation message refer to.
A certificate proves a site name when its common name is that name *and* the
name is one of its DNS subject alternative names (every site certificate carries
both, see :func:`issue_site_cert`); a certificate whose CN and SANs disagree
proves nothing. The check is the same in both directions
(:attr:`CertificateNames.site`): an incoming client must prove a configured
peer's name, an outgoing call completes its handshake only with the site it
dialled (:meth:`TlsContexts.request_options`), so a certificate that merely lists
another site's name among its host names (``--host facility`` on rival2's
certificate) cannot stand in for that site. Trust is anchored: only
certificates issued by the federation CA verify, and nothing else (no system CA
store) is trusted. ``certs issue`` also refuses such a host in the first place.

Certificates are re-read when their files change, so a site's certificate can
be rotated (or the CA bundle extended) without restarting the agent.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.errors import (
    CaExistsError,
    CaMissingError,
    FederationError,
    InvalidSiteNameError,
    PeerIdentityError,
    TlsFilesError,
)

__all__ = [
    "CaPaths",
    "CertificateNames",
    "CertificateNamesError",
    "HostIsSiteNameError",
    "SitePaths",
    "SiteCheckingSSLObject",
    "TlsContexts",
    "TlsFiles",
    "init_ca",
    "certificate_names",
    "issue_site_cert",
    "issued_sites",
    "load_certificate",
    "peer_certificate",
    "peer_name",
    "validate_site_name",
    "verify_peer",
]

log = logging.getLogger(__name__)

SITE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"
ISSUED_NAME = "issued-sites.json"
"""In the CA directory: each site issued a certificate, with its host names."""


class HostIsSiteNameError(FederationError, ValueError):
    """A host name for a site certificate is another site's name (or the reverse)."""

    def __init__(self, *, site: str, host: str, holder: str) -> None:
        self.site = site
        self.host = host
        if holder == site:
            problem = (
                f"--host {host} is the name of site {host}; a certificate for {site} must "
                f"not carry another site's name (peers would accept {site} where {host} "
                f"is meant); reach {site} by its own host names"
            )
        else:
            problem = (
                f"site name {site} is already a host name in the certificate of site "
                f"{holder}; issue {holder}'s certificate again without --host {site} first"
            )
        super().__init__(f"refusing to issue a certificate for {site}: {problem}")


class CertificateNamesError(PeerIdentityError):
    """A verified certificate's common name is not among its DNS names, so it proves no site."""

    def __init__(self, *, expected: str, common_name: str | None, dns_names: Sequence[str]) -> None:
        self.expected = expected
        self.actual = common_name
        listed = ", ".join(dns_names) or "none"
        FederationError.__init__(
            self,
            f"certificate's common name {common_name!r} is not among its DNS names ({listed}), "
            "so it proves no site name"
            + (f" (the peer is configured as {expected!r})" if expected else "")
            + "; issue the site's certificate again with `spillway certs issue`",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CaPaths:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class SitePaths:
    site: str
    cert: Path
    key: Path
    ca: Path
    """The CA certificate that issued ``cert`` (not copied; peers need the same file)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def validate_site_name(site: str) -> str:
    """Return ``site`` unchanged, or raise :class:`InvalidSiteNameError`."""
    if not isinstance(site, str) or SITE_NAME_RE.fullmatch(site) is None:
        raise InvalidSiteNameError(str(site))
    return site


# --- issuing --------------------------------------------------------------------


def init_ca(
    directory: Path,
    *,
    common_name: str = "Spillway Federation CA",
    days: int = 3650,
    force: bool = False,
) -> CaPaths:
    """Create a federation CA (``ca.pem``, ``ca-key.pem`` with mode 0600) in ``directory``.

    Refuses to overwrite an existing CA unless ``force`` is true.
    """
    paths = CaPaths(cert=directory / CA_CERT_NAME, key=directory / CA_KEY_NAME)
    if not force and (paths.cert.exists() or paths.key.exists()):
        raise CaExistsError(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(paths.key, key)
    _write_atomic(paths.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("created federation CA %r in %s", common_name, directory)
    return paths


def issue_site_cert(
    ca_dir: Path,
    site: str,
    out_dir: Path,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    days: int = 825,
) -> SitePaths:
    """Issue ``<site>.pem`` and ``<site>-key.pem`` in ``out_dir``, signed by the CA in ``ca_dir``.

    The certificate's CN is the site name; its SANs are the site name plus each of
    ``hosts`` (IP addresses become IPAddress SANs); it is valid for both server and
    client authentication. Existing files are replaced atomically, which is how a
    certificate is rotated.
    """
    validate_site_name(site)
    ca_cert, ca_key = _load_ca(ca_dir)
    issued = issued_sites(ca_dir)
    _check_hosts(site, hosts, issued)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, site)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_san_entries(site, hosts)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = SitePaths(
        site=site,
        cert=out_dir / f"{site}.pem",
        key=out_dir / f"{site}-key.pem",
        ca=ca_dir / CA_CERT_NAME,
    )
    # Key first: a reader that sees the new certificate must find the matching key.
    # TlsContexts tolerates the short window where only the key is new.
    _write_key(paths.key, key)
    _write_atomic(paths.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    issued[site] = tuple(_dns_names(_san_entries(site, hosts)))
    _write_issued(ca_dir, issued)
    log.info("issued certificate for site %s (serial %x) in %s", site, cert.serial_number, out_dir)
    return paths


def issued_sites(ca_dir: Path) -> dict[str, tuple[str, ...]]:
    """Sites the CA in ``ca_dir`` issued certificates for, each with its DNS names.

    Read from the CA's record (``issued-sites.json``), completed by the site
    certificates found in ``ca_dir`` and its sub-folders (where ``certs issue``
    puts them by default), so a CA made before the record existed is covered too.
    """
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted({*ca_dir.glob("*.pem"), *ca_dir.glob("*/*.pem")}):
        if path.name == CA_CERT_NAME or path.name.endswith("-key.pem"):
            continue
        try:
            names = _names_of(x509.load_pem_x509_certificate(path.read_bytes()))
        except (OSError, ValueError):
            continue
        if names.site is not None and names.site == path.stem:
            found[names.site] = names.dns_names
    try:
        recorded = json.loads((ca_dir / ISSUED_NAME).read_text())
    except FileNotFoundError:
        recorded = {}
    except (OSError, ValueError) as exc:
        raise TlsFilesError(ca_dir / ISSUED_NAME, f"not a readable record ({exc})") from exc
    for name, hosts in dict(recorded.get("sites", {})).items():
        found[str(name)] = tuple(str(h) for h in hosts)  # the record has the latest issue
    return found


def _check_hosts(site: str, hosts: Sequence[str], issued: dict[str, tuple[str, ...]]) -> None:
    """Refuse a host that is another issued site's name, and a site name that is
    already a host name of another site's certificate."""
    for host in hosts:
        name = host.lower().rstrip(".")
        if name != site and name in issued:
            raise HostIsSiteNameError(site=site, host=host, holder=site)
    for holder, names in sorted(issued.items()):
        if holder != site and site in {n.lower().rstrip(".") for n in names}:
            raise HostIsSiteNameError(site=site, host=site, holder=holder)


def _write_issued(ca_dir: Path, issued: dict[str, tuple[str, ...]]) -> None:
    record = {"sites": {name: list(hosts) for name, hosts in sorted(issued.items())}}
    _write_atomic(ca_dir / ISSUED_NAME, json.dumps(record, indent=2).encode() + b"\n", mode=0o644)


def _dns_names(entries: Sequence[x509.GeneralName]) -> list[str]:
    return [e.value for e in entries if isinstance(e, x509.DNSName)]


def load_certificate(path: Path) -> x509.Certificate:
    """Read one PEM certificate, raising :class:`TlsFilesError` when that is impossible."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise TlsFilesError(path, exc.strerror or str(exc)) from exc
    except ValueError as exc:
        raise TlsFilesError(path, f"not a PEM certificate ({exc})") from exc


def _san_entries(site: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = [x509.DNSName(site)]
    for host in hosts:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in entries:
            entries.append(entry)
    return entries


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = ca_dir / CA_CERT_NAME, ca_dir / CA_KEY_NAME
    if not cert_path.is_file() or not key_path.is_file():
        raise CaMissingError(ca_dir)
    cert = load_certificate(cert_path)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsFilesError(key_path, f"not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsFilesError(key_path, "the CA key is not an EC key")
    return cert, key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(path, data, mode=0o600)


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write via a temp file and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask; 0600 must be exact
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --- TLS contexts ---------------------------------------------------------------

_Stamp = tuple[tuple[int, int, int, int], ...]
_KINDS = ("server", "client", "named-client")


class TlsContexts:
    """Server and client :class:`ssl.SSLContext` objects that follow file rotation.

    Server: pass :meth:`server_context` to ``web.TCPSite(ssl_context=...)``. Its
    ``sni_callback`` runs at the start of every handshake and swaps in a context
    rebuilt from the files whenever one of them changed (inode, size or mtime),
    so new connections present the new certificate without a restart. Handlers
    then call :func:`verify_peer` on ``request.transport.get_extra_info("ssl_object")``.

    Client: contexts verify the server against the federation CA only and present
    this site's certificate; they are cached and rebuilt when the files changed,
    so fetch one per request rather than keeping it.

    - :meth:`client_context` has ``check_hostname`` off, because peers are
      authenticated by certificate name, not by the address they were reached
      at: the caller checks the name with :func:`verify_peer` on the connection's
      ``ssl_object``. Use it where you hold that object (asyncio streams).
    - aiohttp releases a connection as soon as a small body is read, so a caller
      often cannot reach the ``ssl_object``. For aiohttp use
      :meth:`request_options` (``session.post(url, **tls.request_options(peer))``):
      it pins the TLS server name to the peer's site name; during the handshake
      OpenSSL checks that the certificate carries it as a DNS SAN and
      :class:`SiteCheckingSSLObject` that it is also the CN, so a certificate of
      another site that lists the name among its hosts is refused before any
      request is sent (``aiohttp.ClientConnectorCertificateError``).

    If the files are mid-rotation and do not fit together, the previous context
    keeps being used (and the failure is logged) until they do.
    """

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        stamp = self._stamp()
        self._cache: dict[str, tuple[_Stamp, ssl.SSLContext]] = {
            kind: (stamp, self._build(kind)) for kind in _KINDS
        }
        # The listening context only carries the callback; it is also a valid
        # context in its own right (same files), so a handshake never lacks one.
        self._listener = self._build("server")
        self._listener.sni_callback = self._on_client_hello

    def server_context(self) -> ssl.SSLContext:
        """The context to listen with; it refreshes certificates per handshake."""
        return self._listener

    def client_context(self) -> ssl.SSLContext:
        """Outgoing context without host name checks; pair it with :func:`verify_peer`."""
        return self._current("client")

    def named_client_context(self) -> ssl.SSLContext:
        """Outgoing context that checks the server name; connect with ``server_hostname=<site>``."""
        return self._current("named-client")

    def request_options(self, peer: str) -> dict[str, Any]:
        """aiohttp request keyword arguments that authenticate the server as site ``peer``."""
        return {"ssl": self.named_client_context(), "server_hostname": validate_site_name(peer)}

    def current_server_context(self) -> ssl.SSLContext:
        """The context new incoming handshakes use, rebuilt when the files changed."""
        return self._current("server")

    def _on_client_hello(
        self, ssl_object: ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        try:
            ssl_object.context = self.current_server_context()
        except Exception:  # an exception here would only abort the handshake obscurely
            log.exception("could not refresh the federation server TLS context")

    def _current(self, kind: str) -> ssl.SSLContext:
        stamp, ctx = self._cache[kind]
        try:
            current = self._stamp()
            if current == stamp:
                return ctx
            fresh = self._build(kind)
        except TlsFilesError as exc:
            # Typically a rotation caught between writing the key and the cert.
            log.warning("keeping the previous %s TLS context: %s", kind, exc)
            return ctx
        log.info("reloaded federation TLS files for %s contexts (%s)", kind, self.files.cert)
        self._cache[kind] = (current, fresh)
        return fresh

    def _stamp(self) -> _Stamp:
        stamps = []
        for path in (self.files.ca, self.files.cert, self.files.key):
            try:
                st = path.stat()
            except OSError as exc:
                raise TlsFilesError(path, exc.strerror or str(exc)) from exc
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(stamps)

    def _build(self, kind: str) -> ssl.SSLContext:
        server = kind == "server"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = kind == "named-client"
        if kind == "named-client":
            ctx.sslobject_class = SiteCheckingSSLObject
        ctx.verify_mode = ssl.CERT_REQUIRED
        # No session resumption: a resumed session would skip certificate checks
        # against rotated files, and federation connections are few and long-lived.
        ctx.options |= ssl.OP_NO_TICKET
        if server:
            ctx.num_tickets = 0
        try:
            ctx.load_verify_locations(cafile=self.files.ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFilesError(self.files.ca, str(exc)) from exc
        try:
            ctx.load_cert_chain(certfile=self.files.cert, keyfile=self.files.key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFilesError(
                self.files.cert, f"cannot load it with key {self.files.key} ({exc})"
            ) from exc
        return ctx


# --- peer identity --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateNames:
    """The names in a verified certificate: its common name and its DNS SANs."""

    common_name: str | None
    dns_names: tuple[str, ...]

    @property
    def site(self) -> str | None:
        """The site name the certificate proves: its CN, when that is also one of its
        DNS names; None when they disagree (such a certificate proves no site)."""
        cn = self.common_name
        return cn if cn is not None and cn in self.dns_names else None


def _names_of(cert: x509.Certificate) -> CertificateNames:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = ()
    cn = cns[0].value if cns else None
    return CertificateNames(common_name=cn if isinstance(cn, str) else None, dns_names=dns)


def certificate_names(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> CertificateNames | None:
    """The names in the peer's *verified* certificate, or None if there is none."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()  # empty unless the chain verified
    if not cert:
        return None
    common_name: str | None = None
    for rdn in cert.get("subject", ()):
        for attribute in rdn:
            if attribute[0] == "commonName" and common_name is None:
                common_name = str(attribute[1])
    dns = tuple(str(entry[1]) for entry in cert.get("subjectAltName", ()) if entry[0] == "DNS")
    return CertificateNames(common_name=common_name, dns_names=dns)


def peer_name(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The site name the peer's verified certificate proves (:attr:`CertificateNames.site`),
    or None when there is no verified certificate or it proves no site."""
    names = certificate_names(ssl_object)
    return names.site if names is not None else None


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Certificate | None:
    """The peer's verified certificate, for checking message signatures."""
    if ssl_object is None or not ssl_object.getpeercert():
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def verify_peer(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, expected: str) -> None:
    """Raise :class:`PeerIdentityError` unless the verified peer certificate proves ``expected``.

    :class:`CertificateNamesError` (a subclass) when its CN and DNS names disagree.
    """
    names = certificate_names(ssl_object)
    if names is None:
        raise PeerIdentityError(expected=expected, actual=None)
    if names.site is None:
        raise CertificateNamesError(
            expected=expected, common_name=names.common_name, dns_names=names.dns_names
        )
    if names.site != expected:
        raise PeerIdentityError(expected=expected, actual=names.site)


class SiteCheckingSSLObject(ssl.SSLObject):
    """A client-side TLS object whose handshake completes only with the dialled site.

    OpenSSL's host name check (``check_hostname``) only finds the name among the
    DNS SANs; this adds, before any request byte is sent, the rest of the check
    the listening side makes (:func:`verify_peer`: the CN is that name too). The
    name to check is the ``server_hostname`` the connection was opened with.
    """

    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake is done
        expected = self.server_hostname
        try:
            verify_peer(self, expected or "")
        except PeerIdentityError as exc:
            # asyncio fails the connection on an SSLError raised from the handshake.
            raise ssl.SSLCertVerificationError(str(exc)) from exc
