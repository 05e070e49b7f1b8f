"""Job profiles, lenient version matching, explain() and explain_unmatched()."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler import (
    JobProfile,
    Match,
    Mismatch,
    ProfileError,
    ServerView,
    explain,
    explain_unmatched,
    matches,
    satisfies,
)


def server(
    sid: str = "s1",
    *,
    packages: Mapping[str, str] | None = None,
    cores: int = 8,
    memory_mb: int = 16384,
    gpus: int = 0,
    tags: frozenset[str] = frozenset(),
    status: str = "idle",
) -> ServerView:
    return ServerView(
        id=sid,
        name=f"host-{sid}",
        cores=cores,
        memory_mb=memory_mb,
        gpus=gpus,
        packages={"builtin": "1.0.0"} if packages is None else packages,
        tags=tags,
        slots=2,
        free_slots=2,
        status=status,
    )


@pytest.mark.parametrize(
    ("requirement", "package", "version"),
    [
        ("povray", "povray", ""),
        ("povray>=3.7", "povray", ">=3.7"),
        ("  povray >= 3.7 ", "povray", ">=3.7"),
        ("blender>=3.0,<4", "blender", ">=3.0,<4"),
        ("builtin==1.*", "builtin", "==1.*"),
        ("Blender~=4.1", "blender", "~=4.1"),
    ],
)
def test_from_requirement(requirement: str, package: str, version: str) -> None:
    profile = JobProfile.from_requirement(requirement)
    assert (profile.package, profile.version) == (package, version)
    assert profile.requirement == f"{package}{version}"


@pytest.mark.parametrize(
    ("requirement", "fragment"),
    [
        ("", "use forms like povray"),
        ("3povray", "use forms like povray"),
        ("povray 3.7", "povray>=3.7 or povray==3.7.*"),
        ("povray>=abc", "not a version specifier"),
        ("pov ray", "not a version specifier"),
    ],
)
def test_from_requirement_rejects_with_hint(requirement: str, fragment: str) -> None:
    with pytest.raises(ProfileError, match="bad package requirement") as info:
        JobProfile.from_requirement(requirement)
    assert fragment in str(info.value)


def test_from_requirement_passes_options_and_rejects_unknown() -> None:
    profile = JobProfile.from_requirement("blender>=4", gpu=True, engine="cycles", max_servers=2)
    assert (profile.gpu, profile.engine, profile.max_servers) == (True, "cycles", 2)
    with pytest.raises(ProfileError, match="known options are"):
        JobProfile.from_requirement("blender", colour="red")
    with pytest.raises(ProfileError, match="given twice"):
        JobProfile.from_requirement("blender", version=">=4")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"package": "Povray"}, "bad package name"),
        ({"package": ""}, "bad package name"),
        ({"version": "3.7"}, "bad version specifier"),
        ({"min_memory_mb": -1}, "min_memory_mb must be at least 0"),
        ({"min_cores": -2}, "min_cores must be at least 0"),
        ({"max_servers": -1}, "max_servers must be at least 0"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"task_timeout_s": 0.0}, "task_timeout_s must be a positive"),
        ({"task_timeout_s": float("inf")}, "task_timeout_s must be a positive"),
        ({"min_cores": 2.5}, "min_cores must be a whole number"),
        ({"gpu": "yes"}, "gpu must be true or false"),
        ({"tags": frozenset({"a,b"})}, "bad tag"),
    ],
)
def test_profile_validation(changes: dict[str, object], fragment: str) -> None:
    values: dict[str, object] = {"package": "povray", **changes}
    with pytest.raises(ProfileError, match=fragment):
        JobProfile(**values)  # type: ignore[arg-type]


def test_to_dict_is_json_safe_and_round_trips() -> None:
    profile = JobProfile.from_requirement("povray>=3.7", tags=frozenset({"b", "a"}), min_cores=4)
    data = profile.to_dict()
    assert data["tags"] == ["a", "b"]
    assert data["version"] == ">=3.7"
    assert JobProfile.from_dict(data) == profile


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"package": "x", "foo": 1, "bar": 2}, "unknown job profile keys: bar, foo"),
        ({"version": ">=1"}, "needs a 'package'"),
        ({"package": "x", "min_cores": "2"}, "min_cores must be a whole number"),
        ({"package": "x", "gpu": 1}, "gpu must be true or false"),
        ({"package": "x", "tags": "fast"}, "tags must be a list"),
        ({"package": 3}, "bad package name"),
        ({"package": "x", "task_timeout_s": "1h"}, "task_timeout_s must be a number"),
    ],
)
def test_from_dict_rejects(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ProfileError, match=fragment):
        JobProfile.from_dict(data)


@pytest.mark.parametrize(
    ("version", "specifier", "expected"),
    [
        ("3.7.0.10", ">=3.7", True),
        ("3.7.0.10.unofficial", ">=3.7", True),
        ("3.7.0.10.unofficial", ">=3.8", False),
        ("3.4.1", "==3.4.*", True),
        ("4.2.0-beta", ">=3.0,<4", False),
        ("v4.1", ">=4", True),
        ("unknown", ">=1", False),
        ("", ">=1", False),
        ("unknown", "", True),
    ],
)
def test_lenient_version_matching(version: str, specifier: str, expected: bool) -> None:
    assert satisfies(version, specifier) is expected


@pytest.mark.parametrize(
    ("profile", "srv", "reasons"),
    [
        (JobProfile(package="povray"), server(), ("has no povray",)),
        (
            JobProfile.from_requirement("povray>=3.8"),
            server(packages={"povray": "3.7.0.10"}),
            ("povray 3.7.0.10 does not satisfy >=3.8",),
        ),
        (
            JobProfile(package="builtin", min_memory_mb=16384),
            server(memory_mb=8192),
            ("8192 MiB memory < 16384 MiB required",),
        ),
        (JobProfile(package="builtin", min_cores=8), server(cores=4), ("4 cores < 8 required",)),
        (JobProfile(package="builtin", gpu=True), server(), ("no GPU",)),
        (
            JobProfile(package="builtin", tags=frozenset({"lighting", "fast", "ssd"})),
            server(tags=frozenset({"ssd"})),
            ("missing tags: fast, lighting",),
        ),
        (
            JobProfile(package="povray", min_cores=16, gpu=True),
            server(cores=4),
            ("has no povray", "4 cores < 16 required", "no GPU"),
        ),
    ],
)
def test_explain_mismatch_reasons(
    profile: JobProfile, srv: ServerView, reasons: tuple[str, ...]
) -> None:
    assert explain(profile, srv) == Mismatch(server_id=srv.id, reasons=reasons)
    assert not matches(profile, srv)


def test_explain_match_ignores_status() -> None:
    profile = JobProfile.from_requirement("povray>=3.7", gpu=True, tags=frozenset({"fast"}))
    srv = server(
        packages={"povray": "3.7.0.10.unofficial"},
        gpus=1,
        tags=frozenset({"fast", "x"}),
        status="offline",
    )
    assert explain(profile, srv) == Match(server_id="s1")
    assert matches(profile, srv)


@given(
    st.integers(0, 64),
    st.integers(0, 64),
    st.integers(0, 65536),
    st.integers(0, 65536),
    st.booleans(),
    st.integers(0, 2),
)
def test_matches_agrees_with_explain(
    need_cores: int, cores: int, need_mem: int, mem: int, gpu: bool, gpus: int
) -> None:
    profile = JobProfile(package="builtin", min_cores=need_cores, min_memory_mb=need_mem, gpu=gpu)
    srv = server(cores=cores, memory_mb=mem, gpus=gpus)
    assert matches(profile, srv) == isinstance(explain(profile, srv), Match)


def test_unmatched_no_servers() -> None:
    assert explain_unmatched(JobProfile(package="povray"), []) == "no render servers are registered"


def test_unmatched_groups_versions() -> None:
    servers = [
        server("a", packages={"povray": "3.7.0.10"}),
        server("b", packages={"povray": "3.7.0.10"}),
        server("c"),
    ]
    summary = explain_unmatched(JobProfile.from_requirement("povray>=3.8"), servers)
    assert summary == "no server has povray>=3.8; 2 servers have povray 3.7.0.10"


def test_unmatched_counts_other_reasons() -> None:
    servers = [server("a", cores=4), server("b", cores=4), server("c", cores=2)]
    summary = explain_unmatched(JobProfile(package="builtin", min_cores=8), servers)
    assert summary.startswith("no server can run builtin with this profile; ")
    assert "2 servers: 4 cores < 8 required" in summary
    assert "1 server: 2 cores < 8 required" in summary


def test_unmatched_offline_and_avoided() -> None:
    profile = JobProfile(package="builtin")
    offline = [
        server("a", status="offline"),
        server("b", status="disabled"),
        server("c", status="offline"),
    ]
    assert explain_unmatched(profile, offline) == "3 servers match but all are offline/disabled"
    online = [server("a"), server("b", status="busy")]
    assert (
        explain_unmatched(profile, online, avoid=frozenset({"a", "b"}))
        == "all 2 capable servers are avoided for this job after repeated failures"
    )
    assert "waiting for a free slot" in explain_unmatched(profile, online, avoid=frozenset({"a"}))


# --- package features (blender:oidn) -------------------------------------------------

OIDN = frozenset({"blender:oidn"})


def _blender(sid: str, *, version: str = "3.4.1", tags: frozenset[str] = frozenset()) -> ServerView:
    return server(sid, packages={"blender": version}, tags=tags)


def test_features_match_server_tags() -> None:
    profile = JobProfile(package="blender", features=OIDN)
    assert explain(profile, _blender("a", tags=OIDN)) == Match(server_id="a")
    assert explain(profile, _blender("b")) == Mismatch(
        server_id="b",
        reasons=("needs blender with OpenImageDenoise; has blender 3.4.1 without it",),
    )
    assert matches(profile, _blender("a", tags=OIDN)) and not matches(profile, _blender("b"))


def test_unmatched_names_the_missing_feature_and_the_servers_without_it() -> None:
    profile = JobProfile(package="blender", features=OIDN)
    why = explain_unmatched(profile, [_blender("a"), _blender("b"), _blender("c", version="4.0")])
    assert why == (
        "needs blender with OpenImageDenoise (or submit with --no-denoise to render without "
        "denoising); 2 servers have blender 3.4.1 without "
        "OpenImageDenoise; 1 server has blender 4.0 without OpenImageDenoise"
    )
    # Once one server has it, the job just waits for a slot there.
    ready = explain_unmatched(profile, [_blender("a"), _blender("b", tags=OIDN)])
    assert ready == "1 server online can run blender; waiting for a free slot"


def test_unmatched_feature_with_version_mismatch_names_both() -> None:
    profile = JobProfile.from_requirement("blender>=4", features=OIDN)
    why = explain_unmatched(
        profile, [_blender("a"), _blender("b", version="4.1", tags=frozenset())]
    )
    assert why.startswith("needs blender>=4 with OpenImageDenoise (or submit with --no-denoise")
    assert "1 server has blender 3.4.1" in why and "1 server has blender 4.1 without" in why


def test_features_round_trip_and_are_left_out_when_empty() -> None:
    plain = JobProfile(package="blender")
    assert "features" not in plain.to_dict()  # a peer that predates features reads it as before
    needs = JobProfile(package="blender", features=OIDN)
    assert needs.to_dict()["features"] == ["blender:oidn"]
    assert JobProfile.from_dict(needs.to_dict()) == needs


@pytest.mark.parametrize(
    ("features", "fragment"),
    [
        ("blender:oidn", "features must be a list of strings"),
        (["povray:x"], "'povray:x' is not a blender feature"),
        ([""], "bad feature ''"),
    ],
)
def test_bad_features_are_refused(features: object, fragment: str) -> None:
    with pytest.raises(ProfileError, match=fragment):
        JobProfile.from_dict({"package": "blender", "features": features})
