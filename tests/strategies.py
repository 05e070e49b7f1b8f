"""Hypothesis strategies shared by the protocol and API fuzz tests."""

from __future__ import annotations

from hypothesis import strategies as st


def nested(leaves: st.SearchStrategy[object], *, max_size: int) -> st.SearchStrategy[object]:
    """Leaves, or lists and string-keyed maps of up to ``max_size`` nested values.

    Built with ``st.deferred``, not ``st.recursive``: hypothesis 6.170 warns at random
    that a recursive extend function "doesn't use its argument" (it does), and warnings
    are errors in this suite.
    """
    values: st.SearchStrategy[object] = st.deferred(
        lambda: (
            leaves
            | st.lists(values, max_size=max_size)
            | st.dictionaries(st.text(max_size=10), values, max_size=max_size)
        )
    )
    return values
