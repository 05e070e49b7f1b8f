"""The federation envelope and messages: round trips, authentication, validation."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import msgpack
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import nested

from federation import protocol
from federation.certs import init_ca, issue_site_cert, load_certificate
from federation.envelope import Envelope, canonical_bytes, decode_envelope, encode_envelope
from federation.errors import (
    ExpiredMessageError,
    FederationProtocolError,
    SignatureError,
    SiteMismatchError,
)
from federation.protocol import (
    Ack,
    Cancel,
    CapacityAdvert,
    Commit,
    CommitReply,
    FrameOutput,
    JobSpec,
    Message,
    Notify,
    NotifyState,
    Offer,
    OfferReply,
    Pause,
    Progress,
    Reclaim,
    ReclaimReply,
    Resume,
    ServerCapacity,
    TaskProgress,
)
from spillway.core.records import FileEntry

NOW = 1_750_000_000.0
SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4


class Site:
    def __init__(self, directory: Path, name: str) -> None:
        paths = issue_site_cert(directory / "ca", name, directory / "certs")
        self.name = name
        self.cert: x509.Certificate = load_certificate(paths.cert)
        key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Site]:
    directory = tmp_path_factory.mktemp("pki")
    init_ca(directory / "ca")
    return {name: Site(directory, name) for name in ("studio", "facility")}


@pytest.fixture(scope="module")
def studio(sites: dict[str, Site]) -> Site:
    return sites["studio"]


def encode(site: Site, msg: Message, *, now: float = NOW, msg_id: str | None = None) -> bytes:
    return encode_envelope(msg, site=site.name, key=site.key, now=now, msg_id=msg_id)


def decode(site: Site, data: bytes, *, now: float = NOW) -> Envelope:
    return decode_envelope(data, peer_cert=site.cert, expected_site=site.name, now=now)


def sign_raw(site: Site, fields: dict[str, Any]) -> bytes:
    """An envelope with arbitrary fields, correctly signed (to reach body validation)."""
    signed = dict(fields)
    signed["sig"] = site.key.sign(canonical_bytes(fields), ec.ECDSA(hashes.SHA256()))
    return msgpack.packb(signed, use_bin_type=True)


def envelope_fields(site: Site, type_name: str, body: Any) -> dict[str, Any]:
    return {"v": 1, "type": type_name, "site": site.name, "id": "m1", "sent_at": NOW, "body": body}


JOB = JobSpec(
    name="shot-010",
    owner="ana",
    priority=50,
    profile={"package": "povray>=3.7", "min_memory_mb": 2048, "gpu": False, "tags": ["hq"]},
    frames="1-240x10",
    chunk_size=5,
    scene="scenes/shot.pov",
    output_name="shot",
    settings={"width": 1920, "height": 1080, "quality": 0.9},
)

SAMPLES: list[Message] = [
    CapacityAdvert(
        servers=(
            ServerCapacity(
                name="r01",
                cores=32,
                memory_mb=65536,
                gpus=1,
                packages={"povray": "3.7.0", "builtin": "1"},
                tags=("hq", "linux"),
                slots=4,
                free_slots=3,
                status="busy",
            ),
        ),
        queue_depth=7,
    ),
    CapacityAdvert(servers=(), queue_depth=0),
    Offer(
        key="studio:42:1",
        origin_job_id="42",
        epoch=1,
        job=JOB,
        manifest=(
            FileEntry(path="scenes/shot.pov", sha256=SHA_A, size=1234),
            FileEntry(path="tex/wood.png", sha256=SHA_B, size=0),
        ),
    ),
    OfferReply(key="studio:42:1", accepted=True, missing=(SHA_B,)),
    OfferReply(key="k", accepted=False, reasons=("no server has povray>=3.8",)),
    OfferReply(key="k", accepted=True, remote_job_id="r-17"),
    Commit(key="studio:42:1"),
    CommitReply(key="studio:42:1", remote_job_id="r-17"),
    Notify(
        origin_job_id="42",
        remote_job_id="r-17",
        epoch=1,
        state=NotifyState.RUNNING,
        frames_done=3,
        frames_total=24,
    ),
    Notify(
        origin_job_id="42",
        remote_job_id="r-17",
        epoch=1,
        state=NotifyState.DONE,
        frames_done=1,
        frames_total=1,
        frames=(FrameOutput(frame=1, sha256=SHA_A, size=10, name="shot_0001.png"),),
    ),
    Notify(
        origin_job_id="42",
        remote_job_id="r-17",
        epoch=2,
        state=NotifyState.FAILED,
        frames_done=0,
        frames_total=1,
        error="povray crashed",
    ),
    Ack(of="0f" * 16),
    Cancel(origin_job_id="42", remote_job_id="r-17", epoch=1),
    Progress(
        origin_job_id="42",
        remote_job_id="r-17",
        epoch=1,
        seq=7,
        state="running",
        frames_done=1,
        frames_total=3,
        tasks=(
            TaskProgress(
                index=0,
                state="done",
                attempt=1,
                server="fac-1",
                started_at=NOW - 5,
                finished_at=NOW - 1,
                frames=(FrameOutput(frame=1, sha256=SHA_A, size=10, name="shot_0001.png"),),
            ),
            TaskProgress(index=1, state="running", attempt=2, server="fac-2", started_at=NOW),
            TaskProgress(index=2, state="waiting", attempt=1, error="povray: parse error"),
        ),
    ),
    Pause(origin_job_id="42", remote_job_id="r-17", epoch=1, seq=1_750_000_000_000),
    Resume(origin_job_id="42", remote_job_id="r-17", epoch=1, seq=1_750_000_000_001),
    Reclaim(
        key="studio:42:1:0a1b2c", origin_job_id="42", remote_job_id="r-17", epoch=1, indices=(4, 5)
    ),
    ReclaimReply(key="studio:42:1:0a1b2c", withdrawn=(5,), reason="1 chunk(s) started here"),
]


def test_every_message_type_has_a_sample() -> None:
    assert {type(m) for m in SAMPLES} == set(protocol.MESSAGE_TYPES.values())


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_roundtrip(studio: Site, msg: Message) -> None:
    envelope = decode(studio, encode(studio, msg, msg_id="resend-1"))

    assert envelope.message == msg
    assert envelope.site == "studio"
    assert envelope.msg_id == "resend-1"
    assert envelope.sent_at == NOW


def test_envelope_has_readable_keys_and_a_fresh_id(studio: Site) -> None:
    raw = msgpack.unpackb(encode(studio, Commit(key="k")))
    again = msgpack.unpackb(encode(studio, Commit(key="k")))

    assert set(raw) == {"v", "type", "site", "id", "sent_at", "body", "sig"}
    assert raw["type"] == "commit" and raw["body"] == {"key": "k"} and raw["v"] == 1
    assert len(raw["id"]) == 32 and raw["id"] != again["id"]


def test_tampered_body_fails_the_signature(studio: Site) -> None:
    raw = msgpack.unpackb(encode(studio, SAMPLES[2]))
    raw["body"]["job"]["priority"] = 99
    with pytest.raises(SignatureError, match="does not verify"):
        decode(studio, msgpack.packb(raw))


def test_tampered_envelope_field_fails_the_signature(studio: Site) -> None:
    raw = msgpack.unpackb(encode(studio, Ack(of="x")))
    raw["id"] = "another"
    with pytest.raises(SignatureError):
        decode(studio, msgpack.packb(raw))


def test_message_signed_by_another_site_key_fails(sites: dict[str, Site]) -> None:
    forged = encode_envelope(Ack(of="x"), site="studio", key=sites["facility"].key, now=NOW)
    with pytest.raises(SignatureError):
        decode(sites["studio"], forged)


def test_missing_signature(studio: Site) -> None:
    raw = msgpack.unpackb(encode(studio, Ack(of="x")))
    del raw["sig"]
    with pytest.raises(SignatureError, match="no signature"):
        decode(studio, msgpack.packb(raw))


def test_message_claiming_another_site_is_refused(sites: dict[str, Site]) -> None:
    data = encode(sites["facility"], Ack(of="x"))
    with pytest.raises(SiteMismatchError, match="'facility' but the connection is from 'studio'"):
        decode_envelope(data, peer_cert=sites["facility"].cert, expected_site="studio", now=NOW)


@pytest.mark.parametrize("delta", [-300.0, 0.0, 299.0])
def test_within_skew_is_accepted(studio: Site, delta: float) -> None:
    decode(studio, encode(studio, Ack(of="x"), now=NOW + delta))


def test_expired_message(studio: Site) -> None:
    with pytest.raises(ExpiredMessageError, match="sent 301s ago"):
        decode(studio, encode(studio, Ack(of="x"), now=NOW - 301))


def test_message_from_the_future(studio: Site) -> None:
    with pytest.raises(ExpiredMessageError, match="in the future.*clocks"):
        decode(studio, encode(studio, Ack(of="x"), now=NOW + 301))


def test_wrong_version(studio: Site) -> None:
    fields = envelope_fields(studio, "ack", {"of": "x"})
    fields["v"] = 2
    with pytest.raises(FederationProtocolError, match="unsupported protocol version 2") as info:
        decode(studio, sign_raw(studio, fields))
    assert info.value.field == "v"


def test_unknown_type(studio: Site) -> None:
    with pytest.raises(FederationProtocolError, match="unknown message type 'gossip'") as info:
        decode(studio, sign_raw(studio, envelope_fields(studio, "gossip", {})))
    assert info.value.field == "type"


def test_unknown_body_keys_are_ignored(studio: Site) -> None:
    body = {"of": "x", "added_in_v1_1": [1, 2]}
    envelope = decode(studio, sign_raw(studio, envelope_fields(studio, "ack", body)))
    assert envelope.message == Ack(of="x")


def offer_body(**changes: Any) -> dict[str, Any]:
    body = SAMPLES[2].to_body()
    body.update(changes)
    return body


def manifest_body(**entry: Any) -> dict[str, Any]:
    return offer_body(manifest=[{"path": "a.pov", "sha256": SHA_A, "size": 1, **entry}])


@pytest.mark.parametrize(
    ("type_name", "body", "field"),
    [
        ("ack", {}, "body.of"),
        ("ack", {"of": 3}, "body.of"),
        ("commit", [], "body"),
        ("offer", offer_body(epoch="1"), "body.epoch"),
        ("offer", offer_body(epoch=True), "body.epoch"),
        ("offer", offer_body(epoch=-1), "body.epoch"),
        ("offer", offer_body(job=None), "body.job"),
        ("offer", offer_body(manifest={}), "body.manifest"),
        ("offer", manifest_body(sha256=SHA_A.upper()), "body.manifest[0].sha256"),
        ("offer", manifest_body(sha256="abc"), "body.manifest[0].sha256"),
        ("offer", manifest_body(size=-5), "body.manifest[0].size"),
        ("offer", manifest_body(path="../etc/passwd"), "body.manifest[0].path"),
        ("offer", manifest_body(path="/etc/passwd"), "body.manifest[0].path"),
        ("offer", manifest_body(path="tex\\wood.png"), "body.manifest[0].path"),
        ("offer", manifest_body(path="tex/\x00.png"), "body.manifest[0].path"),
        ("offer", manifest_body(path="tex//wood.png"), "body.manifest[0].path"),
        ("offer", manifest_body(path="./wood.png"), "body.manifest[0].path"),
        ("offer", manifest_body(path="C:/wood.png"), "body.manifest[0].path"),
        ("offer", manifest_body(path=""), "body.manifest[0].path"),
        (
            "offer",
            offer_body(job={**SAMPLES[2].to_body()["job"], "scene": "../x"}),
            "body.job.scene",
        ),
        ("offer_reply", {"key": "k", "accepted": True, "missing": ["zz"]}, "body.missing[0]"),
        ("capacity", {"servers": [{"name": "r"}], "queue_depth": 0}, "body.servers[0].cores"),
        ("notify", {**SAMPLES[8].to_body(), "state": "exploded"}, "body.state"),
        (
            "notify",
            {
                **SAMPLES[9].to_body(),
                "frames": [{"frame": 1, "sha256": SHA_A, "size": 1, "name": "../x.png"}],
            },
            "body.frames[0].name",
        ),
    ],
)
def test_invalid_bodies_name_the_field(studio: Site, type_name: str, body: Any, field: str) -> None:
    with pytest.raises(FederationProtocolError) as info:
        decode(studio, sign_raw(studio, envelope_fields(studio, type_name, body)))
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"v": 1}),
        msgpack.packb({1: 2}),
        msgpack.packb(
            {
                "v": 1,
                "type": "ack",
                "site": "studio",
                "id": "x",
                "sent_at": "now",
                "body": {},
                "sig": b"",
            }
        ),
        msgpack.packb(
            {
                "v": 1,
                "type": "ack",
                "site": "studio",
                "id": "",
                "sent_at": NOW,
                "body": {},
                "sig": b"",
            }
        ),
        msgpack.packb(
            {
                "v": 1,
                "type": "ack",
                "site": "studio",
                "id": "x",
                "sent_at": NOW,
                "body": [],
                "sig": b"",
            }
        ),
    ],
)
def test_malformed_envelopes(studio: Site, data: bytes) -> None:
    with pytest.raises(FederationProtocolError):
        decode(studio, data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_protocol_error(studio: Site, data: bytes) -> None:
    with contextlib.suppress(FederationProtocolError):
        decode(studio, data)


msgpack_values = nested(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["v", "type", "site", "id", "sent_at", "body", "sig", "x"]), msgpack_values
    )
)
def test_arbitrary_envelope_maps_only_raise_protocol_error(
    studio: Site, fields: dict[str, Any]
) -> None:
    with contextlib.suppress(FederationProtocolError):
        decode(studio, msgpack.packb(fields, use_bin_type=True))


@settings(max_examples=300, deadline=None)
@given(
    type_name=st.sampled_from(sorted(protocol.MESSAGE_TYPES)),
    body=st.dictionaries(
        st.sampled_from(
            [
                "key",
                "of",
                "epoch",
                "job",
                "manifest",
                "servers",
                "queue_depth",
                "accepted",
                "missing",
                "state",
                "frames",
                "origin_job_id",
                "remote_job_id",
                "frames_done",
                "frames_total",
                "error",
            ]
        ),
        msgpack_values,
    ),
)
def test_signed_arbitrary_bodies_only_raise_protocol_error(
    studio: Site, type_name: str, body: dict[str, Any]
) -> None:
    with contextlib.suppress(FederationProtocolError):
        decode(studio, sign_raw(studio, envelope_fields(studio, type_name, body)))


def test_a_server_advertised_without_gpus_has_none(studio: Site) -> None:
    server = {
        "name": "r",
        "cores": 1,
        "memory_mb": 1,
        "slots": 1,
        "free_slots": 1,
        "status": "idle",
    }
    body = {"servers": [server], "queue_depth": 0}
    envelope = decode(studio, sign_raw(studio, envelope_fields(studio, "capacity", body)))
    assert isinstance(envelope.message, CapacityAdvert)
    assert envelope.message.servers[0].gpus == 0


def test_a_decoded_offer_manifest_holds_the_shared_file_entry() -> None:
    offer = next(m for m in SAMPLES if isinstance(m, Offer))
    decoded = Offer.from_body(offer.to_body())
    assert all(type(entry) is FileEntry for entry in decoded.manifest)
