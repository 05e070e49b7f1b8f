"""Parsing the [federation] table and [[peers]] of a site TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from federation.certs import TlsFiles
from federation.errors import FederationConfigError
from federation.peers import FederationConfig, PeerConfig, parse_federation, parse_peers

DOCUMENTED_EXAMPLE = """
name = "studio"   # owned by the site config, ignored here

[federation]
listen = "127.0.0.1:8743"
ca = "certs/ca.pem"
cert = "certs/studio.pem"
key = "/etc/spillway/studio-key.pem"
overflow_after = 120     # seconds of estimated local wait before forwarding
lease = 300
blob_port = 8744         # blob bodies through the threaded listener

[[peers]]
name = "facility"
url = "https://127.0.0.1:8843"
forward = true   # allow sending jobs there
accept = true    # allow accepting jobs from there

[[peers]]
name = "render-co"
url = "https://render.example:443/"
accept = false
"""


def parse(text: str) -> FederationConfig:
    return parse_federation(tomllib.loads(text), source="studio.toml", base_dir=Path("/srv/site"))


def test_documented_example_parses() -> None:
    config = parse(DOCUMENTED_EXAMPLE)

    assert config == FederationConfig(
        tls=TlsFiles(
            ca=Path("/srv/site/certs/ca.pem"),
            cert=Path("/srv/site/certs/studio.pem"),
            key=Path("/etc/spillway/studio-key.pem"),
        ),
        peers=(
            PeerConfig(name="facility", url="https://127.0.0.1:8843"),
            PeerConfig(
                name="render-co",
                url="https://render.example:443",
                allow_forward_to=True,
                allow_accept_from=False,
            ),
        ),
        listen="127.0.0.1:8743",
        overflow_after_s=120.0,
        lease_s=300.0,
        advertise_interval_s=10.0,
        blob_port=8744,
    )
    assert config.listen_address == ("127.0.0.1", 8743)
    assert config.peer("render-co") is config.peers[1]
    assert config.peer("nobody") is None


def test_minimal_federation_uses_defaults() -> None:
    config = parse(
        '[federation]\nlisten = "[::1]:8743"\nca = "ca.pem"\ncert = "s.pem"\nkey = "k.pem"\n'
    )
    assert config.peers == ()
    assert config.overflow_after_s is None
    assert config.lease_s == 300.0
    assert config.advertise_interval_s == 10.0
    assert config.listen_address == ("::1", 8743)
    assert config.blob_port is None  # no blob listener: bodies arrive on listen


BASE = {"listen": "127.0.0.1:8743", "ca": "ca.pem", "cert": "s.pem", "key": "k.pem"}


@pytest.mark.parametrize(
    ("federation", "key", "message"),
    [
        ({**BASE, "lisen": "x"}, "federation.lisen", "unknown key; valid keys are listen"),
        ({k: v for k, v in BASE.items() if k != "cert"}, "federation.cert", "missing"),
        ({**BASE, "listen": "8743"}, "federation.listen", "must be host:port"),
        ({**BASE, "listen": "host:99999"}, "federation.listen", "must be host:port"),
        ({**BASE, "lease": 0}, "federation.lease", "positive number"),
        ({**BASE, "lease": "5m"}, "federation.lease", "number of seconds"),
        ({**BASE, "overflow_after": True}, "federation.overflow_after", "number of seconds"),
        ({**BASE, "ca": 3}, "federation.ca", "non-empty string"),
        ({**BASE, "blob_port": 70000}, "federation.blob_port", "port number"),
        ({**BASE, "blob_port": "8744"}, "federation.blob_port", "port number"),
        ({**BASE, "blob_port": True}, "federation.blob_port", "port number"),
    ],
)
def test_bad_federation_table(federation: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(FederationConfigError, match=message) as info:
        parse_federation({"federation": federation}, source="studio.toml", base_dir=Path("."))
    assert info.value.key == key
    assert str(info.value).startswith(f"studio.toml: {key}: ")


def test_missing_federation_table() -> None:
    with pytest.raises(
        FederationConfigError, match=r"studio.toml: federation: missing \[federation\]"
    ):
        parse_federation({"name": "studio"}, source="studio.toml", base_dir=Path("."))


PEER = {"name": "facility", "url": "https://127.0.0.1:8843"}


@pytest.mark.parametrize(
    ("peers", "key", "message"),
    [
        ([{**PEER, "forwrd": True}], "peers[0].forwrd", "unknown key; valid keys are name"),
        ([PEER, {**PEER, "url": "https://b:1"}], "peers[1].name", "configured twice"),
        ([{**PEER, "url": "http://127.0.0.1:8843"}], "peers[0].url", "must use https://"),
        ([{**PEER, "url": "https://127.0.0.1"}], "peers[0].url", "https://host:port"),
        ([{**PEER, "url": "https://h:1/fed"}], "peers[0].url", "no path"),
        ([{**PEER, "url": "https://h:x"}], "peers[0].url", "invalid port"),
        ([{**PEER, "name": "Facility"}], "peers[0].name", "not a site name"),
        ([{"url": PEER["url"]}], "peers[0].name", "missing"),
        ([{**PEER, "accept": "yes"}], "peers[0].accept", "true or false"),
        (["facility"], "peers[0]", "must be a table"),
    ],
)
def test_bad_peers(peers: list[Any], key: str, message: str) -> None:
    with pytest.raises(FederationConfigError, match=message) as info:
        parse_peers(peers, source="configs/studio.toml")
    assert info.value.key == key
    assert info.value.source == "configs/studio.toml"
    assert "configs/studio.toml" in str(info.value)
