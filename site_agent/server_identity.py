"""Which render server may use a name: the key it enrolled with, and one process at a time."""

from __future__ import annotations

import hashlib
import hmac

from render_server import protocol

from .connections import ConnectionRegistry
from .store.records import ServerRecord


def key_hash(key: str) -> str:
    """What the agent keeps of a render server's key (empty for no key)."""
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


def identity_refusal(
    existing: ServerRecord | None, hello: protocol.Hello, connections: ConnectionRegistry
) -> str | None:
    """Why this hello may not take its name, or None.

    A name belongs to the key it first enrolled with: another key is refused
    (``servers rm`` forgets it, e.g. for a re-imaged host). A name already
    connected is refused to any other process, so two servers never fight over
    it; the same process reconnecting (same instance) replaces its old socket.
    Servers older than keys send neither and keep the old behaviour.
    """
    if existing is None:
        return None
    name = hello.name
    if existing.key_hash and not hmac.compare_digest(existing.key_hash, key_hash(hello.key)):
        return (
            f"the name {name!r} is enrolled by another render server (a different key); "
            f"give this server its own --name, or if it replaces that host run "
            f"`spillway servers rm {name}` on the agent first"
        )
    live = connections.get(existing.id)
    if live is not None and hello.instance and live.instance != hello.instance:
        return (
            f"a render server named {name!r} is already connected from {live.record.host}; "
            "give each server its own --name (the default is the host name, so cloned "
            "hosts need one each)"
        )
    return None
