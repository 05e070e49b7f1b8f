"""Frame specs: parsing, formatting and chunking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler import FrameSpecError, chunk_frames, format_frames, parse_frames
from scheduler.frames import MAX_FRAME, frame_bounds


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("7", (7,)),
        ("0", (0,)),
        ("1-5", (1, 2, 3, 4, 5)),
        ("3-3", (3,)),
        ("1-10x3", (1, 4, 7, 10)),
        ("1-240x100", (1, 101, 201)),
        ("1-9X4", (1, 5, 9)),
        ("1,5,10-12", (1, 5, 10, 11, 12)),
        (" 1 , 5 ,\t10 - 12 ", (1, 5, 10, 11, 12)),
        ("10-12,1,11", (1, 10, 11, 12)),
        ("5,5,5", (5,)),
        (f"{MAX_FRAME}", (MAX_FRAME,)),
    ],
)
def test_parse_frames_accepts(spec: str, expected: tuple[int, ...]) -> None:
    assert parse_frames(spec) == expected


def test_parse_frames_full_range_has_every_frame() -> None:
    assert parse_frames("1-240") == tuple(range(1, 241))


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1,,2", "empty item"),
        ("1,", "empty item"),
        ("abc", "'abc' is not a whole number"),
        ("1-x", "'x' is not a whole number"),
        ("1.5", "'1.5' is not a whole number"),
        ("-5", "negative"),
        ("1--3", "negative"),
        ("20-10", "write it as 10-20"),
        ("1-10x0", "must be 1 or more"),
        ("1-10x-2", "must be 1 or more"),
        ("1-10xa", "step 'a'"),
        ("5x2", "step but no range"),
        ("1-2-3", "more than one '-'"),
        ("1-", "missing a number"),
        (f"{MAX_FRAME + 1}", f"above the largest allowed frame {MAX_FRAME}"),
        ("0-1000", "1001 frames, more than the limit of 1000"),
    ],
)
def test_parse_frames_rejects_with_actionable_message(spec: str, fragment: str) -> None:
    with pytest.raises(FrameSpecError) as info:
        parse_frames(spec, max_frames=1000)
    message = str(info.value)
    assert fragment in message
    assert "use forms like 1-240, 1-240x10 or 1,5,10-20" in message or "limit" in message


def test_parse_frames_error_message_matches_contract() -> None:
    with pytest.raises(
        FrameSpecError, match="^bad frame spec '1-x': 'x' is not a whole number; use forms like"
    ):
        parse_frames("1-x")


def test_frame_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_frames("nope")


def test_overlapping_items_count_unique_frames_against_the_limit() -> None:
    assert len(parse_frames("0-599,0-599", max_frames=600)) == 600
    with pytest.raises(FrameSpecError, match="601 frames"):
        parse_frames("0-599,0-599,600", max_frames=600)


def test_huge_spec_is_rejected() -> None:
    with pytest.raises(FrameSpecError, match="10000000 frames"):
        parse_frames(",".join([f"0-{MAX_FRAME}"] * 20))


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([], ""),
        ([7], "7"),
        ([1, 2, 3], "1-3"),
        ([3, 1, 2, 2], "1-3"),
        ([1, 2], "1-2"),
        ([1, 3], "1,3"),
        ([1, 11, 21, 31], "1-31x10"),
        ([1, 5, 10, 11, 12], "1,5,10-12"),
        ([0, 2, 4, 5, 6], "0-4x2,5-6"),
    ],
)
def test_format_frames(frames: list[int], expected: str) -> None:
    assert format_frames(frames) == expected


def test_format_frames_rejects_negative_frames() -> None:
    with pytest.raises(FrameSpecError, match="frames start at 0"):
        format_frames([-1, 2])


def test_format_frames_round_trips_100000_frames() -> None:
    scattered = list(range(0, 400_000, 4))[:50_000] + list(range(500_000, 550_000))
    text = format_frames(scattered)
    assert parse_frames(text) == tuple(sorted(scattered))


@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300))
def test_format_then_parse_round_trips(frames: list[int]) -> None:
    assert parse_frames(format_frames(frames)) == tuple(sorted(set(frames)))


@given(st.lists(st.integers(min_value=0, max_value=MAX_FRAME), min_size=1, max_size=50))
def test_parse_of_comma_list_is_sorted_unique(frames: list[int]) -> None:
    assert parse_frames(",".join(map(str, frames))) == tuple(sorted(set(frames)))


@pytest.mark.parametrize(
    ("frames", "size", "expected"),
    [
        ((), 3, []),
        ((1, 2, 3, 4, 5), 2, [(1, 2), (3, 4), (5,)]),
        ((1, 2, 3), 3, [(1, 2, 3)]),
        ((1, 2, 3), 10, [(1, 2, 3)]),
        ((4, 9), 1, [(4,), (9,)]),
    ],
)
def test_chunk_frames(frames: tuple[int, ...], size: int, expected: list[tuple[int, ...]]) -> None:
    assert chunk_frames(frames, size) == expected


@pytest.mark.parametrize("size", [0, -1])
def test_chunk_frames_rejects_small_chunks(size: int) -> None:
    with pytest.raises(FrameSpecError, match="at least 1"):
        chunk_frames((1, 2), size)


@given(
    st.lists(st.integers(min_value=0, max_value=10_000), unique=True, max_size=200).map(sorted),
    st.integers(min_value=1, max_value=50),
)
def test_chunks_are_disjoint_ordered_and_cover_all(frames: list[int], size: int) -> None:
    chunks = chunk_frames(frames, size)
    assert [frame for chunk in chunks for frame in chunk] == frames
    assert all(1 <= len(chunk) <= size for chunk in chunks)
    assert all(len(chunk) == size for chunk in chunks[:-1])


@pytest.mark.parametrize(
    ("spec", "bounds"),
    [("1-20", (1, 20)), ("7", (7, 7)), ("1-240x10", (1, 231)), ("30,1,5-9", (1, 30))],
)
def test_frame_bounds(spec: str, bounds: tuple[int, int]) -> None:
    assert frame_bounds(spec) == bounds
    frames = parse_frames(spec)
    assert (frames[0], frames[-1]) == bounds


def test_frame_bounds_refuses_a_bad_spec() -> None:
    with pytest.raises(FrameSpecError):
        frame_bounds("5-1")
