"""The shared wire codec: round trips, exact bytes, and a clear error for every bad input."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import nested

from spillway.core.checks import (
    NonNegative,
    RelPath,
    Sha256,
    at_least,
    is_safe_relpath,
    is_sha256,
)
from spillway.core.records import CheckedFileEntry, FileEntry, FileEntryError
from spillway.core.wire import Codec

SHA = "0123456789abcdef" * 4


class WireError(Exception):
    """The test protocol's own error type, as a protocol module would define it."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class Color(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    x: int
    y: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    TYPE: ClassVar[str] = "shape"
    name: str
    visible: bool
    color: Color
    corners: list[Point]
    path: tuple[Point, ...] = ()
    labels: dict[str, int] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    blob: bytes = b""
    note: str | None = None
    count: NonNegative = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    TYPE: ClassVar[str] = "upload"
    checked: tuple[CheckedFileEntry, ...] = ()
    plain: list[FileEntry] = field(default_factory=list)
    digests: tuple[Sha256, ...] = ()
    target: RelPath = "out"
    chunk: Annotated[int, at_least(1)] = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    TYPE: ClassVar[str] = "ping"


CODEC = Codec(messages=(Shape, Upload, Ping), version=3, error=WireError, max_bytes=4096)

SHAPE = Shape(
    name="tri",
    visible=True,
    color=Color.BLUE,
    corners=[Point(x=0, y=0.0), Point(x=-4, y=2.5)],
    path=(Point(x=1, y=1.0),),
    labels={"a": 1},
    extra={"nested": {"k": [1, "two", None]}},
    blob=b"\x00\xff",
    note="n",
    count=3,
)
UPLOAD = Upload(
    checked=(FileEntry(path="tex/a.png", sha256=SHA, size=0),),
    plain=[FileEntry(path="a:b.png", sha256="not checked", size=-1)],
    digests=(SHA,),
    target="renders/out",
    chunk=4,
)


def raw(type_name: str = "shape", v: object = 3, **fields: object) -> bytes:
    return msgpack.packb({**fields, "type": type_name, "v": v}, use_bin_type=True)


def shape_fields(**changes: object) -> dict[str, Any]:
    body = CODEC.to_fields(SHAPE)
    body.update(changes)
    return body


# --- round trips and exact bytes ----------------------------------------------------------


@pytest.mark.parametrize(
    "msg", [SHAPE, UPLOAD, Ping(), Shape(name="", visible=False, color=Color.RED, corners=[])]
)
def test_every_supported_field_type_round_trips(msg: Any) -> None:
    assert CODEC.decode(CODEC.encode(msg)) == msg


def test_encoding_is_a_readable_map_with_type_and_version_last() -> None:
    data = CODEC.encode(Upload(checked=(FileEntry(path="a", sha256=SHA, size=1),)))
    assert data == msgpack.packb(
        {
            "checked": [{"path": "a", "sha256": SHA, "size": 1}],
            "plain": [],
            "digests": [],
            "target": "out",
            "chunk": 1,
            "type": "upload",
            "v": 3,
        },
        use_bin_type=True,
    )


def test_fields_are_plain_values_enums_by_value_and_tuples_as_lists() -> None:
    body = CODEC.to_fields(SHAPE)
    assert body["color"] == "blue" and type(body["color"]) is str
    assert body["path"] == [{"x": 1, "y": 1.0}]
    assert body["corners"][1] == {"x": -4, "y": 2.5}
    assert CODEC.from_fields(Shape, body, "shape") == SHAPE


def test_decoded_sequences_have_their_declared_types() -> None:
    msg = CODEC.decode(CODEC.encode(SHAPE))
    assert type(msg.corners) is list and type(msg.path) is tuple
    assert type(msg.color) is Color


def test_missing_fields_with_defaults_take_them_and_unknown_keys_are_ignored() -> None:
    msg = CODEC.decode(raw(name="n", visible=True, color="red", corners=[], added_later={"x": 1}))
    assert msg == Shape(name="n", visible=True, color=Color.RED, corners=[])


def test_an_integer_is_accepted_where_a_float_is_declared() -> None:
    msg = CODEC.decode(raw(**shape_fields(corners=[{"x": 1, "y": 2}])))
    assert msg.corners == [Point(x=1, y=2.0)] and type(msg.corners[0].y) is float


def test_none_is_accepted_only_where_the_type_allows_it() -> None:
    assert CODEC.decode(raw(**shape_fields(note=None))).note is None
    with pytest.raises(WireError, match=r"shape\.name: expected str, got None"):
        CODEC.decode(raw(**shape_fields(name=None)))


def test_a_plain_file_entry_is_taken_as_it_comes_a_checked_one_is_validated() -> None:
    lenient = {"path": "../x", "sha256": "abc", "size": -1}
    msg = CODEC.decode(raw("upload", plain=[lenient]))
    assert msg.plain == [FileEntry(path="../x", sha256="abc", size=-1)]
    with pytest.raises(WireError) as info:
        CODEC.decode(raw("upload", checked=[lenient]))
    assert info.value.field == "upload.checked[0].path"


