"""Issuing the federation CA and site certificates (no network)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.certs import (
    ISSUED_NAME,
    HostIsSiteNameError,
    init_ca,
    issue_site_cert,
    issued_sites,
    load_certificate,
    validate_site_name,
)
from federation.errors import CaExistsError, CaMissingError, InvalidSiteNameError, TlsFilesError
from spillway.main import main


def test_init_ca_writes_self_signed_ca_with_private_key_mode_0600(tmp_path: Path) -> None:
    paths = init_ca(tmp_path / "ca", common_name="Test CA")

    assert paths.cert == tmp_path / "ca" / "ca.pem"
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    cert = load_certificate(paths.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test CA"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)


def test_init_ca_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    first = load_certificate(init_ca(tmp_path).cert)

    with pytest.raises(CaExistsError, match="force=True"):
        init_ca(tmp_path)
    assert load_certificate(tmp_path / "ca.pem").serial_number == first.serial_number

    second = load_certificate(init_ca(tmp_path, force=True).cert)
    assert second.serial_number != first.serial_number


def test_site_certificate_names_site_and_hosts_for_server_and_client_auth(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca")

    paths = issue_site_cert(
        tmp_path / "ca", "studio", tmp_path / "out", hosts=("render.example", "10.0.0.5", "::1")
    )

    assert paths.cert == tmp_path / "out" / "studio.pem"
    assert paths.key == tmp_path / "out" / "studio-key.pem"
    assert paths.ca == tmp_path / "ca" / "ca.pem"
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    cert = load_certificate(paths.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "studio"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["studio", "render.example"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    cert.verify_directly_issued_by(load_certificate(paths.ca))


def test_issuing_without_a_ca_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(CaMissingError, match="spillway certs init"):
        issue_site_cert(tmp_path / "nowhere", "studio", tmp_path / "out")


def test_load_certificate_reports_the_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(TlsFilesError, match="bogus.pem"):
        load_certificate(bogus)


@pytest.mark.parametrize("name", ["studio", "paris-2", "0", "a" * 63])
def test_valid_site_names(name: str) -> None:
    assert validate_site_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Studio", "-studio", "a" * 64, "studio.example", "stu dio", "../etc", "é"]
)
def test_invalid_site_names_are_refused(tmp_path: Path, name: str) -> None:
    init_ca(tmp_path / "ca")
    with pytest.raises(InvalidSiteNameError, match="lowercase letters"):
        issue_site_cert(tmp_path / "ca", name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- a site certificate never carries another site's name ---------------------------


def test_a_host_that_is_another_sites_name_is_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    init_ca(ca)
    issue_site_cert(ca, "facility", ca / "facility")

    for host in ("facility", "FACILITY", "facility."):
        with pytest.raises(HostIsSiteNameError, match="--host .* is the name of site"):
            issue_site_cert(ca, "rival2", ca / "rival2", hosts=("rival2.example", host))
    assert not (ca / "rival2").exists(), "nothing is written for a refused certificate"

    paths = issue_site_cert(ca, "rival2", ca / "rival2", hosts=("rival2.example", "10.0.0.9"))
    san = load_certificate(paths.cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["rival2", "rival2.example"]
    # A site may list its own name, and re-issuing (rotation) keeps working.
    issue_site_cert(ca, "facility", ca / "facility", hosts=("facility", "fac.example"))
    assert issued_sites(ca) == {
        "facility": ("facility", "fac.example"),
        "rival2": ("rival2", "rival2.example"),
    }


def test_a_site_already_listed_as_anothers_host_is_refused_until_that_is_reissued(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca"
    init_ca(ca)
    issue_site_cert(ca, "rival2", tmp_path / "elsewhere", hosts=("facility",))

    with pytest.raises(HostIsSiteNameError, match="already a host name in the certificate"):
        issue_site_cert(ca, "facility", tmp_path / "facility")

    issue_site_cert(ca, "rival2", tmp_path / "elsewhere")  # without --host facility
    issue_site_cert(ca, "facility", tmp_path / "facility")


def test_certificates_issued_before_the_record_existed_are_found(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    init_ca(ca)
    issue_site_cert(ca, "facility", ca / "facility")
    (ca / ISSUED_NAME).unlink()  # as a CA made by an older version has no record

    assert "facility" in issued_sites(ca)
    with pytest.raises(HostIsSiteNameError):
        issue_site_cert(ca, "rival2", ca / "rival2", hosts=("facility",))


def test_the_cli_refuses_the_impersonating_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = str(tmp_path / "ca")
    assert main(["certs", "init", "--dir", ca]) == 0
    assert main(["certs", "issue", "facility", "--dir", ca]) == 0
    capsys.readouterr()

    assert main(["certs", "issue", "rival2", "--dir", ca, "--host", "facility"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("spillway: error: refusing to issue a certificate for rival2")
    assert "--host facility is the name of site facility" in err
    assert not (tmp_path / "ca" / "rival2").exists()
