"""Errors raised by the :mod:`federation` package.

There is one base class, :class:`FederationError`. Every message says what
happened and what to do about it, so the site agent can log it or return it to
a peer verbatim. Structured fields (``site``, ``path``, ``field``...) are kept on
the exception for callers that map errors to HTTP responses.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BlobBusyError",
    "BlobTooLargeError",
    "CaExistsError",
    "CaMissingError",
    "FederationConfigError",
    "ExpiredMessageError",
    "FederationError",
    "InvalidSiteNameError",
    "OffsetMismatchError",
    "PeerIdentityError",
    "FederationProtocolError",
    "SignatureError",
    "SiteMismatchError",
    "TamperedBlobError",
    "TlsFilesError",
    "TransferError",
    "UploadError",
]


class FederationError(Exception):
    """Base class for every error raised by :mod:`federation`."""


# --- certificates and TLS -------------------------------------------------------


class CaExistsError(FederationError):
    """A federation CA already exists where a new one was to be created."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"a federation CA already exists at {path}; refusing to overwrite it because "
            "every site certificate issued by it would stop working. Use a different "
            "directory, or pass force=True (--force) to replace it deliberately"
        )


class CaMissingError(FederationError):
    """The federation CA certificate or key is not where it was expected."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"no federation CA at {path}; create one with `spillway certs init` "
            "(federation.certs.init_ca) or point to the directory holding ca.pem and ca-key.pem"
        )


class InvalidSiteNameError(FederationError, ValueError):
    """A site name does not fit the allowed pattern."""

    def __init__(self, site: str) -> None:
        self.site = site
        super().__init__(
            f"invalid site name {site!r}: use 1-63 characters of lowercase letters, digits "
            "and '-', starting with a letter or digit (for example 'studio' or 'paris-2')"
        )


class TlsFilesError(FederationError):
    """A certificate, key or CA file cannot be read or does not fit together."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(
            f"cannot use TLS file {path}: {problem}; issue the site's files with "
            "`spillway certs issue SITE` and check the [federation] ca/cert/key paths"
        )


class PeerIdentityError(FederationError):
    """A peer's verified certificate names a different site than configured."""

    def __init__(self, *, expected: str, actual: str | None) -> None:
        self.expected = expected
        self.actual = actual
        if actual is None:
            message = (
                f"the peer configured as {expected!r} presented no verified certificate; "
                "it must connect with a certificate issued by the federation CA"
            )
        else:
            message = (
                f"certificate names {actual!r} but the peer is configured as {expected!r}; "
                "fix the peer's name in [[peers]] or issue it a certificate for that name"
            )
        super().__init__(message)


# --- configuration --------------------------------------------------------------


class FederationConfigError(FederationError, ValueError):
    """The federation part of a site configuration file is invalid."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        super().__init__(f"{source}: {key}: {problem}")


# --- wire protocol --------------------------------------------------------------


class FederationProtocolError(FederationError):
    """A federation message could not be decoded or does not fit the protocol."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class SignatureError(FederationProtocolError):
    """A message's signature does not verify with the sending peer's certificate."""


class SiteMismatchError(FederationProtocolError):
    """A message claims to come from a different site than the authenticated peer."""


class ExpiredMessageError(FederationProtocolError):
    """A message's timestamp is outside the allowed clock skew."""


# --- blob transfer --------------------------------------------------------------


class TransferError(FederationError):
    """A blob upload could not be completed."""


class OffsetMismatchError(TransferError):
    """An upload chunk does not start where the partial blob ends."""

    def __init__(self, *, sha256: str, offset: int, current: int) -> None:
        self.sha256 = sha256
        self.offset = offset
        self.current = current
        super().__init__(
            f"blob {sha256}: chunk starts at byte {offset} but {current} bytes are stored; "
            f"resume from offset {current}"
        )


class BlobTooLargeError(TransferError):
    """A blob grew beyond the receiver's size limit."""

    def __init__(self, *, sha256: str, limit: int) -> None:
        self.sha256 = sha256
        self.limit = limit
        super().__init__(
            f"blob {sha256} exceeds the receiver's limit of {limit} bytes; split the asset "
            "or raise the receiving site's blob size limit"
        )


class BlobBusyError(TransferError):
    """Another upload of the same blob is still being received."""

    def __init__(self, *, sha256: str, waited_s: float) -> None:
        self.sha256 = sha256
        super().__init__(
            f"blob {sha256} is still being received from an earlier request (waited "
            f"{waited_s:.0f} s); ask for its offset again and resume"
        )


class TamperedBlobError(TransferError):
    """Received blob content does not hash to the announced sha256."""

    def __init__(self, *, sha256: str, actual: str, size: int) -> None:
        self.sha256 = sha256
        self.actual = actual
        self.size = size
        super().__init__(
            f"blob {sha256}: received {size} bytes hashing to {actual}; the content was "
            "discarded. Re-upload it from the start; if this repeats the sender's file "
            "changed or is corrupt"
        )


class UploadError(TransferError):
    """The receiving site refused an upload or kept failing after retries."""

    def __init__(self, *, sha256: str, problem: str) -> None:
        self.sha256 = sha256
        super().__init__(f"upload of blob {sha256} failed: {problem}")
