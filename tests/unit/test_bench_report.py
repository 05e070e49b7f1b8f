"""The benchmark table's rows from stored results, old and new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report import render_markdown

STORED = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.json"


def _row(rows: dict[str, Any], name: str) -> str:
    stored = {"transfer": {"rows": [rows], "quick": False, "at": 0}}
    [row] = [
        line for line in render_markdown(stored).splitlines() if line.startswith(f"| {name} |")
    ]
    return row


def _frames_back_row(rows: dict[str, Any]) -> str:
    return _row(rows, "federation frames back")


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


def test_the_bare_pipeline_is_reported_beside_the_transfer_when_measured() -> None:
    r = _transfer() | {
        "bare_mib_s": 560.0,
        "bare_ratio": 0.77,
        "bare_send_cpu_s_per_gib": 0.85,
        "bare_receive_cpu_s_per_gib": 2.2,
    }
    row = _row(r, "federation transfer")
    assert "bare pipeline (the same TLS, hashing and writes, no protocol) 560 MiB/s" in row
    assert "TLS/raw 0.77, CPU 0.85 + 2.20 s/GiB" in row

    for key in ("bare_mib_s", "bare_ratio", "bare_send_cpu_s_per_gib"):
        r.pop(key)
    assert "bare pipeline" not in _row(r, "federation transfer")  # results from before it
