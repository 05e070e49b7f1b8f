"""Build the Blender add-on zip: ``python blender_addon/build_addon.py [--out FILE]``.

Blender runs add-ons in its own Python, which has none of Spillway's
dependencies, so the zip carries what the add-on imports: the add-on
(``spillway_blender/``), the pure-Python client, core and package catalog of
Spillway (``spillway_blender/_bundled/spillway``) and ``packaging``
(``spillway_blender/_fallback``, used only where Blender's Python lacks it).
Modules that need a library not bundled (aiohttp, msgpack, numpy) are left out,
and the build fails if a bundled module imports, at its top, anything that is
neither the standard library nor bundled.  The zip is the same, byte for byte,
for the same sources.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

__all__ = ["ADDON", "BuildError", "build", "main"]

ROOT = Path(__file__).resolve().parents[1]
ADDON = "spillway_blender"
DEFAULT_OUT = ROOT / "dist" / f"{ADDON}.zip"
SPILLWAY_PARTS = ("client", "core", "packages")
# Bundled packages' modules that need a library the zip does not carry; nothing the
# add-on runs imports them (the async client, the wire codec, the built-in tracer's scenes).
LEFT_OUT = frozenset(
    {"spillway/client/aio.py", "spillway/core/wire.py", "spillway/packages/builtin_scene.py"}
)
THIRD_PARTY = ("packaging",)
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: same bytes on every build


class BuildError(Exception):
    """The add-on cannot be built as it is; the message names the file and why."""


def _python_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def _package_dir(name: str) -> Path:
    module = __import__(name)
    return Path(module.__file__ or "").resolve().parent


def _licenses(distribution: str) -> list[Path]:
    files = importlib.metadata.distribution(distribution).files or []
    return [
        Path(str(f.locate())) for f in files if PurePosixPath(str(f)).name.startswith("LICENSE")
    ]


def contents() -> dict[str, Path]:
    """Every file of the zip: its name in the zip and its source here."""
    entries: dict[str, Path] = {}
    addon = ROOT / "blender_addon" / ADDON
    for path in _python_files(addon):
        entries[f"{ADDON}/{path.relative_to(addon).as_posix()}"] = path
    spillway = ROOT / "spillway"
    bundled = [spillway / "__init__.py"]
    for part in SPILLWAY_PARTS:
        bundled += _python_files(spillway / part)
    for path in bundled:
        name = f"spillway/{path.relative_to(spillway).as_posix()}"
        if name not in LEFT_OUT:
            entries[f"{ADDON}/_bundled/{name}"] = path
    for package in THIRD_PARTY:
        folder = _package_dir(package)
        for path in _python_files(folder):
            entries[f"{ADDON}/_fallback/{package}/{path.relative_to(folder).as_posix()}"] = path
        for license_file in _licenses(package):
            entries[f"{ADDON}/_fallback/{package}/{license_file.name}"] = license_file
    return entries


def _top_level_imports(source: str, module: str) -> Iterator[str]:
    """Modules imported when ``module`` is imported (not in functions or TYPE_CHECKING)."""
    package = module.rpartition(".")[0]
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [node.module or ""])
                yield base.rstrip(".")
            else:
                yield node.module or ""


def _module_name(name: str) -> str:
    """``spillway_blender/_bundled/spillway/client/sync.py`` -> ``spillway.client.sync``;
    a package's ``__init__`` keeps the suffix, so relative imports resolve from it."""
    for prefix in (f"{ADDON}/_bundled/", ""):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.removesuffix(".py").replace("/", ".")


def check_imports(entries: dict[str, Path]) -> None:
    """BuildError if the add-on or a bundled module needs, at import, what the zip lacks."""
    checked = {
        _module_name(name): path
        for name, path in entries.items()
        if not name.startswith(f"{ADDON}/_fallback/")
    }
    present = {m.removesuffix(".__init__") for m in checked}
    allowed = set(sys.stdlib_module_names) | set(THIRD_PARTY) | {"bpy"}
    problems = []
    for module, path in checked.items():
        for imported in _top_level_imports(path.read_text(encoding="utf-8"), module):
            top = imported.partition(".")[0]
            ok = imported in present if top in ("spillway", ADDON) else top in allowed
            if not ok:
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                problems.append(f"{shown} imports {imported}")
    if problems:
        raise BuildError(
            "the add-on would not import in Blender, these are not bundled: "
            + "; ".join(sorted(problems))
            + ". Import it inside the function that needs it, or bundle it"
        )


def build(out: Path = DEFAULT_OUT) -> Path:
    """Write the add-on zip to ``out`` (atomically) and return its path."""
    entries = contents()
    check_imports(entries)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, _FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, entries[name].read_bytes())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the zip is for sharing
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-blender-addon", description="Build the Spillway Blender add-on zip."
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        out = build(args.out)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
