"""The store's pure helpers: compact frame lists and the SQLite query rewrite."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from site_agent.store.rows import decode_frames, encode_frames
from site_agent.store.sqlite import split_statements, translate_query


@pytest.mark.parametrize(
    ("frames", "text"),
    [
        ((7,), "7"),
        ((1, 2), "1,2"),
        ((1, 2, 3, 4), "1:4"),
        ((1, 11, 21), "1:21:10"),
        ((-3, -2, -1), "-3:-1"),
        ((1, 5, 6), "1,5,6"),
        ((), ""),
    ],
)
def test_frames_encoding(frames: tuple[int, ...], text: str) -> None:
    assert encode_frames(frames) == text
    assert decode_frames(text) == frames


@given(st.lists(st.integers(-10_000, 10_000), max_size=50))
def test_frames_roundtrip(frames: list[int]) -> None:
    assert decode_frames(encode_frames(frames)) == tuple(frames)


def test_sqlite_rewrite_of_parameters_and_arrays() -> None:
    sql, arrays = translate_query(
        "SELECT * FROM t WHERE a = $1 AND id = ANY($2::bigint[]) AND b = $10"
    )
    assert (
        sql
        == "SELECT * FROM t WHERE a = ?1 AND id IN (SELECT value FROM json_each(?2)) AND b = ?10"
    )
    assert arrays == frozenset({1})


def test_split_statements_keeps_semicolons_inside_strings() -> None:
    script = (
        "-- note\nCREATE TABLE a (x TEXT DEFAULT ';');\n\nINSERT INTO a VALUES ('1;2');\n-- end\n"
    )
    assert split_statements(script) == [
        "-- note\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('1;2');",
    ]
