"""A render server's own identity: a secret key kept in its state folder.

The agent binds a server name to the key it first enrolled with, so a second
host (a clone, or anyone holding only the enrollment token) cannot take that
name, its id or its tasks. The key is made on first start and never leaves the
folder except in the hello and frame uploads to the agent.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

KEY_FILE = "server.key"


class IdentityError(Exception):
    """The state folder or its key cannot be read or created."""


def default_state_dir(name: str) -> Path:
    """``$XDG_DATA_HOME/spillway/render-servers/NAME`` (``~/.local/share`` without it)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "spillway" / "render-servers" / name


def load_or_create_key(state_dir: Path) -> str:
    """The key in ``state_dir``, created (mode 0600) on first use.

    Created whole or not at all (written aside, then linked into place), so two
    servers starting at once with one state folder read the same complete key.
    """
    path = state_dir / KEY_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            _create(path)
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(
            f"cannot use the render server's state folder {state_dir}: {exc}"
        ) from exc
    if len(key) < 16:
        raise IdentityError(
            f"{path} holds no usable key; delete it to make a new one (the agent will then "
            "refuse this name until `spillway servers rm NAME` forgets the old key)"
        )
    return key


def _create(path: Path) -> None:
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
