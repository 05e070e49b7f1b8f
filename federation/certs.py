"""Federation TLS material: the CA and site certificates.

The TLS contexts (:mod:`federation.tls`) and peer identity
(:mod:`federation.identity`) are re-exported here for callers that load all of
the TLS material from one place.

Sites talk HTTPS with mutual TLS under one federation CA. A peer is identified
by the site name its verified certificate proves (CN and a DNS SAN alike, see
:mod:`federation.identity`), never by the host name it was reached at: sites sit
behind NAT, load balancers and changing addresses, while the site name is what
the configuration and every federation message refer to. Trust is anchored:
only certificates issued by the federation CA verify, and nothing else (no
system CA store) is trusted. The CA keeps a record of the sites it issued, so a
certificate never carries another site's name as a host (:func:`issue_site_cert`).

Certificates are re-read when their files change, so a site's certificate can
be rotated (or the CA bundle extended) without restarting the agent.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.errors import (
    CaExistsError,
    CaMissingError,
    FederationError,
    TlsFilesError,
)
from federation.identity import (
    SITE_NAME_RE,
    CertificateNames,
    CertificateNamesError,
    SiteCheckingSSLObject,
    certificate_names,
    names_of,
    peer_certificate,
    peer_name,
    validate_site_name,
    verify_peer,
)
from federation.tls import TlsContexts, TlsFiles

__all__ = [
    "SITE_NAME_RE",
    "CaPaths",
    "CertificateNames",
    "CertificateNamesError",
    "HostIsSiteNameError",
    "SitePaths",
    "SiteCheckingSSLObject",
    "TlsContexts",
    "TlsFiles",
    "certificate_names",
    "init_ca",
    "issue_site_cert",
    "issued_sites",
    "load_certificate",
    "peer_certificate",
    "peer_name",
    "validate_site_name",
    "verify_peer",
]

log = logging.getLogger(__name__)

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
            names = names_of(x509.load_pem_x509_certificate(path.read_bytes()))
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