# --- every decode failure names the problem -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message", "field"),
    [
        (b"\xc1", "not a msgpack message", None),
        (msgpack.packb([1, 2]), "the message must be a msgpack map, got list", None),
        (raw(v=4), "unsupported protocol version 4; this side speaks 3", "v"),
        (msgpack.packb({"type": "shape"}), "unsupported protocol version None", "v"),
        (raw("circle"), "unknown message type 'circle'; known types: ping, shape, upload", "type"),
        (raw(7), "unknown message type 7", "type"),
        (
            raw(name="n", visible=True, color="red"),
            r"shape: missing field 'corners' \(shape.corners is required\)",
            "shape.corners",
        ),
        (raw(**shape_fields(name=5)), "shape.name: expected str, got 5", "shape.name"),
        (raw(**shape_fields(visible=1)), "shape.visible: expected bool, got 1", "shape.visible"),
        (
            raw(**shape_fields(corners=[{"x": True, "y": 0.0}])),
            r"shape.corners\[0\].x: expected int, got True",
            "shape.corners[0].x",
        ),
        (
            raw(**shape_fields(corners=[{"x": 1, "y": "far"}])),
            r"shape.corners\[0\].y: expected a number, got 'far'",
            "shape.corners[0].y",
        ),
        (
            raw(**shape_fields(corners=[{"x": 1}])),
            r"shape.corners\[0\]: missing field 'y'",
            "shape.corners[0].y",
        ),
        (
            raw(**shape_fields(corners=[[1, 2]])),
            r"corners\[0\]: expected a map",
            "shape.corners[0]",
        ),
        (
            raw(**shape_fields(corners={})),
            "shape.corners: expected a list, got dict",
            "shape.corners",
        ),
        (raw(**shape_fields(path="p")), "shape.path: expected a list", "shape.path"),
        (raw(**shape_fields(labels=[])), "shape.labels: expected a map", "shape.labels"),
        (
            raw(**shape_fields(labels={"a": "1"})),
            r"shape.labels\['a'\]: expected int, got '1'",
            "shape.labels['a']",
        ),
        (raw(**shape_fields(extra=[1])), "shape.extra: expected a map", "shape.extra"),
        (
            raw(**shape_fields(color="green")),
            "shape.color: expected one of red, blue, got 'green'",
            "shape.color",
        ),
        (raw(**shape_fields(color=["red"])), "shape.color: expected one of", "shape.color"),
        (
            raw(**shape_fields(blob="text")),
            r"shape.blob: expected bytes \(msgpack bin\)",
            "shape.blob",
        ),
        (raw(**shape_fields(note=3)), "shape.note: expected str, got 3", "shape.note"),
        (
            raw(**shape_fields(count=-1)),
            "shape.count: expected an integer >= 0, got -1",
            "shape.count",
        ),
        (
            raw("upload", checked=[{"path": "a", "sha256": SHA.upper(), "size": 1}]),
            r"upload.checked\[0\].sha256: expected a sha256 \(64 lowercase hex digits\)",
            "upload.checked[0].sha256",
        ),
        (
            raw("upload", checked=[{"path": "a", "sha256": SHA, "size": -5}]),
            r"upload.checked\[0\].size: expected an integer >= 0, got -5",
            "upload.checked[0].size",
        ),
        (
            raw("upload", checked=[{"path": "a", "sha256": SHA, "size": "5"}]),
            r"upload.checked\[0\].size: expected int, got '5'",
            "upload.checked[0].size",
        ),
        (
            raw("upload", digests=["zz"]),
            r"upload.digests\[0\]: expected a sha256",
            "upload.digests[0]",
        ),
        (
            raw("upload", target="/etc"),
            "upload.target: expected a relative POSIX path",
            "upload.target",
        ),
        (raw("upload", chunk=0), "upload.chunk: expected an integer >= 1, got 0", "upload.chunk"),
    ],
)
def test_bad_input_raises_the_protocol_error_naming_the_field(
    data: bytes, message: str, field: str | None
) -> None:
    with pytest.raises(WireError, match=message) as info:
        CODEC.decode(data)
    assert info.value.field == field


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(WireError, match="message of 4097 bytes exceeds the 4096 byte limit"):
        CODEC.decode(b"\x00" * 4097)


def test_input_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(WireError, match="the message must be bytes, got str"):
        CODEC.unpack("text")


def test_from_fields_refuses_a_record_that_is_not_a_map() -> None:
    with pytest.raises(WireError, match="status.frames: expected a map, got list") as info:
        CODEC.from_fields(Point, [], "status.frames")
    assert info.value.field == "status.frames"


def test_long_strings_are_cut_in_error_messages() -> None:
    with pytest.raises(WireError) as info:
        CODEC.decode(raw(**shape_fields(color="x" * 500)))
    assert len(str(info.value)) < 200


