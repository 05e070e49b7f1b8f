"""Argument validation, exit statuses and the lazily imported process commands of `spillway`."""

from __future__ import annotations

import argparse
import socket
import sys
import types
from pathlib import Path

import pytest

from spillway import main as cli
from spillway.client import cli as client_cli


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


SUBMIT = ("submit", "scene.json", "--package", "builtin", "--frames", "1-24")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--frames", "5-1"), "'5-1' ends before it starts; write it as 1-5"),
        (("--frames", "1-10x0"), "must be 1 or more"),
        (("--chunk", "0"), "argument --chunk: '0' must be a whole number of at least 1"),
        (("--chunk", "two"), "argument --chunk: 'two' must be a whole number of at least 1"),
        (("--priority", "-1"), "argument --priority: '-1' must be a whole number of 0 or more"),
        (("--resolution", "640"), "use WIDTHxHEIGHT with each side 1 to 16384, e.g. 1920x1080"),
        (("--resolution", "0x10"), "use WIDTHxHEIGHT"),
        (("--package", "povray>=3.x"), "'>=3.x' is not a version specifier"),
        (("--package", ">=3.7"), "bad package requirement '>=3.7': use forms like"),
        (("--timeout", "0"), "must be a number of seconds above 0"),
        (("--timeout", "nan"), "must be a number of seconds above 0"),
        (("--tags", "a,b c"), "use comma-separated names like gpu,linux"),
        (("--site", "../x"), "is not a valid name"),
        (("--agent", "127.0.0.1:8700"), "use a URL like http://127.0.0.1:8700"),
    ],
)
def test_bad_submit_arguments_exit_2_with_a_fix(capsys, extra, message):
    status, out, err = run_main(capsys, *SUBMIT, *extra)
    assert status == 2
    assert out == ""
    assert err.startswith("spillway: error: ")
    assert message in err
    assert err.rstrip().endswith("(see `spillway submit --help`)")
    assert err.count("\n") == 1


def test_submit_defaults():
    args = parse(*SUBMIT)
    assert (args.chunk, args.priority, args.resolution) == (1, 50, None)
    assert (args.wait, args.json, args.no_forward, args.gpu) == (False, False, False, False)
    assert (args.max_servers, args.max_attempts, args.timeout) == (0, 3, 3600.0)


def test_submit_accepts_the_documented_forms():
    args = parse(
        *SUBMIT[:3],
        "povray>=3.7",
        "--frames",
        "1,5,10-20",
        "--resolution",
        "1920X1080",
        "--tags",
        "gpu, linux",
        "--asset",
        "a.png",
        "--asset",
        "b.png",
        "--chunk",
        "4",
    )
    assert args.package == "povray>=3.7"
    assert args.resolution == (1920, 1080)
    assert args.tags == ["gpu", "linux"]
    assert args.asset == ["a.png", "b.png"]


def test_required_arguments_are_named(capsys):
    status, _, err = run_main(capsys, "submit", "scene.json", "--frames", "1")
    assert status == 2
    assert "the following arguments are required: --package" in err


def test_unknown_command_and_state(capsys):
    assert run_main(capsys, "frobnicate")[0] == 2
    status, _, err = run_main(capsys, "jobs", "--state", "sleeping")
    assert status == 2 and "invalid choice: 'sleeping'" in err


def test_help_exits_0(capsys):
    status, out, _ = run_main(capsys, "--help")
    assert status == 0
    assert "submit" in out and "render-server" in out


def test_agent_and_token_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("SPILLWAY_AGENT", raising=False)
    monkeypatch.delenv("SPILLWAY_TOKEN", raising=False)
    args = parse("jobs")
    assert (args.agent, args.token) == ("http://127.0.0.1:8700", None)
    monkeypatch.setenv("SPILLWAY_AGENT", "http://farm:9000/")
    monkeypatch.setenv("SPILLWAY_TOKEN", "t0k")
    args = parse("servers")
    assert (args.agent, args.token) == ("http://farm:9000", "t0k")
    assert parse("peers", "--agent", "https://x:1", "--token", "o").token == "o"


def test_missing_scene_is_bad_input(capsys, tmp_path):
    status, _, err = run_main(
        capsys,
        "submit",
        str(tmp_path / "nope.json"),
        "--package",
        "builtin",
        "--frames",
        "1",
        "--agent",
        "http://127.0.0.1:9",
    )
    assert status == 2
    assert (
        err
        == f"spillway: error: scene {tmp_path / 'nope.json'} does not exist; give the path of the scene file\n"
    )


