"""docs/architecture.md shows the lifecycle's transition tables exactly as the code has them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

import pytest

from site_agent.lifecycle.states import JOB_TRANSITIONS, TASK_TRANSITIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _documented(kind: str) -> set[tuple[str, str, str]]:
    """(state, event, next) rows of the doc's table between its lifecycle-table markers."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- lifecycle-table:{kind} -->\n(.*?)<!-- /lifecycle-table -->", text, re.S
    )
    assert match is not None, f"docs/architecture.md has no lifecycle-table:{kind} block"
    rows: set[tuple[str, str, str]] = set()
    for line in match.group(1).splitlines()[2:]:  # skip the header and its rule
        states, event, after = (cell.strip() for cell in line.strip().strip("|").split("|"))
        for state in (s.strip() for s in states.split(",")):
            rows.add((state, event, state if after == "(unchanged)" else after))
    return rows


def _coded(table: Mapping[tuple[StrEnum, StrEnum], StrEnum]) -> set[tuple[str, str, str]]:
    return {(str(state), str(event), str(after)) for (state, event), after in table.items()}


@pytest.mark.parametrize(
    ("kind", "table"), [("job", JOB_TRANSITIONS), ("task", TASK_TRANSITIONS)], ids=["job", "task"]
)
def test_the_architecture_doc_lists_every_transition_and_no_other(
    kind: str, table: Mapping[tuple[StrEnum, StrEnum], StrEnum]
) -> None:
    assert _documented(kind) == _coded(table)
