"""The packages stay layered: every import points down, never up.

    spillway.core  <-  spillway.packages  <-  spillway.client
    spillway.core, spillway.packages  <-  scheduler  <-  site_agent  <-  federation
    site_agent  <-  webhooks  (beside federation: neither imports the other)
    spillway.core, spillway.packages  <-  render_server
    everything  <-  spillway.main, spillway.processes, spillway.demo (the composition root)

Two checks: importing a package in a fresh interpreter loads none of the
packages it must not depend on (what a user of that package really pays), and a
static scan of every module's imports, including the lazy ones inside
functions, finds no import of a higher layer.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("scheduler", "site_agent", "render_server", "federation", "webhooks", "spillway")
SERVER_SIDE = ("scheduler", "site_agent", "render_server", "federation", "webhooks")
SERVER_DEPENDENCIES = ("asyncpg", "aiosqlite", "cryptography", "numpy", "PIL", "uvloop")
ROOT_MODULES = frozenset({"spillway.main", "spillway.processes", "spillway.demo"})

# Project packages each part may import (a prefix allows the package and its modules).
ALLOWED: dict[str, tuple[str, ...]] = {
    "spillway": (),  # the namespace package; its parts have their own rules below
    "spillway.core": ("spillway.core",),
    "spillway.packages": ("spillway.core", "spillway.packages"),
    "spillway.client": ("spillway.core", "spillway.packages", "spillway.client"),
    "scheduler": ("spillway.core", "spillway.packages", "scheduler"),
    "render_server": ("spillway.core", "spillway.packages", "render_server"),
    # The agent speaks the render servers' wire protocol; it uses nothing else of theirs.
    "site_agent": (
        "spillway.core",
        "spillway.packages",
        "scheduler",
        "render_server.protocol",
        "site_agent",
    ),
    "federation": (
        "spillway.core",
        "spillway.packages",
        "scheduler",
        "render_server.protocol",
        "site_agent",
        "federation",
    ),
    "webhooks": (
        "spillway.core",
        "spillway.packages",
        "scheduler",
        "render_server.protocol",
        "site_agent",
        "webhooks",
    ),
    "spillway.__main__": ("spillway.main",),
}
# Third-party packages a part must not import even lazily.
FORBIDDEN_THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "spillway.client": SERVER_DEPENDENCIES,
    "spillway.core": SERVER_DEPENDENCIES,
}


# --- what importing a package loads ------------------------------------------------------


def loaded_modules(*names: str, walk: bool = False, then: str = "") -> set[str]:
    """Modules in ``sys.modules`` after a fresh interpreter imports ``names`` and runs ``then``.

    With ``walk``, every module under each named package is imported too.
    """
    code = (
        "import importlib, json, pkgutil, sys\n"
        "for name in sys.argv[2:]:\n"
        "    module = importlib.import_module(name)\n"
        "    if sys.argv[1] == 'walk' and hasattr(module, '__path__'):\n"
        "        for info in pkgutil.walk_packages(module.__path__, name + '.'):\n"
        "            if not info.name.endswith('__main__'):\n"
        "                importlib.import_module(info.name)\n"
        f"{then}\n"
        "print('\\n' + json.dumps(sorted(sys.modules)))\n"
    )
    argv = [sys.executable, "-c", code, "walk" if walk else "flat", *names]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.splitlines()[-1]))


def under(modules: set[str], *packages: str) -> list[str]:
    """The modules that are one of ``packages`` or inside one of them."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_the_client_loads_nothing_of_the_server_side() -> None:
    loaded = loaded_modules("spillway.client", "spillway.client.cli", walk=True)
    assert "spillway.client.cli" in loaded
    assert under(loaded, *SERVER_SIDE, *SERVER_DEPENDENCIES) == []


def test_the_spillway_command_loads_the_server_side_only_to_run_a_process() -> None:
    # What `spillway --help` and `spillway submit --help` run, short of exiting.
    then = (
        "from spillway.main import main\nassert main(['--help']) == main(['submit', '--help']) == 0"
    )
    loaded = loaded_modules("spillway.main", then=then)
    assert "spillway.processes" in loaded
    assert under(loaded, *SERVER_SIDE, *SERVER_DEPENDENCIES) == []
    # Nor the HTTP stack: importing aiohttp was most of the command's start-up time.
    assert under(loaded, "aiohttp") == []
    # Nor the client itself: its records (dataclasses, which load inspect), its
    # transport (socket, threading) and the HTTP parsing are for commands that run.
    assert under(loaded, "spillway.client.sync", "spillway.client.records") == []
    assert under(loaded, "dataclasses", "inspect", "socket", "threading", "http", "email") == []


