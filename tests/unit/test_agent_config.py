"""Site configuration parsing: defaults, validation, unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from site_agent.config import ConfigError, load_config, parse_config

BASE = {"name": "studio", "storage": "frames"}


def test_smallest_config_gets_defaults(tmp_path: Path) -> None:
    cfg = parse_config(dict(BASE), source="t.toml", base_dir=tmp_path)
    assert (cfg.host, cfg.port) == ("127.0.0.1", 8700)
    assert cfg.storage == tmp_path / "frames"
    assert cfg.assets == tmp_path / "frames" / ".assets"
    assert cfg.auth.client_tokens == ()
    assert cfg.scheduling.heartbeat_timeout_s == 10.0
    assert cfg.scheduling.stall_after_s == 0.0  # jobs wait for a capable server
    assert cfg.federation is None


def test_sections_are_parsed(tmp_path: Path) -> None:
    raw = {
        **BASE,
        "listen": "0.0.0.0:9000",
        "auth": {"client_tokens": ["a", "b"], "server_token": "s"},
        "scheduling": {"heartbeat_timeout": 30, "bad_server_threshold": 5, "stall_after": 600},
        "limits": {"max_blob_mb": 10},
    }
    cfg = parse_config(raw, source="t.toml", base_dir=tmp_path)
    assert cfg.port == 9000 and cfg.host == "0.0.0.0"
    assert cfg.auth.client_tokens == ("a", "b") and cfg.auth.server_token == "s"
    assert cfg.scheduling.heartbeat_timeout_s == 30.0
    assert cfg.scheduling.bad_server_threshold == 5
    assert cfg.scheduling.stall_after_s == 600.0
    assert cfg.limits.max_blob_mb == 10


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"storage": "x"}, "missing required key 'name'"),
        ({"name": "studio"}, "missing required key 'storage'"),
        ({**BASE, "colour": "blue"}, "unknown key 'colour'"),
        ({**BASE, "auth": {"tokens": []}}, r"unknown key \[auth\] 'tokens'"),
        ({**BASE, "listen": "8700"}, "must look like 127.0.0.1:8700"),
        ({**BASE, "name": "bad name!"}, "letters, digits and dashes"),
        ({**BASE, "scheduling": {"heartbeat_timeout": "soon"}}, "must be a number"),
        ({**BASE, "scheduling": {"heartbeat_timeout": 0}}, "greater than 0"),
        ({**BASE, "scheduling": {"bad_server_threshold": 2.5}}, "whole number"),
        ({**BASE, "auth": {"client_tokens": "abc"}}, "list of non-empty strings"),
        ({**BASE, "auth": "x"}, r"\[auth\] must be a table"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path: Path, raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="t.toml", base_dir=tmp_path)


def test_load_config_reports_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_shipped_example_configs_parse() -> None:
    root = Path(__file__).resolve().parents[2] / "configs"
    for path in sorted(root.glob("*.toml")):
        cfg = load_config(path)
        assert cfg.name
