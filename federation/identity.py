"""Peer identity: which site a verified TLS certificate proves, checked the same way
on incoming and outgoing federation calls.

A certificate proves a site name when its common name is that name *and* the
name is one of its DNS subject alternative names (every site certificate carries
both, see :func:`federation.certs.issue_site_cert`); a certificate whose CN and
SANs disagree proves nothing. An incoming client must prove a configured peer's
name (``federation.api_auth.authenticate``); an outgoing call completes its handshake
only with the site it dialled (:class:`SiteCheckingSSLObject`, installed by
``TlsContexts.request_options``). So a certificate that merely lists another
site's name among its host names cannot stand in for that site.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from federation.errors import FederationError, InvalidSiteNameError, PeerIdentityError

__all__ = [
    "SITE_NAME_RE",
    "CertificateNames",
    "CertificateNamesError",
    "SiteCheckingSSLObject",
    "certificate_names",
    "names_of",
    "peer_certificate",
    "peer_name",
    "validate_site_name",
    "verify_peer",
]

SITE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def validate_site_name(site: str) -> str:
    """Return ``site`` unchanged, or raise :class:`InvalidSiteNameError`."""
    if not isinstance(site, str) or SITE_NAME_RE.fullmatch(site) is None:
        raise InvalidSiteNameError(str(site))
    return site


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


def names_of(cert: x509.Certificate) -> CertificateNames:
    """The names in a certificate read from its file (not from a connection)."""
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
