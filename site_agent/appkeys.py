"""Typed aiohttp application keys (string keys are deprecated by aiohttp)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

SITE: web.AppKey[Any] = web.AppKey("site")
"""The running SiteAgent."""
CONFIG: web.AppKey[Any] = web.AppKey("config")
"""The SiteConfig the app was built with."""
