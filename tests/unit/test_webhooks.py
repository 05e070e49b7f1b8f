"""Webhooks in parts: Standard Webhooks signatures, ``[[webhooks]]`` parsing, event mapping."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from test_lifecycle import make_job

from site_agent.config import WEBHOOK_EVENTS, ConfigError, parse_config
from site_agent.lifecycle import (
    JobCancelled,
    JobCreated,
    JobFinished,
    JobReplaced,
    JobStateChanged,
    TasksAssigned,
)
from site_agent.store.records import JobState
from spillway.client.webhooks import format_webhooks
from webhooks.events import Occurrence, message_id, occurrences, payload
from webhooks.signing import SignatureError, headers, secret_key, sign, verify

# The example of the Standard Webhooks specification and its reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_BODY = b'{"test": 2432232314}'


def test_signature_matches_the_specification_example() -> None:
    key = secret_key(SPEC_SECRET)
    assert sign(key, SPEC_ID, 1614265330, SPEC_BODY) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    assert secret_key("plain text secret!") == b"plain text secret!"


def test_verify_accepts_its_own_deliveries_and_refuses_tampering() -> None:
    key = secret_key(SPEC_SECRET)
    sent = headers(key, SPEC_ID, 1000, SPEC_BODY)
    assert verify(key, sent, SPEC_BODY, now=1010) == SPEC_ID
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(key, sent, SPEC_BODY + b" ", now=1010)
    with pytest.raises(SignatureError, match="too far"):
        verify(key, sent, SPEC_BODY, now=5000)
    with pytest.raises(SignatureError, match="missing"):
        verify(key, {}, SPEC_BODY, now=1000)


BASE = {"name": "studio", "storage": "/tmp/farm"}


def config(hooks: Any) -> Any:
    return parse_config(BASE | {"webhooks": hooks}, source="site.toml", base_dir=Path("/"))


def test_webhooks_config_defaults_and_errors() -> None:
    [hook] = config([{"url": "http://ci.example:8080/hook", "secret": "s" * 16}]).webhooks
    assert (hook.name, hook.events, hook.timeout_s) == ("ci.example:8080", WEBHOOK_EVENTS, 10.0)
    for bad, message in (
        ({"url": "ftp://x", "secret": "s" * 16}, "url must be an http"),
        ({"url": "http://x/", "secret": "short"}, "secret must be a string of at least 16"),
        ({"url": "http://x/", "secret": "s" * 16, "events": ["job.exploded"]}, "unknown event"),
        ({"url": "http://x/", "secret": "s" * 16, "timeout": 0}, "timeout must be"),
        ({"url": "http://x/", "secret": "s" * 16, "retries": 3}, "unknown key 'retries'"),
    ):
        with pytest.raises(ConfigError, match=message) as err:
            config([bad])
        assert "site.toml: [[webhooks]] #1" in str(err.value)
    with pytest.raises(ConfigError, match="two \\[\\[webhooks\\]\\] are named 'x'"):
        config([{"url": "http://x/a", "secret": "s" * 16}] * 2)
    with pytest.raises(ConfigError, match="array of tables"):
        config({"url": "http://x/"})


def test_lifecycle_events_map_to_webhook_events() -> None:
    job = make_job("j1")
    accepted = make_job("j2", origin_job_id="o1")
    away = make_job("j3", placement="paris")
    cases = [
        (JobCreated(job=job), [("job.submitted", "j1")]),
        (JobCreated(job=accepted), [("job.accepted", "j2")]),
        (JobCreated(job=away), [("job.submitted", "j3"), ("job.forwarded", "j3")]),
        (JobCreated(job=away, ready=False), [("job.submitted", "j3")]),
        (TasksAssigned(tasks=(), started_jobs=("j1",)), [("job.started", "j1")]),
        (JobStateChanged(job_id="j1", state=JobState.RUNNING), [("job.started", "j1")]),
        (JobStateChanged(job_id="j1", state=JobState.PAUSED), []),
        (JobFinished(job_id="j1", state=JobState.DONE), [("job.done", "j1")]),
        (JobFinished(job_id="j1", state=JobState.FAILED), [("job.failed", "j1")]),
        (JobCancelled(job=job, stopped=()), [("job.cancelled", "j1")]),
        (JobReplaced(job_id="j1", placement="paris", epoch=2), [("job.forwarded", "j1")]),
        (JobReplaced(job_id="j1", placement="local", epoch=2), []),
    ]
    for event, expected in cases:
        assert occurrences(event) == [Occurrence(event=e, job_id=j) for e, j in expected], event


def test_ids_are_stable_per_transition_and_payloads_carry_the_job() -> None:
    job = make_job("j1", state=JobState.DONE, finished_at=9.0)
    same = message_id("studio", "ci", "job.done", job)
    assert same == message_id("studio", "ci", "job.done", dataclasses.replace(job, updated_at=99.0))
    assert same.startswith("msg_")
    again = dataclasses.replace(job, finished_at=20.0)  # re-rendered, done again
    assert message_id("studio", "ci", "job.done", again) != same
    assert message_id("studio", "other", "job.done", job) != same
    body = json.loads(payload("job.done", job, site="studio", at=0.0))
    assert body["type"] == "job.done" and body["timestamp"] == "1970-01-01T00:00:00Z"
    assert body["data"]["site"] == "studio" and body["data"]["job"]["state"] == "done"


def test_spillway_webhooks_shows_endpoints_and_last_statuses() -> None:
    body = {
        "webhooks": [
            {
                "name": "ci",
                "url": "http://ci/hook",
                "events": ["job.done", "job.failed"],
                "deliveries": {"pending": 1, "delivered": 4, "failed": 0},
            }
        ],
        "deliveries": [
            {
                "id": "msg_a",
                "endpoint": "ci",
                "event": "job.done",
                "job_id": "j1",
                "state": "delivered",
                "attempts": 1,
                "last_status": 204,
                "last_error": "",
                "last_attempt_at": 95.0,
            },
            {
                "id": "msg_b",
                "endpoint": "ci",
                "event": "job.failed",
                "job_id": "j2",
                "state": "pending",
                "attempts": 3,
                "last_status": None,
                "last_error": "Cannot connect to host ci:80",
                "last_attempt_at": 99.0,
            },
        ],
    }
    shown = format_webhooks(body, now=100.0)
    assert "done,failed" in shown and "http://ci/hook" in shown
    assert "204" in shown and "Cannot connect to host ci:80" in shown and "5s ago" in shown
    assert format_webhooks({"webhooks": []}, now=0.0).startswith("no webhooks configured")
