"""Acceptance policy per peer: the TOML table, and each reason an offer is refused."""

from __future__ import annotations

import dataclasses
import datetime
import tomllib
from pathlib import Path

import pytest

from federation.capacity import advert_for
from federation.errors import FederationConfigError
from federation.peers import parse_federation
from federation.policy import (
    AcceptPolicy,
    HourWindow,
    OfferFacts,
    RefusalCode,
    parse_policy,
    refusals,
)
from federation.protocol import CapacityAdvert, ServerCapacity

FACTS = OfferFacts(
    site="facility",
    package="povray",
    priority=50,
    path=("studio",),
    offer_bytes=1000,
    queued_jobs=0,
    bytes_today=0,
    local_time=datetime.time(12, 0),
)


def window(text: str) -> HourWindow:
    policy = parse_policy({"hours": text}, source="site.toml", prefix="peers[0].policy.")
    assert policy.hours is not None
    return policy.hours


def test_the_default_policy_accepts_a_job_straight_from_its_origin() -> None:
    assert refusals(AcceptPolicy(), FACTS) == []


@pytest.mark.parametrize(
    ("policy", "facts", "code", "message"),
    [
        (
            AcceptPolicy(packages=frozenset({"povray"})),
            {"package": "blender"},
            RefusalCode.PACKAGE,
            "package blender not accepted (accepted: povray)",
        ),
        (
            AcceptPolicy(max_priority=40),
            {},
            RefusalCode.PRIORITY,
            "priority 50 is above the cap 40",
        ),
        (
            AcceptPolicy(max_queued_jobs=2),
            {"queued_jobs": 2},
            RefusalCode.QUEUED_JOBS,
            "2 jobs from this site are already queued here (max_queued_jobs 2)",
        ),
        (
            AcceptPolicy(max_bytes_per_day=5000),
            {"bytes_today": 4500},
            RefusalCode.BYTES_PER_DAY,
            "1000 bytes would exceed the daily quota: 4500 of 5000 bytes used in the last 24 h",
        ),
        (
            AcceptPolicy(hours=window("20:00-06:00")),
            {},
            RefusalCode.HOURS,
            "jobs are accepted only 20:00-06:00 (local time here is 12:00)",
        ),
        (
            AcceptPolicy(max_hops=3),
            {"path": ("studio", "facility", "relay")},
            RefusalCode.LOOP,
            "the job already went through facility (path studio -> facility -> relay); "
            "it is never accepted twice",
        ),
        (
            AcceptPolicy(),
            {"path": ("studio", "relay")},
            RefusalCode.HOP_LIMIT,
            "the job was forwarded 2 times (path studio -> relay); max_hops is 1",
        ),
    ],
)
def test_each_limit_refuses_with_its_code_and_a_sentence(
    policy: AcceptPolicy, facts: dict[str, object], code: RefusalCode, message: str
) -> None:
    found = refusals(policy, dataclasses.replace(FACTS, **facts))  # type: ignore[arg-type]
    assert [(r.code, r.message) for r in found] == [(code, message)]


def test_limits_at_the_boundary_still_accept() -> None:
    policy = AcceptPolicy(max_priority=50, max_queued_jobs=1, max_bytes_per_day=1000, max_hops=2)
    assert refusals(policy, dataclasses.replace(FACTS, path=("studio", "relay"))) == []


def test_every_reason_is_reported_not_only_the_first() -> None:
    policy = AcceptPolicy(packages=frozenset({"blender"}), max_priority=10)
    codes = [r.code for r in refusals(policy, FACTS)]
    assert codes == [RefusalCode.PACKAGE, RefusalCode.PRIORITY]


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("20:00-06:00", ["20:00", "23:59", "00:00", "05:59"], ["06:00", "12:00", "19:59"]),
        ("09:00-17:30", ["09:00", "17:29"], ["08:59", "17:30", "23:00"]),
    ],
)
def test_hour_windows_include_the_start_and_exclude_the_end(
    text: str, inside: list[str], outside: list[str]
) -> None:
    hours = window(text)
    for value in inside:
        assert hours.contains(datetime.time.fromisoformat(value)), value
    for value in outside:
        assert not hours.contains(datetime.time.fromisoformat(value)), value


