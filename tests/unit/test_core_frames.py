"""Frame-spec syntax shared by clients and the scheduler (spillway.core.frames)."""

from __future__ import annotations

import pytest

from scheduler import errors, frames
from spillway.core import frames as syntax


def test_the_scheduler_raises_its_own_error_with_the_shared_message() -> None:
    with pytest.raises(syntax.FrameSpecError) as core_info:
        syntax.parse_frames("5-1")
    with pytest.raises(errors.FrameSpecError) as sched_info:
        frames.parse_frames("5-1")
    assert str(core_info.value) == str(sched_info.value)
    assert "'5-1' ends before it starts; write it as 1-5" in str(core_info.value)
    # Server code maps every SchedulerError to a 400; clients catch the core error.
    assert isinstance(sched_info.value, errors.SchedulerError)
    assert isinstance(sched_info.value, syntax.FrameSpecError)
    assert not isinstance(core_info.value, errors.SchedulerError)


def test_format_errors_convert_too() -> None:
    with pytest.raises(errors.FrameSpecError, match="frames start at 0"):
        frames.format_frames([-1])
    assert frames.format_frames([1, 2, 3, 7]) == syntax.format_frames([7, 3, 2, 1]) == "1-3,7"


def test_the_limits_are_the_shared_ones() -> None:
    assert frames.MAX_FRAME == syntax.MAX_FRAME
    with pytest.raises(errors.FrameSpecError, match="more than the limit of 3"):
        frames.parse_frames("1-4", max_frames=3)
