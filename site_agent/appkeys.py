"""Typed aiohttp application keys (string keys are deprecated by aiohttp)."""

from __future__ import annotations

from aiohttp import web

from .config import SiteConfig
from .site import SiteAgent

SITE: web.AppKey[SiteAgent] = web.AppKey("site", SiteAgent)
"""The running SiteAgent."""
CONFIG: web.AppKey[SiteConfig] = web.AppKey("config", SiteConfig)
"""The SiteConfig the app was built with."""