def test_ctrl_c_exits_130_quietly(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(client_cli, "run", interrupted)
    assert run_main(capsys, "jobs") == (130, "", "")


def test_unexpected_errors_show_no_traceback(capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("disk on fire; call the admin")

    monkeypatch.setattr(client_cli, "run", broken)
    monkeypatch.delenv("SPILLWAY_DEBUG", raising=False)
    assert run_main(capsys, "jobs") == (1, "", "spillway: error: disk on fire; call the admin\n")


# --- process commands: lazily imported entry points, faked by module ------------------------


def fake_module(monkeypatch, dotted: str, **functions) -> None:
    module = types.ModuleType(dotted)
    for name, fn in functions.items():
        setattr(module, name, fn)
    monkeypatch.setitem(sys.modules, dotted, module)


def test_render_server_defaults(monkeypatch, capsys):
    calls = []

    def run_render_server(**kwargs):
        calls.append(kwargs)
        assert kwargs["work_dir"].is_dir()  # a temp dir that exists while the server runs
        return 0

    fake_module(monkeypatch, "render_server.main", run_render_server=run_render_server)
    monkeypatch.setenv("SPILLWAY_SERVER_TOKEN", "enroll")
    monkeypatch.setattr(socket, "gethostname", lambda: "host7")
    assert run_main(capsys, "render-server", "--agent", "http://a:8700")[0] == 0
    (kwargs,) = calls
    assert kwargs["agent_url"] == "http://a:8700"
    assert (kwargs["name"], kwargs["slots"], kwargs["tags"], kwargs["token"]) == (
        "host7",
        1,
        [],
        "enroll",
    )
    assert kwargs["cache_dir"] == Path.home() / ".cache" / "spillway" / "host7"
    assert not kwargs["work_dir"].exists()  # removed afterwards


def test_render_server_options(monkeypatch, capsys, tmp_path):
    calls = []

    async def run_render_server(**kwargs):  # an async entry point works too
        calls.append(kwargs)
        return 3

    fake_module(monkeypatch, "render_server.main", run_render_server=run_render_server)
    status, _, _ = run_main(
        capsys,
        "render-server",
        "--agent",
        "http://a:8700",
        "--name",
        "r2",
        "--slots",
        "4",
        "--tags",
        "gpu,linux",
        "--token",
        "t",
        "--cache",
        str(tmp_path / "c"),
        "--workdir",
        str(tmp_path / "w"),
    )
    assert status == 3
    assert calls[0]["slots"] == 4 and calls[0]["tags"] == ["gpu", "linux"]
    assert calls[0]["work_dir"] == tmp_path / "w" and calls[0]["cache_dir"] == tmp_path / "c"


def test_render_server_needs_an_agent(capsys):
    status, _, err = run_main(capsys, "render-server")
    assert status == 2 and "--agent" in err


def test_agent_command(monkeypatch, capsys):
    seen = []
    fake_module(monkeypatch, "site_agent.app", run_agent=lambda path, **kw: seen.append(path) or 0)
    assert run_main(capsys, "agent", "--config", "configs/studio.toml")[0] == 0
    assert seen == [Path("configs/studio.toml")]


def test_certs_commands(monkeypatch, capsys, tmp_path):
    calls = []
    fake_module(
        monkeypatch,
        "federation.certs",
        init_ca=lambda directory, force=False: calls.append(("init", directory, force)),
        issue_site_cert=lambda ca_dir, site, out_dir, **kw: calls.append(
            ("issue", ca_dir, site, out_dir, kw)
        ),
    )
    ca = tmp_path / "ca"
    assert run_main(capsys, "certs", "init", "--dir", str(ca), "--force")[0] == 0
    assert run_main(capsys, "certs", "issue", "paris", "--dir", str(ca))[0] == 0
    assert (
        run_main(
            capsys,
            "certs",
            "issue",
            "oslo",
            "--dir",
            str(ca),
            "--host",
            "oslo.lan",
            "--host",
            "10.0.0.2",
            "--out",
            str(tmp_path / "o"),
        )[0]
        == 0
    )
    assert calls == [
        ("init", ca, True),
        ("issue", ca, "paris", ca / "paris", {}),
        ("issue", ca, "oslo", tmp_path / "o", {"hosts": ["oslo.lan", "10.0.0.2"]}),
    ]


def test_missing_component_is_reported_not_raised(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "spillway.demo", None)  # import fails
    status, _, err = run_main(capsys, "demo")
    assert status == 1
    assert err.startswith("spillway: error: this installation lacks a part `spillway demo` needs")


def test_exit_status_of_domain_errors():
    from scheduler.errors import ProfileError

    assert client_cli._exit_status(ProfileError("bad profile")) == 2
    assert client_cli._exit_status(ValueError("a bug somewhere")) == 1
    assert client_cli._exit_status(client_cli.UsageError("bad flag")) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("logs", "j1", "--frame", "1", "--task", "0"), "not allowed with argument"),
        (
            ("logs", "j1", "--attempt", "0"),
            "argument --attempt: '0' must be a whole number of at least 1",
        ),
        (
            ("logs", "j1", "--frame", "-2"),
            "argument --frame: '-2' must be a whole number of 0 or more",
        ),
    ],
)
def test_logs_arguments_are_checked(capsys, argv: tuple[str, ...], message: str) -> None:
    status, _, err = run_main(capsys, *argv)
    assert status == 2 and message in err, err


def test_logs_defaults_to_the_latest_attempt_of_a_chosen_task() -> None:
    args = parse("logs", "j1")
    assert (args.frame, args.task, args.attempt, args.follow) == (None, None, None, False)
    args = parse("logs", "j1", "--task", "3", "--attempt", "2", "-f")
    assert (args.task, args.attempt, args.follow) == (3, 2, True)


def test_agent_workers_flag(capsys, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert parse("agent", "--config", "s.toml").workers is None  # the config decides
    assert parse("agent", "--config", "s.toml", "--workers", "3").workers == 3
    assert parse("agent", "--config", "s.toml", "--workers", "auto").workers == 7
    for bad in ("-1", "65", "two"):
        status, _, err = run_main(capsys, "agent", "--config", "s.toml", "--workers", bad)
        assert status == 2
        assert 'a whole number from 0 to 64, or "auto"' in err
