"""The composition root wires the server side together only when a process command runs."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from spillway import processes
from spillway.main import main


def fake_module(monkeypatch: pytest.MonkeyPatch, dotted: str, **functions: Any) -> None:
    module = types.ModuleType(dotted)
    for name, fn in functions.items():
        setattr(module, name, fn)
    monkeypatch.setitem(sys.modules, dotted, module)


def test_the_agent_runs_with_federation_and_webhooks_as_its_extensions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Path, Any, Any]] = []

    def run_agent(path: Path, extensions: Any = (), workers: Any = None) -> int:
        seen.append((path, list(extensions), workers))
        return 0

    fake_module(monkeypatch, "site_agent.app", run_agent=run_agent)
    assert main(["agent", "--config", "configs/studio.toml"]) == 0
    assert main(["agent", "--config", "configs/studio.toml", "--workers", "2"]) == 0
    extensions = [processes.federation_extension, processes.webhooks_extension]
    assert seen == [
        (Path("configs/studio.toml"), extensions, None),
        (Path("configs/studio.toml"), extensions, 2),
    ]


def _site(federation: object) -> Any:
    return types.SimpleNamespace(config=types.SimpleNamespace(federation=federation))


async def test_federation_starts_only_for_a_site_with_a_federation_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[object, object]] = []

    async def attach_federation(app: object, site: object) -> None:
        calls.append((app, site))

    fake_module(monkeypatch, "federation.service", attach_federation=attach_federation)
    plain, federated, app = _site(None), _site({"listen": "127.0.0.1:0"}), object()
    await processes.federation_extension(app, plain)  # type: ignore[arg-type]
    await processes.federation_extension(app, federated)  # type: ignore[arg-type]
    assert calls == [(app, federated)]


async def test_webhooks_start_only_for_a_site_with_webhooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[object, object]] = []

    async def attach_webhooks(app: object, site: object) -> None:
        calls.append((app, site))

    fake_module(monkeypatch, "webhooks.service", attach_webhooks=attach_webhooks)
    plain = types.SimpleNamespace(config=types.SimpleNamespace(webhooks=()))
    hooked = types.SimpleNamespace(config=types.SimpleNamespace(webhooks=("ci",)))
    app = object()
    await processes.webhooks_extension(app, plain)  # type: ignore[arg-type]
    await processes.webhooks_extension(app, hooked)  # type: ignore[arg-type]
    assert calls == [(app, hooked)]
