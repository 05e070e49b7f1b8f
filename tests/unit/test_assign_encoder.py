"""A round's Assigns encoded from one template per job are the bytes of encoding each."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from render_server import protocol
from site_agent.dispatch_views import AssignEncoder, assign_message
from site_agent.jobs import parse_submission
from site_agent.store.records import JobRecord

SHA = "a" * 64


@dataclass(frozen=True)
class _Task:
    id: int
    attempt: int


def _job(job_id: str, **extra: object) -> JobRecord:
    body = {
        "name": f"shot {job_id}",
        "scene": "shot.pov",
        "frames": "1-20",
        "chunk_size": 2,
        "manifest": [{"path": "shot.pov", "sha256": SHA, "size": 3}],
        "profile": {"package": "povray"},
        **extra,
    }
    job, _, _ = parse_submission(body, site_name="studio", known_packages={"povray"}, now=0.0)
    return job


@pytest.mark.parametrize(
    "extra",
    [{}, {"settings": {"width": 48, "height": 36}}],
)
def test_each_attempt_is_encoded_as_protocol_encode_would(extra: dict[str, object]) -> None:
    first, second = _job("a", **extra), _job("b", frames="5-9", priority=80)
    jobs = {first.id: first, second.id: second}
    encoder = AssignEncoder(jobs)
    for job, task, frames in [
        (first, _Task(1, 1), (1, 2)),
        (second, _Task(2, 3), (5,)),
        (first, _Task(7, 2), (19, 20)),  # the same job's template, other attempt fields
    ]:
        data = encoder.encode(job.id, task, frames)
        assert data == protocol.encode(assign_message(job, task, frames))
        msg = protocol.decode(data)
        assert isinstance(msg, protocol.Assign)
        assert (msg.task_id, msg.attempt, msg.frames) == (task.id, task.attempt, list(frames))