def test_a_field_type_the_codec_cannot_carry_is_refused_when_the_codec_is_made() -> None:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class Odd:
        TYPE: ClassVar[str] = "odd"
        pair: tuple[int, str]

    with pytest.raises(TypeError, match="cannot carry"):
        Codec(messages=(Odd,), version=1, error=WireError, max_bytes=100)


# --- properties ------------------------------------------------------------------------------

_ints = st.integers(-(2**63), 2**64 - 1)
_points = st.builds(Point, x=_ints, y=st.floats(allow_nan=False))
_shapes = st.builds(
    Shape,
    name=st.text(max_size=20),
    visible=st.booleans(),
    color=st.sampled_from(Color),
    corners=st.lists(_points, max_size=4),
    path=st.lists(_points, max_size=3).map(tuple),
    labels=st.dictionaries(st.text(max_size=5), _ints, max_size=3),
    blob=st.binary(max_size=20),
    note=st.none() | st.text(max_size=5),
    count=st.integers(0, 2**64 - 1),
)
_entries = st.builds(
    FileEntry,
    path=st.from_regex(r"[a-z0-9_]{1,8}(/[a-z0-9_.]{1,8}){0,2}", fullmatch=True).filter(
        is_safe_relpath
    ),
    sha256=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    size=st.integers(0, 2**63),
)


@given(_shapes)
def test_any_shape_round_trips(msg: Shape) -> None:
    assert CODEC.decode(CODEC.encode(msg)) == msg


@given(st.lists(_entries, max_size=4))
def test_any_valid_file_entries_round_trip_checked(entries: list[FileEntry]) -> None:
    msg = Upload(checked=tuple(entries), plain=entries)
    assert CODEC.decode(CODEC.encode(msg)) == msg


@given(st.binary(max_size=256))
def test_arbitrary_bytes_only_ever_raise_the_protocol_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        CODEC.decode(data)


_values = nested(
    st.none() | st.booleans() | _ints | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    max_size=3,
)
_keys = st.sampled_from(
    [
        "name",
        "visible",
        "color",
        "corners",
        "path",
        "labels",
        "extra",
        "blob",
        "note",
        "count",
        "checked",
        "plain",
        "digests",
        "target",
        "chunk",
        "x",
        "y",
        "path",
        "sha256",
        "size",
    ]
)


@given(st.sampled_from(["shape", "upload", "ping"]), st.dictionaries(_keys, _values, max_size=8))
def test_arbitrary_maps_with_a_known_type_only_ever_raise_the_protocol_error(
    type_name: str, fields: dict[str, Any]
) -> None:
    with contextlib.suppress(WireError):
        CODEC.decode(raw(type_name, **fields))


# --- file entries and checks -----------------------------------------------------------------


def test_a_file_entry_that_keeps_its_contract_checks_clean() -> None:
    entry = FileEntry(path="tex/wood.png", sha256=SHA, size=0)
    assert entry.check() is entry


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (FileEntry(path="../x", sha256=SHA, size=1), "path"),
        (FileEntry(path="a", sha256=SHA[:-1], size=1), "sha256"),
        (FileEntry(path="a", sha256=SHA, size=-1), "size"),
        (FileEntry(path="a", sha256=SHA, size=True), "size"),
    ],
)
def test_a_file_entry_that_breaks_its_contract_names_the_field(
    entry: FileEntry, field: str
) -> None:
    with pytest.raises(FileEntryError, match=f"field '{field}' must be") as info:
        entry.check()
    assert info.value.field == field


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("a", True),
        ("tex/wood.png", True),
        ("ab:c", True),
        ("", False),
        ("/etc/passwd", False),
        ("../x", False),
        ("a/../b", False),
        ("./a", False),
        ("a//b", False),
        ("a/", False),
        ("tex\\a.png", False),
        ("a\x00", False),
        ("C:/x", False),
        ("c:x", False),
        (3, False),
    ],
)
def test_safe_relative_paths(path: object, safe: bool) -> None:
    assert is_safe_relpath(path) is safe


@pytest.mark.parametrize(
    ("value", "ok"),
    [(SHA, True), (SHA.upper(), False), (SHA + "0", False), ("g" * 64, False), (None, False)],
)
def test_sha256_shape(value: object, ok: bool) -> None:
    assert is_sha256(value) is ok


def test_at_least_refuses_bools_and_non_integers() -> None:
    check = at_least(0)
    assert check.ok(0) and check.ok(5)
    assert not check.ok(-1) and not check.ok(True) and not check.ok("5") and not check.ok(1.0)


def test_a_file_entry_round_trips_through_its_json_form() -> None:
    entry = FileEntry(path="tex/wood.png", sha256=SHA, size=12)
    assert entry.to_dict() == {"path": "tex/wood.png", "sha256": SHA, "size": 12}
    assert FileEntry.from_dict(entry.to_dict()) == entry
