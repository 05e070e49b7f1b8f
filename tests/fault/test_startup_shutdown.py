"""A real agent process: startup errors exit promptly, signals always end it."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from e2e.harness import ROOT, Agent, free_port, spillway_cmd

STARTUP_LIMIT_S = 20.0


def _config(tmp_path: Path, *, storage: Path, extra: str = "") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'name = "studio"\nlisten = "127.0.0.1:{free_port()}"\n'
        f'database = "sqlite:///{tmp_path / "site.db"}"\nstorage = "{storage}"\n' + extra
    )
    return path


def _run_agent(config: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        result = subprocess.run(
            spillway_cmd("agent", "--config", str(config)),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=STARTUP_LIMIT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the agent hung after a startup error:\n{exc.stderr!r}") from None
    return result.returncode, result.stderr, time.monotonic() - started


def _federation(tmp_path: Path, **overrides: str) -> str:
    keys = {
        "listen": f'"127.0.0.1:{free_port()}"',
        "ca": f'"{tmp_path / "no-such-ca.pem"}"',
        "cert": f'"{tmp_path / "studio.pem"}"',
        "key": f'"{tmp_path / "studio-key.pem"}"',
        **overrides,
    }
    return "\n[federation]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-ca", "no-such-ca.pem"),
        ("misspelt-federation-key", "listne"),
        ("storage-is-a-file", "storage"),
    ],
)
def test_a_startup_error_exits_promptly_naming_its_cause(
    tmp_path: Path, case: str, expected: str
) -> None:
    storage = tmp_path / "storage"
    extra = ""
    if case == "missing-ca":
        extra = _federation(tmp_path)
    elif case == "misspelt-federation-key":
        extra = _federation(tmp_path, listne='"127.0.0.1:1"')
    else:
        storage.write_text("not a folder")
    code, stderr, took = _run_agent(_config(tmp_path, storage=storage, extra=extra))
    assert code != 0, stderr
    assert "spillway: error:" in stderr and expected in stderr, stderr
    assert "cannot listen" not in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert took < STARTUP_LIMIT_S


def test_sigterm_stops_a_running_agent_gracefully(tmp_path: Path) -> None:
    agent = Agent(tmp_path, name="studio", database=f"sqlite:///{tmp_path / 'site.db'}")
    agent.start()
    assert agent.proc is not None
    try:
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(15) == 0, agent.log()
    finally:
        agent.kill()
    assert "SIGTERM received: shutting down" in agent.log()


def test_a_second_signal_forces_an_exit(tmp_path: Path) -> None:
    agent = Agent(tmp_path, name="studio", database=f"sqlite:///{tmp_path / 'site.db'}")
    agent.start()
    assert agent.proc is not None
    # A request whose body never arrives: a graceful stop waits for it (5 s).
    with socket.create_connection(("127.0.0.1", agent.port)) as slow:
        slow.sendall(
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        time.sleep(0.5)
        try:
            agent.proc.send_signal(signal.SIGINT)
            time.sleep(1.0)
            started = time.monotonic()
            agent.proc.send_signal(signal.SIGINT)
            code = agent.proc.wait(15)
            took = time.monotonic() - started
        finally:
            agent.kill()
    assert code == 128 + signal.SIGINT, agent.log()
    assert took < 2.0
    assert "SIGINT received again" in agent.log()


def test_sigterm_ends_a_startup_that_waits_on_the_database(tmp_path: Path) -> None:
    # A "database" that accepts connections and never answers: connecting waits 10 s.
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen()
        port = blackhole.getsockname()[1]
        config = tmp_path / "site.toml"
        config.write_text(
            f'name = "studio"\nlisten = "127.0.0.1:{free_port()}"\n'
            f'database = "postgresql://spillway@127.0.0.1:{port}/farm"\n'
            f'storage = "{tmp_path / "storage"}"\n'
        )
        proc = subprocess.Popen(
            spillway_cmd("agent", "--config", str(config)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            time.sleep(2.0)
            assert proc.poll() is None, "the blackhole should hold the startup"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(15)
            took = time.monotonic() - started
        finally:
            proc.kill()
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
    assert code != 0
    assert took < 4.0, f"SIGTERM took {took:.1f}s to end a stuck startup"
