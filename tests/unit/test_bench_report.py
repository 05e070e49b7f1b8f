"""The benchmark table's rows from stored results, old and new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report import render_markdown

STORED = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.json"


def _frames_back_row(rows: dict[str, Any]) -> str:
    stored = {"transfer": {"rows": [rows], "quick": False, "at": 0}}
    [row] = [
        line
        for line in render_markdown(stored).splitlines()
        if line.startswith("| federation frames back |")
    ]
    return row


def _transfer() -> dict[str, Any]:
    rows: list[dict[str, Any]] = json.loads(STORED.read_text())["transfer"]["rows"]
    return dict(rows[0])


def test_frames_back_from_before_the_remote_had_its_own_process_says_both_ends() -> None:
    r = _transfer()
    r.pop("frames_back_origin_cpu_s_per_gib", None)
    r.pop("frames_back_remote_cpu_s_per_gib", None)
    row = _frames_back_row(r)
    assert "nan" not in row
    assert "own process" not in row
    assert f"CPU (both ends) {r['frames_back_cpu_s_per_gib']:.2f} s/GiB" in row


def test_frames_back_with_the_remote_apart_splits_its_cpu() -> None:
    r = _transfer() | {
        "frames_back_cpu_s_per_gib": 6.5,
        "frames_back_origin_cpu_s_per_gib": 4.0,
        "frames_back_remote_cpu_s_per_gib": 2.5,
    }
    row = _frames_back_row(r)
    assert "from a remote site in its own process" in row
    assert "CPU 6.50 (origin 4.00 + remote 2.50) s/GiB" in row