def test_the_sync_client_and_the_client_commands_load_no_async_stack() -> None:
    # A script using the typed sync client, and `spillway jobs` run to its end (the agent
    # is not there), load neither aiohttp nor asyncio: both cost most of a start-up.
    then = (
        "from spillway.client import Client, Job, NotFound, SubmitOptions\n"
        "from spillway.main import main\n"
        "assert main(['jobs', '--agent', 'http://127.0.0.1:9']) == 1"
    )
    loaded = loaded_modules("spillway.client", then=then)
    assert "spillway.client.sync" in loaded
    assert under(loaded, "aiohttp", "asyncio", *SERVER_SIDE, *SERVER_DEPENDENCIES) == []
    # Nor what only submit needs, nor the IDNA codec an ASCII agent address never needs.
    assert under(loaded, "spillway.packages", "packaging", "hashlib", "encodings.idna") == []
    # Nor the records of a job's detail or of the farm: `jobs` shows jobs only.
    assert under(loaded, "spillway.client.detail_records", "spillway.client.farm_records") == []
    # Nor http.client, whose header parsing is the email package: a third of the start.
    assert "spillway.client.http1" in loaded
    assert under(loaded, "http", "email", "ssl") == []


# The record classes `spillway submit` of a built-in scene needs: the options, the manifest
# and its files, the request and the created job. Each costs its creation (generated
# methods) at every start; a record added to this path should be one the command uses.
SUBMIT_RECORDS = {
    "spillway.client.api.Call",
    "spillway.client.records.Job",
    "spillway.client.records.Progress",
    "spillway.client.submission.LocalFile",
    "spillway.client.submission.Manifest",
    "spillway.client.submission.SubmitOptions",
    "spillway.client.sync_submit.Submitted",
    "spillway.core.records.FileEntry",
}


def test_submit_of_a_builtin_scene_loads_only_what_it_runs(tmp_path: Path) -> None:
    # `spillway submit` runs to its first request (scan, hash, job body), then finds no agent.
    scene = tmp_path / "scene.json"
    camera = {"position": [0, 0, 4], "look_at": [0, 0, 0]}
    sphere = {"type": "sphere", "center": [0, 0, 0], "radius": 1.0}
    scene.write_text(
        json.dumps({"format": "spillway-scene/1", "camera": camera, "objects": [sphere]})
    )
    argv = ["submit", str(scene), "--package", "builtin", "--frames", "1"]
    records = tmp_path / "records.json"
    then = (
        "from spillway.main import main\n"
        f"assert main({[*argv, '--agent', 'http://127.0.0.1:9']!r}) == 1\n"
        "found = sorted(f'{n}.{k}' for n, m in list(sys.modules.items())\n"
        "               if n.startswith('spillway') for k, v in vars(m).items()\n"
        "               if isinstance(v, type) and '__dataclass_fields__' in vars(v)\n"
        "               and v.__module__ == n)\n"
        f"open({str(records)!r}, 'w').write(json.dumps(found))"
    )
    loaded = loaded_modules("spillway.main", then=then)
    assert {"spillway.client.sync_submit", "spillway.packages.builtin", "hashlib"} <= loaded
    assert under(loaded, "aiohttp", "asyncio", *SERVER_SIDE, *SERVER_DEPENDENCIES) == []
    assert set(json.loads(records.read_text())) == SUBMIT_RECORDS
    # Nor the modules of what this submit does not do: the asyncio client's submission,
    # reading a .blend, the wire constraints, a job's detail and the farm's records;
    # packaging (a requirement without a version), http.client (the email package).
    unused = (
        "spillway.client.async_submit",
        "spillway.client.blend_read",
        "spillway.core.constraints",
        "spillway.client.detail_records",
        "spillway.client.farm_records",
    )
    assert under(loaded, *unused, "packaging", "http", "email", "ssl") == []