DOC = """
[federation]
listen = "127.0.0.1:8843"
ca = "ca.pem"
cert = "facility.pem"
key = "facility-key.pem"

[[peers]]
name = "studio"
url = "https://127.0.0.1:8743"
preference = 2
cost = 1.5

[peers.policy]
max_slots = 4
max_queued_jobs = 3
packages = ["povray", "builtin"]
max_priority = 80
max_bytes_per_day = 10_000_000_000
hours = "20:00-06:00"
own_first = false
max_hops = 2
"""


def test_the_documented_policy_table_parses() -> None:
    config = parse_federation(tomllib.loads(DOC), source="facility.toml", base_dir=Path("/etc"))
    [studio] = config.peers
    assert (studio.preference, studio.cost) == (2, 1.5)
    assert studio.policy == AcceptPolicy(
        max_slots=4,
        max_queued_jobs=3,
        packages=frozenset({"povray", "builtin"}),
        max_priority=80,
        max_bytes_per_day=10_000_000_000,
        hours=window("20:00-06:00"),
        own_first=False,
        max_hops=2,
    )


@pytest.mark.parametrize(
    ("line", "key", "says"),
    [
        ("max_slot = 4", "peers[0].policy.max_slot", "unknown key; valid keys are max_slots"),
        ("max_slots = -1", "peers[0].policy.max_slots", "must be at least 0"),
        ('max_slots = "4"', "peers[0].policy.max_slots", "must be an integer"),
        ("max_hops = 0", "peers[0].policy.max_hops", "must be at least 1"),
        ('packages = "povray"', "peers[0].policy.packages", "must be a list of package names"),
        ('hours = "8-17"', "peers[0].policy.hours", 'must be "HH:MM-HH:MM"'),
        ('hours = "08:00-08:00"', "peers[0].policy.hours", "empty window"),
        ('own_first = "no"', "peers[0].policy.own_first", "must be true or false"),
    ],
)
def test_bad_policy_values_name_the_file_and_key(line: str, key: str, says: str) -> None:
    doc = DOC.split("[peers.policy]")[0] + "[peers.policy]\n" + line + "\n"
    with pytest.raises(FederationConfigError) as info:
        parse_federation(tomllib.loads(doc), source="facility.toml", base_dir=Path("/etc"))
    assert f"facility.toml: {key}" in str(info.value)
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("line", "key"),
    [('preference = "high"', "peers[0].preference"), ("cost = -1", "peers[0].cost")],
)
def test_bad_preference_or_cost_names_the_key(line: str, key: str) -> None:
    doc = DOC.split("preference = 2")[0] + line + "\n"
    with pytest.raises(FederationConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_federation(tomllib.loads(doc), source="facility.toml", base_dir=Path("/etc"))


def _server(name: str, free: int) -> ServerCapacity:
    return ServerCapacity(
        name=name,
        cores=8,
        memory_mb=8192,
        packages={"povray": "3.7.0", "blender": "4.1.0"},
        slots=4,
        free_slots=free,
        status="idle",
    )


def test_a_peer_is_advertised_only_what_its_policy_accepts() -> None:
    advert = CapacityAdvert(servers=(_server("r1", 3), _server("r2", 4)), queue_depth=7)
    told = advert_for(advert, AcceptPolicy(packages=frozenset({"povray"}), max_slots=5))
    assert [dict(s.packages) for s in told.servers] == [{"povray": "3.7.0"}] * 2
    assert [s.free_slots for s in told.servers] == [3, 2]
    none = advert_for(advert, AcceptPolicy(packages=frozenset({"houdini"})))
    assert none.servers == ()
    assert advert_for(advert, AcceptPolicy()) == advert


@pytest.mark.parametrize("name", ["studio", "facility-a", "facility-b"])
def test_the_three_site_example_configs_parse(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "configs" / f"three-site-{name}.toml"
    doc = tomllib.loads(path.read_text())
    config = parse_federation(doc, source=str(path), base_dir=path.parent)
    assert doc["name"] == name
    assert sorted(p.name for p in config.peers) == sorted(
        {"studio", "facility-a", "facility-b"} - {name}
    )
