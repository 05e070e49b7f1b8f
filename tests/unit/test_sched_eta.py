import pytest

from scheduler.eta import estimate_eta


@pytest.mark.parametrize(
    ("waiting", "active", "done_timed", "busy_s", "parallel", "expected"),
    [
        (10, 0, 0, 0.0, 0, None),  # nothing measured yet
        (0, 0, 4, 40.0, 0, 0.0),  # finished
        (10, 0, 2, 20.0, 0, 100.0),  # waiting for a server: one lane assumed
        (8, 2, 5, 50.0, 2, 45.0),  # (8 + 1) tasks of 10 s over 2 lanes
        (0, 4, 1, 8.0, 4, 4.0),  # the last four running, half done each
    ],
)
def test_eta_from_measured_task_times(
    waiting: int, active: int, done_timed: int, busy_s: float, parallel: int, expected: float | None
) -> None:
    assert (
        estimate_eta(
            waiting=waiting, active=active, done_timed=done_timed, busy_s=busy_s, parallel=parallel
        )
        == expected
    )