@pytest.mark.parametrize("package", ["spillway.core", "spillway.packages"])
def test_the_leaves_load_no_other_project_package(package: str) -> None:
    loaded = loaded_modules(package, walk=True)
    others = [m for m in under(loaded, *PROJECT) if not m.startswith(ALLOWED[package])]
    assert others == ["spillway"]  # the namespace package itself


def test_the_render_server_loads_no_agent_federation_scheduler_or_client() -> None:
    loaded = loaded_modules("render_server", walk=True)
    assert "render_server.daemon" in loaded
    assert under(loaded, "scheduler", "site_agent", "federation", "spillway.client") == []


def test_the_builtin_renderer_child_loads_only_what_a_render_needs() -> None:
    # `python -m render_server.packages.builtin` starts once per task: its imports are
    # part of every frame's time. numpy and Pillow render; the adapter interface (which
    # loads asyncio), the package catalog and its version parser do not.
    loaded = loaded_modules("render_server.packages.builtin.cli")
    assert "numpy" in loaded and "spillway.packages.builtin_scene" in loaded
    assert under(loaded, "asyncio", "packaging", "subprocess", "render_server.packages.base") == []
    assert under(loaded, "spillway.packages.catalog", "spillway.packages.process") == []


def test_the_site_agent_loads_no_federation() -> None:
    loaded = loaded_modules("site_agent", walk=True)
    assert "site_agent.app" in loaded
    assert under(loaded, "federation", "webhooks", "spillway.client") == []


def test_webhooks_load_no_federation() -> None:
    loaded = loaded_modules("webhooks", walk=True)
    assert "webhooks.service" in loaded
    assert under(loaded, "federation", "spillway.client") == []


# --- static check of every import, lazy ones included ----------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, *, is_package: bool = False) -> Iterator[str]:
    """Every module ``source`` imports anywhere (top level, functions, TYPE_CHECKING), absolute."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            # `from pkg import name` imports pkg.name when that is a module, pkg otherwise;
            # either way pkg.name falls under every rule that pkg falls under.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def part_of(module: str) -> str | None:
    """The layer a module belongs to (the longest key of ALLOWED it falls under)."""
    keys = [k for k in ALLOWED if module == k or module.startswith(k + ".")]
    return max(keys, key=len) if keys else None


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(module: str, names: Iterator[str]) -> list[str]:
    """Imports of ``module`` that its layer does not allow."""
    if module in ROOT_MODULES:
        return []
    part = part_of(module)
    if part is None:
        return [f"{module}: belongs to no layer; add it to ALLOWED"]
    return sorted({f"{module} imports {name}" for name in names if _forbidden(part, name)})


def _forbidden(part: str, name: str) -> bool:
    if _within(name, FORBIDDEN_THIRD_PARTY.get(part, ())):
        return True
    return _within(name, PROJECT) and name != "spillway" and not _within(name, ALLOWED[part])


def project_modules() -> Iterator[tuple[str, Path]]:
    for top in PROJECT:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield module_name(path), path


def test_no_module_imports_a_higher_layer() -> None:
    problems = []
    for module, path in project_modules():
        names = imported_names(
            path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
        )
        problems += violations(module, names)
    assert problems == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "spillway.client.cli",
            "def f():\n    from site_agent.app import run_agent\n",
            ["spillway.client.cli imports site_agent.app.run_agent"],
        ),
        ("spillway.client.cli", "import numpy as np\n", ["spillway.client.cli imports numpy"]),
        (
            "site_agent.app",
            "from federation import service\n",
            ["site_agent.app imports federation.service"],
        ),
        (
            "render_server.runner",
            "from ..site_agent import x\n",
            ["render_server.runner imports site_agent.x"],
        ),
        ("render_server.daemon", "from .packages import base\n", []),
        ("site_agent.dispatcher", "from render_server import protocol\n", []),
        (
            "site_agent.dispatcher",
            "from render_server.daemon import x\n",
            ["site_agent.dispatcher imports render_server.daemon.x"],
        ),
        ("spillway.processes", "from federation.certs import init_ca\n", []),
        (
            "spillway.packages.povray",
            "from spillway.main import main\n",
            ["spillway.packages.povray imports spillway.main.main"],
        ),
    ],
)
def test_the_static_check_finds_upward_imports(
    module: str, source: str, expected: list[str]
) -> None:
    assert violations(module, imported_names(source, module)) == expected
