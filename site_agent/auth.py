"""Bearer tokens for clients, an enrollment token for render servers.

With no tokens configured the agent serves only loopback peers, so a fresh demo
needs no setup and an agent listening on a real interface is never open by accident.
"""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from .config import AuthConfig
from .errors import ForbiddenError, UnauthorizedError


def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def _matches(token: str | None, accepted: tuple[str, ...]) -> bool:
    if token is None:
        return False
    return any(hmac.compare_digest(token.encode(), a.encode()) for a in accepted)


def check_client(request: web.Request, auth: AuthConfig) -> None:
    if not auth.client_tokens:
        if not is_loopback(request.remote):
            raise ForbiddenError(
                "this agent has no client tokens configured and accepts loopback clients only; "
                "add [auth] client_tokens to the site config"
            )
        return
    if not _matches(bearer(request), auth.client_tokens):
        raise UnauthorizedError(
            "a valid bearer token is required; pass --token or set SPILLWAY_TOKEN"
        )


def check_server(token: str | None, remote: str | None, auth: AuthConfig) -> str | None:
    """Returns a refusal reason, or None when the render server may connect."""
    if not auth.server_token:
        return (
            None
            if is_loopback(remote)
            else (
                "this agent has no server_token configured and accepts loopback render servers only"
            )
        )
    if not _matches(token, (auth.server_token,)):
        return "wrong or missing enrollment token; start the render server with --token"
    return None
